#!/usr/bin/env bash
# The analyzer against tshark on real recordings made by record: a ping
# flood across a veth pair between two network namespaces, recorded on every
# skb tracepoint, until EVENTS events (5.4 M by default, about 1.75 GB), and
# three more such recordings, made one after the other, for peak memory at
# four times the input (all four analyzed together; one recording four times
# as long loses events on this machine: the disk does not keep up for that
# long, and a lossy recording leaves more packets open, which is another
# input, not a larger one). The recordings are kept (in REAL_DIR, by
# default ~/.cache/pathcap-bench, never in the tree) and reused by later
# runs; making them needs root.
#
# It prints the load average, tshark's time (one run of
#   tshark -r FILE -T fields -e frame.packet_id -e frame.comment),
# each analyze command's wall and CPU time (the median of RUNS runs), its
# ratio to tshark, and peak RSS (wait4's ru_maxrss, as /usr/bin/time -v
# gives it) at 1x and at 4x the input.
#
#   bench/analyze-real.sh
#   REAL_DIR=/tmp/rec RUNS=5 bench/analyze-real.sh
#   ANALYZE=/path/to/other/analyze bench/analyze-real.sh   # another build
#   TSHARK=0 bench/analyze-real.sh                          # without tshark
#   BASE=/path/to/old/analyze bench/analyze-real.sh         # and an older build, run by turns
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-5400000}
runs=${RUNS:-3}
dir=${REAL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pathcap-bench}
out=${BENCH_OUT:-bench/out}
mkdir -p "$out/bin" "$dir"
go build -o "$out/bin/" ./cmd/record ./cmd/analyze ./bench/measure
bin=$out/bin
analyze=${ANALYZE:-$bin/analyze}
file1=$dir/real-$events.pcapng
files4=("$file1" "$dir/real-$events-2.pcapng" "$dir/real-$events-3.pcapng" "$dir/real-$events-4.pcapng")

# record_flood EVENTS FILE: records a ping flood across a veth pair between
# two namespaces of its own until EVENTS events are written.
record_flood() {
	local n=$1 f=$2
	if [ "$(id -u)" -ne 0 ]; then
		echo "analyze on real recordings: skipped ($f is missing, and making it needs root for BPF and namespaces)"
		exit 0
	fi
	local A=pcrealA B=pcrealB
	ip netns del $A 2>/dev/null || true
	ip netns del $B 2>/dev/null || true
	ip netns add $A
	ip netns add $B
	ip link add vreal-a netns $A type veth peer name vreal-b netns $B
	ip -n $A addr add 10.234.0.1/24 dev vreal-a
	ip -n $B addr add 10.234.0.2/24 dev vreal-b
	for ns in $A $B; do ip -n $ns link set lo up; done
	ip -n $A link set vreal-a up
	ip -n $B link set vreal-b up
	ip netns exec $A ping -c 1 -W 1 10.234.0.2 >/dev/null
	rm -f "$f" "$out/ready"
	# A large ring: the file system takes the events more slowly than
	# the flood makes them.
	"$bin/record" --backend tracepoint --ring-size $((256 << 20)) -c "$n" -w "$f" \
		--ready-file "$out/ready" 2>"$out/record.err" &
	local pid=$!
	for _ in $(seq 200); do [ -e "$out/ready" ] && break; sleep 0.05; done
	ip netns exec $A ping -f -q -w 300 10.234.0.2 >/dev/null 2>&1 &
	local ping=$!
	wait "$pid" || true
	kill "$ping" 2>/dev/null || true
	wait "$ping" 2>/dev/null || true
	ip netns del $A
	ip netns del $B
	grep -E 'events written' "$out/record.err" >&2
	[ -s "$f" ]
}
for f in "${files4[@]}"; do
	[ -s "$f" ] || record_flood "$events" "$f"
done
size1=$(stat -L -c %s "$file1")
size4=$(cat "${files4[@]}" | wc -c)
echo "input: $file1 ($events events, $((size1 / 1000000)) MB); 4x: ${files4[*]} ($((size4 / 1000000)) MB)"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
# Every file in the page cache before anything is timed.
cat "${files4[@]}" >/dev/null

# timed N COMMAND...: N runs; prints "wall cpu rss" of the median run by
# wall time (rss: the largest of the runs).
timed() {
	local n=$1
	shift
	for _ in $(seq "$n"); do
		"$bin/measure" -- "$@"
	done | sed -E 's/wall_s=([0-9.]+) cpu_s=([0-9.]+) maxrss_kib=([0-9]+)/\1 \2 \3/' |
		sort -n | awk '{ w[NR] = $1; c[NR] = $2; if ($3 > r) r = $3 } END { m = int((NR + 1) / 2); print w[m], c[m], r }'
}

tshark_wall=0
if [ "${TSHARK:-1}" != 0 ] && command -v tshark >/dev/null; then
	read -r tshark_wall tshark_cpu tshark_rss < <(timed 1 tshark -r "$file1" -T fields -e frame.packet_id -e frame.comment)
	echo "tshark -T fields: ${tshark_wall} s wall, ${tshark_cpu} s CPU, $((tshark_rss / 1024)) MiB"
fi

printf '\n| command | wall s (median of %d) | CPU s | events/s | vs tshark | peak RSS MiB 1x | 4x: wall s | peak RSS MiB 4x | RSS 4x/1x |\n' "$runs"
printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
builds=("$analyze")
[ -n "${BASE:-}" ] && builds+=("$BASE")
for cmd in "paths --json" "report" "stats" "stats --json"; do
	for a in "${builds[@]}"; do
		name="analyze $cmd"
		[ "$a" = "${BASE:-}" ] && name="$name (BASE)"
		# shellcheck disable=SC2086
		read -r w1 c1 r1 < <(timed "$runs" "$a" $cmd "$file1")
		# shellcheck disable=SC2086
		read -r w4 _ r4 < <(timed 1 "$a" $cmd "${files4[@]}")
		awk -v n="$name" -v w="$w1" -v c="$c1" -v r="$r1" -v e="$events" -v t="$tshark_wall" \
			-v w4="$w4" -v r4="$r4" 'BEGIN {
			ratio = (t > 0) ? sprintf("**%.1fx**", t / w) : "n/a"
			printf "| %s | %.2f | %.2f | %.0f | %s | %.0f | %.2f | %.0f | %.2f |\n", n, w, c, e / w, ratio, r / 1024, w4, r4 / 1024, r4 / r
		}'
	done
done
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
