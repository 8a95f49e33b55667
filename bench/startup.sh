#!/usr/bin/env bash
# Start-up of record on this host (needs root and BPF): from the start of
# the process until its --ready-file appears, with every skb tracepoint
# (--backend tracepoint, no filter: the default on a host without function
# backends), RUNS times (5 by default); then SIGINT until it exits. Prints
# each run and the medians.
#
#   bench/startup.sh
#   BASE=/path/to/older/record bench/startup.sh   # an older build too, by turns
#   RUNS=9 ARGS='tcp port 80' bench/startup.sh     # with a filter expression
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "start-up benchmark: skipped (needs root for BPF)"
	exit 0
fi
out=${BENCH_OUT:-bench/out}
runs=${RUNS:-5}
mkdir -p "$out/bin"
go build -o "$out/bin/" ./cmd/record
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# once BIN: one start until ready and one stop until exit, in seconds.
once() {
	local bin=$1 ready=$tmp/ready
	rm -f "$ready"
	local s e d
	s=$(date +%s.%N)
	# shellcheck disable=SC2086
	"$bin" --backend tracepoint -w "$tmp/x.pcapng" --ready-file "$ready" --duration 60s ${ARGS:-} 2>"$tmp/err" &
	local p=$!
	while [ ! -e "$ready" ]; do
		if ! kill -0 "$p" 2>/dev/null; then
			echo "record exited before it was ready:" >&2
			cat "$tmp/err" >&2
			exit 1
		fi
		sleep 0.002
	done
	e=$(date +%s.%N)
	kill -INT "$p"
	wait "$p"
	d=$(date +%s.%N)
	echo "$(echo "$e - $s" | bc) $(echo "$d - $e" | bc)"
}

median() { sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
builds=("$out/bin/record")
[ -n "${BASE:-}" ] && builds+=("$BASE")
for i in $(seq "$runs"); do
	for b in "${builds[@]}"; do
		t=$(once "$b")
		echo "$t" >>"$tmp/$(basename "$b").times.$(echo "$b" | md5sum | cut -c1-8)"
		echo "run $i $b: ready after ${t% *} s, exit ${t#* } s after SIGINT"
	done
done
for b in "${builds[@]}"; do
	f=$tmp/$(basename "$b").times.$(echo "$b" | md5sum | cut -c1-8)
	echo "$b: median ready $(cut -d' ' -f1 "$f" | median) s, median exit $(cut -d' ' -f2 "$f" | median) s ($runs runs)"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
