#!/usr/bin/env bash
# Recorder cost on this host, measured in one run (needs root and BPF):
#  - ping -f round trips across a veth pair between namespaces with nothing
#    attached, while recording every packet on every skb tracepoint, and
#    while recording with a filter that matches nothing;
#  - the same for a TCP stream (iperf3);
#  - as references for both, an empty program and the floor program (the
#    unavoidable work of recording a hit) on every skb tracepoint;
#  - events per second written, events lost, bytes on disk per event;
#  - average ns per BPF program run (kernel.bpf_stats_enabled), in runs of
#    their own: the statistics slow every program run down.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "recorder benchmarks: skipped (need root for BPF and namespaces)"
	exit 0
fi
out=${BENCH_OUT:-bench/out}
secs=${SECONDS_PER_RUN:-4}
mkdir -p "$out/bin"
go build -o "$out/bin/" ./cmd/record ./bench/emptyhooks
rec=${RECORD:-$out/bin/record} # RECORD: another build to measure, e.g. main's
A=pcdemoA
B=pcdemoB
# The iperf3 server is stopped by its pid, not by name: other iperf3 servers may run.
# (An absolute path: iperf3 -D changes to / before it writes the file.)
pidf=$(realpath "$out")/iperf3.pid
trap 'scripts/scenario.sh teardown; [ -s "$pidf" ] && kill "$(cat "$pidf")" 2>/dev/null; rm -f "$pidf"; true' EXIT
scripts/scenario.sh setup
ip netns exec $A ping -c 1 -W 1 10.231.0.2 >/dev/null

# round_trips: ping -f for $secs seconds, prints the replies received.
round_trips() {
	ip netns exec $A ping -f -q -w "$secs" 10.231.0.2 2>/dev/null |
		sed -nE 's/.* ([0-9]+) received.*/\1/p'
}

# tcp_rate: a TCP stream for $secs seconds, prints bits per second.
tcp_rate() {
	ip netns exec $A iperf3 -c 10.231.0.2 -t "$secs" -J 2>/dev/null |
		sed -nE '/"sum_received"/,/}/s/.*"bits_per_second":[[:space:]]*([0-9.e+]+).*/\1/p' | head -1
}

# bpf_cost: mean ns per run of the recorder's programs during a 1 s ping
# flood (kernel.bpf_stats_enabled, run_time_ns / run_cnt over all hooks).
# Measured apart from the rates: the statistics add two clock reads to every
# program run, which is not the recorder's cost.
bpf_cost() {
	sysctl -qw kernel.bpf_stats_enabled=1
	ip netns exec $A ping -f -q -w 1 10.231.0.2 >/dev/null 2>&1 || true
	bpftool prog show -j 2>/dev/null | tr '{' '\n' |
		awk -F'[,:]' '/"name":"on_skb"/ { for (i = 1; i < NF; i++) { if ($i ~ /"run_time_ns"/) t += $(i+1); if ($i ~ /"run_cnt"/) c += $(i+1) } }
			END { if (c > 0) printf "%.0f", t / c; else print "n/a" }'
	sysctl -qw kernel.bpf_stats_enabled=0
}

# with_recorder ARGS -- COMMAND: runs COMMAND while recording with ARGS;
# sets $summary (record's last line).
with_recorder() {
	local args=()
	while [ "$1" != "--" ]; do
		args+=("$1")
		shift
	done
	shift
	rm -f "$out/ready"
	"$rec" -w "$out/bench.pcapng" --ready-file "$out/ready" "${args[@]}" 2>"$out/record.err" &
	local pid=$!
	for _ in $(seq 200); do [ -e "$out/ready" ] && break; sleep 0.05; done
	"$@"
	kill -INT "$pid"
	wait "$pid" || true
	summary=$(grep -E "events written" "$out/record.err" | tail -1)
}

# with_reference [-floor] -- COMMAND: runs COMMAND while an empty program
# (the least any recorder can cost) or, with -floor, the floor program (ring
# buffer reserve, 128-byte copy, submit: the unavoidable work of recording)
# is attached to every skb tracepoint.
with_reference() {
	local args=()
	while [ "$1" != "--" ]; do
		args+=("$1")
		shift
	done
	shift
	rm -f "$out/ready"
	"$out/bin/emptyhooks" -snaplen 128 -ready "$out/ready" "${args[@]}" 2>/dev/null &
	local pid=$!
	for _ in $(seq 200); do [ -e "$out/ready" ] && break; sleep 0.05; done
	"$@"
	kill -INT "$pid"
	wait "$pid" || true
}

# cost_with ARGS: bpf_cost while recording with ARGS, in a run of its own.
cost_with() {
	with_recorder "$@" -- bpf_cost >"$out/cost"
	cat "$out/cost"
}

echo "== ping -f across veth, $secs s per run"
base=$(round_trips)
echo "nothing attached:        $base round trips"
with_reference -- round_trips >"$out/rt"
empty=$(cat "$out/rt")
echo "empty program on every hook: $empty round trips ($(awk -v a="$empty" -v b="$base" 'BEGIN{printf "%.0f%%", 100*a/b}'), the least any recorder can cost)"
with_reference -floor -- round_trips >"$out/rt"
floor=$(cat "$out/rt")
echo "floor program on every hook: $floor round trips ($(awk -v a="$floor" -v b="$base" 'BEGIN{printf "%.0f%%", 100*a/b}'), the least any recorder of every hit can cost)"
with_recorder -s 128 -- round_trips >"$out/rt"
all=$(cat "$out/rt")
events=$(sed -nE 's/record: ([0-9]+) events written.*/\1/p' <<<"$summary")
lost=$(sed -nE 's/.* ([0-9]+) lost.*/\1/p' <<<"$summary")
bytes=$(sed -nE 's/.*lost, ([0-9]+) bytes.*/\1/p' <<<"$summary")
echo "recording everything:    $all round trips ($(awk -v a="$all" -v b="$base" 'BEGIN{printf "%.0f%%", 100*a/b}') of nothing attached)"
echo "  events written $events in ${secs}s ($(awk -v e="$events" -v s="$secs" 'BEGIN{printf "%.0f", e/s}') events/s), lost $lost"
echo "  bytes on disk per event: $(awk -v b="$bytes" -v e="$events" 'BEGIN{ if (e>0) printf "%.0f", b/e; else print "n/a"}')"
echo "  BPF ns per program run (bpf_stats, separate run): $(cost_with -s 128)"
if "$rec" -c 1 --duration 1ms -w /dev/null "udp port 7" 2>/dev/null; then
	with_recorder -s 128 'udp port 7' -- round_trips >"$out/rt"
	none=$(cat "$out/rt")
	echo "filter matching nothing: $none round trips ($(awk -v a="$none" -v b="$base" 'BEGIN{printf "%.0f%%", 100*a/b}')), BPF ns per run: $(cost_with -s 128 'udp port 7')"
fi

if command -v iperf3 >/dev/null; then
	echo "== TCP stream (iperf3) across veth, $secs s per run"
	rm -f "$pidf"
	ip netns exec $B iperf3 -s -D -I "$pidf" >/dev/null
	sleep 0.3
	tbase=$(tcp_rate)
	with_reference -- tcp_rate >"$out/tr"
	tempty=$(cat "$out/tr")
	with_reference -floor -- tcp_rate >"$out/tr"
	tfloor=$(cat "$out/tr")
	awk -v a="$tempty" -v f="$tfloor" -v b="$tbase" 'BEGIN{printf "empty program on every hook: %.2f Gbit/s (%.0f%%); floor program on every hook: %.2f Gbit/s (%.0f%%)\n", a/1e9, 100*a/b, f/1e9, 100*f/b}'
	with_recorder -s 128 -- tcp_rate >"$out/tr"
	tall=$(cat "$out/tr")
	tsummary=$summary
	with_recorder -s 128 'udp port 7' -- tcp_rate >"$out/tr"
	tnone=$(cat "$out/tr")
	awk -v a="$tall" -v n="$tnone" -v b="$tbase" 'BEGIN{printf "nothing attached: %.2f Gbit/s; recording everything: %.2f Gbit/s (%.0f%%); filter matching nothing: %.2f Gbit/s (%.0f%%)\n", b/1e9, a/1e9, 100*a/b, n/1e9, 100*n/b}'
	echo "  recording everything: $tsummary"
fi
