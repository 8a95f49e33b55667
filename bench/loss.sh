#!/usr/bin/env bash
# Lost events under a ping flood with another job beside it (issue #18):
# FLOODS (default 10) floods of SECONDS_PER_RUN (default 4) seconds across
# the built-in scenario's veth pair, each recorded by `record -w FILE` at
# default settings (every tracepoint, default snap length and ring size),
# while one CPU-bound process runs beside it: `sha256sum /dev/zero` at
# nice 0, not pinned. That is "another job" as on any production host: it
# wants a whole CPU, competes with the reader and the flood for the
# scheduler, and does no I/O that would leave its CPU idle.
#
# Prints, per flood, the ping round trips, the events written and lost, and
# at the end in how many floods nothing was lost. RECORDERS (default: the
# record built from this tree) is a space-separated list of record
# binaries, measured by turns in each flood's slot, e.g.
#     RECORDERS="/tmp/record.main bench/out/bin/record" bench/loss.sh
# BESIDE=none measures without the job beside; JOBS=N (default 1) runs N
# such jobs, for a host busier than the CPUs it has. KEEP=1 keeps every
# flood's file until the end of the run (by default each flood's file
# replaces the previous one, and the page cache then hands the next flood
# the pages just freed, already in use by the machine: on a virtual
# machine a recording that goes on gets pages new to it, which can cost
# far more; docs/BACKENDS.md, Direct I/O). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "loss benchmark: skipped (need root for BPF and namespaces)"
	exit 0
fi
out=${BENCH_OUT:-bench/out}
secs=${SECONDS_PER_RUN:-4}
floods=${FLOODS:-10}
beside=${BESIDE:-sha256sum}
jobs_beside=${JOBS:-1}
mkdir -p "$out/bin"
go build -o "$out/bin/" ./cmd/record
read -r -a recs <<<"${RECORDERS:-$out/bin/record}"
A=pcdemoA
job=
keep=${KEEP:-0}
cleanup() {
	rm -f "$out"/loss-keep-*.pcapng
	[ -n "$job" ] && kill $job 2>/dev/null || true
	scripts/scenario.sh teardown
}
trap cleanup EXIT
scripts/scenario.sh setup
ip netns exec $A ping -c 1 -W 1 10.231.0.2 >/dev/null

# round_trips: ping -f for $secs seconds, prints the replies received.
round_trips() {
	ip netns exec $A ping -f -q -w "$secs" 10.231.0.2 2>/dev/null |
		sed -nE 's/.* ([0-9]+) received.*/\1/p'
}

# beside_start: starts the job beside the flood (sets $job).
beside_start() {
	job=
	case $beside in
	none) ;;
	sha256sum)
		for _ in $(seq "$jobs_beside"); do
			timeout $((secs + 2)) nice -n 0 sha256sum /dev/zero >/dev/null &
			job="$job $!"
		done
		;;
	*)
		echo "BESIDE=$beside: want sha256sum or none" >&2
		exit 2
		;;
	esac
}

beside_stop() {
	if [ -n "$job" ]; then
		kill $job 2>/dev/null || true
		wait $job 2>/dev/null || true
		job=
	fi
}

# flood REC TAG: one flood recorded by REC (TAG names its file with KEEP=1);
# prints "round_trips events lost".
flood() {
	local rec=$1
	local file=$out/loss.pcapng
	[ "$keep" = 1 ] && file=$out/loss-keep-$2.pcapng
	rm -f "$out/ready" "$file"
	"$rec" -w "$file" --ready-file "$out/ready" 2>"$out/loss.err" &
	local pid=$!
	for _ in $(seq 400); do [ -e "$out/ready" ] && break; sleep 0.05; done
	beside_start
	local rt
	rt=$(round_trips)
	beside_stop
	kill -INT "$pid"
	wait "$pid" || true
	local summary
	summary=$(grep -E "events written" "$out/loss.err" | tail -1)
	echo "$rt $(sed -nE 's/record: ([0-9]+) events written, ([0-9]+) lost.*/\1 \2/p' <<<"$summary")"
}

beside_start
base=$(round_trips)
beside_stop
echo "== $floods floods of $secs s, job beside: $beside (x$jobs_beside); nothing attached: $base round trips"
declare -A clean
for r in "${recs[@]}"; do clean[$r]=0; done
for i in $(seq "$floods"); do
	for r in "${recs[@]}"; do
		read -r rt ev lost < <(flood "$r" "$i-${r//\//_}")
		[ "${lost:-x}" = 0 ] && clean[$r]=$((clean[$r] + 1))
		awk -v i="$i" -v r="$r" -v rt="$rt" -v b="$base" -v s="$secs" -v e="${ev:-0}" -v l="${lost:-?}" 'BEGIN {
			printf "flood %2d  %-28s %8d round trips (%3.0f%%)  %9d events written (%.2f M/s)  %9s lost\n", i, r, rt, 100*rt/b, e, e/(s*1e6), l }'
	done
done
for r in "${recs[@]}"; do
	echo "$r: 0 lost in ${clean[$r]} of $floods floods"
done
