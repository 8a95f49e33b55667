#!/bin/sh
# Runs the pcapng benchmarks and prints, per case, our Reader/Writer against
# gopacket's pcapgo on the same data, from this one run: the median of the
# COUNT runs of each benchmark.
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
		if ($(i) == "ns/op") ns[name, ++nns[name]] = $(i-1)
		if ($(i) == "MB/s") mb[name, ++nmb[name]] = $(i-1)
		if ($(i) == "allocs/op") al[name, ++nal[name]] = $(i-1)
	}
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
}
# med returns the median of the c values v[name, 1..c]: with other jobs on
# the machine, single runs stray, and the median ignores them.
function med(v, name, c,    i, j, t, a) {
	if (!c) return 0
	for (i = 1; i <= c; i++) a[i] = v[name, i] + 0
	for (i = 2; i <= c; i++)
		for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return c % 2 ? a[(c+1)/2] : (a[c/2] + a[c/2+1]) / 2
}
# dur prints ns/op, in ms for the whole-file cases.
function dur(ns) { return ns >= 1e6 ? sprintf("%.1f ms", ns / 1e6) : sprintf("%.1f", ns) }
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
			o = med(ns, ours, nns[ours]); g = med(ns, other, nns[other])
			printf "| %s | %s | %.0f | %.0f | %s | %s | %.0f | %.0f | %.2fx |\n", c, dur(o), med(mb, ours, nmb[ours]), med(al, ours, nal[ours]), call, dur(g), med(mb, other, nmb[other]), med(al, other, nal[other]), g / o
		}
	}
}' "$raw"
