#!/usr/bin/env bash
# Analyzer throughput and memory against tshark and a bare gopacket pcapgo
# read loop, on the same generated recording, in one run.
#
#   bench/analyze.sh            5M events (about 1.7 GB)
#   EVENTS=1000000 bench/analyze.sh
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-5000000}
out=${BENCH_OUT:-bench/out}
mkdir -p "$out/bin"
go build -o "$out/bin/" ./cmd/analyze ./bench/genrec ./bench/measure ./bench/pcapgoread
bin=$out/bin
file=$out/rec-$events.pcapng
[ -s "$file" ] || "$bin/genrec" -events "$events" -o "$file"
size=$(stat -L -c %s "$file")
echo "input: $file, $events events, $((size / 1000000)) MB"

run() { # name, command...
	local name=$1
	shift
	local m
	m=$("$bin/measure" -runs "${RUNS:-1}" -- "$@")
	local wall rss
	wall=$(sed -E 's/.*wall_s=([0-9.]+).*/\1/' <<<"$m")
	rss=$(sed -E 's/.*maxrss_kib=([0-9]+).*/\1/' <<<"$m")
	printf '%s %s %s\n' "$name" "$wall" "$rss"
}

results=$(mktemp)
{
	run "analyze-paths-json" "$bin/analyze" paths --json "$file"
	run "analyze-report" "$bin/analyze" report "$file"
	run "pcapgo-read-loop" "$bin/pcapgoread" "$file"
	if command -v tshark >/dev/null; then
		run "tshark-fields" tshark -r "$file" -T fields -e frame.packet_id -e frame.comment
	fi
} >"$results"

tshark_wall=$(awk '$1=="tshark-fields"{print $2}' "$results")
printf '\n| tool | wall s | events/s | MB/s | peak RSS MiB | speed vs tshark |\n| --- | ---: | ---: | ---: | ---: | ---: |\n'
while read -r name wall rss; do
	awk -v n="$name" -v w="$wall" -v r="$rss" -v e="$events" -v s="$size" -v t="${tshark_wall:-0}" 'BEGIN {
		ratio = (t > 0) ? sprintf("%.1fx", t / w) : "n/a"
		printf "| %s | %.2f | %.0f | %.0f | %.0f | %s |\n", n, w, e / w, s / w / 1e6, r / 1024, ratio
	}'
done <"$results"

# Peak memory must not grow with the input: the same analysis on a file a
# quarter and one four times that size.
small=$((events / 4))
sfile=$out/rec-$small.pcapng
[ -s "$sfile" ] || "$bin/genrec" -events "$small" -o "$sfile"
rss_small=$("$bin/measure" -- "$bin/analyze" paths --json "$sfile" | sed -E 's/.*maxrss_kib=([0-9]+).*/\1/')
rss_big=$(awk '$1=="analyze-paths-json"{print $3}' "$results")
printf '\npeak RSS of analyze paths --json: %d MiB at %d events, %d MiB at %d events (ratio %.2f)\n' \
	$((rss_small / 1024)) "$small" $((rss_big / 1024)) "$events" "$(awk -v a="$rss_big" -v b="$rss_small" 'BEGIN{print a/b}')"
rm -f "$results"
