#!/bin/sh
# Runs the pcapng benchmarks and prints, per case, our Reader/Writer against
# gopacket's pcapgo on the same data, from this one run.
#
# Usage: bench/pcapng/run.sh            (COUNT=5 by default)
#        COUNT=3 BENCH='Read|Write' bench/pcapng/run.sh
set -eu
cd "$(dirname "$0")/../.."

COUNT=${COUNT:-5}
BENCH=${BENCH:-.}
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT

echo "# go test ./pcapng/ -run '^\$' -bench '$BENCH' -benchmem -count $COUNT"
echo "# $(go version), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
go test ./pcapng/ -run '^$' -bench "$BENCH" -benchmem -count "$COUNT" >"$raw"
grep -E '^(goos|goarch|cpu|Benchmark)' "$raw" | sed 's/^/# /'
echo

awk '
/^Benchmark/ {
	name = $1
	sub(/-[0-9]+$/, "", name)      # the GOMAXPROCS suffix
	sub(/^Benchmark/, "", name)
	for (i = 2; i <= NF; i++) {
		if ($(i) == "ns/op") { ns[name] += $(i-1); nns[name]++ }
		if ($(i) == "MB/s") { mb[name] += $(i-1); nmb[name]++ }
		if ($(i) == "allocs/op") { al[name] += $(i-1); nal[name]++ }
	}
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
}
function avg(s, c) { return c ? s / c : 0 }
END {
	printf "| case | pathcap ns/op | pathcap MB/s | pathcap allocs/op | pcapgo call | pcapgo ns/op | pcapgo MB/s | pcapgo allocs/op | speed-up |\n"
	printf "|---|---:|---:|---:|---|---:|---:|---:|---:|\n"
	for (i = 1; i <= n; i++) {
		ours = order[i]
		if (ours !~ /\/pcapng$/) continue
		c = ours; sub(/\/pcapng$/, "", c)
		for (j = 1; j <= n; j++) {
			other = order[j]
			if (index(other, c "/pcapgo") != 1) continue
			call = other; sub(/.*\//, "", call); sub(/^pcapgo-?/, "", call)
			o = avg(ns[ours], nns[ours]); g = avg(ns[other], nns[other])
			printf "| %s | %.1f | %.0f | %.0f | %s | %.1f | %.0f | %.0f | %.2fx |\n", c, o, avg(mb[ours], nmb[ours]), avg(al[ours], nal[ours]), call, g, avg(mb[other], nmb[other]), avg(al[other], nal[other]), g / o
		}
	}
}' "$raw"
