#!/usr/bin/env bash
# analyze html and analyze graph against analyze stats --json on the same
# generated recording, in one run: wall and CPU time (the fastest of RUNS
# runs) and peak RSS, then the same on a file a quarter the size, to show
# that memory does not grow with the input.
#
#   bench/html.sh                    1M events (about 350 MB)
#   EVENTS=5000000 RUNS=5 bench/html.sh
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-1000000}
runs=${RUNS:-3}
out=${BENCH_OUT:-bench/out}
mkdir -p "$out/bin"
go build -o "$out/bin/" ./cmd/analyze ./bench/genrec ./bench/measure
bin=$out/bin
file=$out/rec-$events.pcapng
[ -s "$file" ] || "$bin/genrec" -events "$events" -o "$file"
small=$((events / 4))
sfile=$out/rec-$small.pcapng
[ -s "$sfile" ] || "$bin/genrec" -events "$small" -o "$sfile"
page=$(mktemp --suffix=.html)
graph=$(mktemp --suffix=.svg)
trap 'rm -f "$page" "$graph"' EXIT
echo "input: $file, $events events, $(($(stat -L -c %s "$file") / 1000000)) MB; load average $(cut -d' ' -f1-3 /proc/loadavg)"

measure() { # file, command...
	local f=$1
	shift
	"$bin/measure" -runs "$runs" -- "$@" "$f"
}
printf '\n| command | events | wall s | CPU s | peak RSS MiB | wall vs stats | CPU vs stats |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n'
for f in "$sfile" "$file"; do
	n=$events
	[ "$f" = "$sfile" ] && n=$small
	base=""
	for cmd in "stats --json" "html -o $page" "graph --format svg -o $graph" "graph --format dot -o $graph"; do
		# shellcheck disable=SC2086
		m=$(measure "$f" "$bin/analyze" $cmd)
		wall=$(sed -E 's/.*wall_s=([0-9.]+).*/\1/' <<<"$m")
		cpu=$(sed -E 's/.*cpu_s=([0-9.]+).*/\1/' <<<"$m")
		rss=$(sed -E 's/.*maxrss_kib=([0-9]+).*/\1/' <<<"$m")
		[ -z "$base" ] && base="$wall $cpu"
		name=${cmd%% -o*}
		awk -v c="analyze $name" -v n="$n" -v w="$wall" -v u="$cpu" -v r="$rss" -v b="$base" 'BEGIN {
			split(b, x, " ")
			printf "| %s | %d | %.2f | %.2f | %.0f | %.2fx | %.2fx |\n", c, n, w, u, r / 1024, w / x[1], u / x[2]
		}'
	done
done
echo
echo "page: $(stat -c %s "$page") bytes (of the $events-event file)"
