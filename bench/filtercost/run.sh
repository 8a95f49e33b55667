#!/bin/sh
# Measures what one hit of the recorder's BPF program costs at
# net_dev_queue when the filter rejects it, against an empty tp_btf program
# attached to the same tracepoint during the same ping flood (mean ns per
# run from kernel.bpf_stats). Needs root. Prints a Markdown table.
#
#   bench/filtercost/run.sh            one run of every case
#   COUNT=3 bench/filtercost/run.sh    three runs each
set -eu
cd "$(dirname "$0")/../.."
count=${COUNT:-1}
go test -run '^$' -bench 'BenchmarkFilterCost' -benchtime 1x -count "$count" ./capture/ |
awk '
/^BenchmarkFilterCost\// {
	name = $1; sub(/^BenchmarkFilterCost\//, "", name); sub(/-[0-9]+$/, "", name)
	for (i = 3; i < NF; i++) {
		if ($(i+1) == "bpf-ns/run") ns[name] += $i
		if ($(i+1) == "empty-ns/run") empty[name] += $i
		if ($(i+1) == "events") events[name] += $i
		if ($(i+1) == "runs") runs[name] += $i
	}
	if (!(name in seen)) { order[n++] = name; seen[name] = 1 }
	cnt[name]++
}
END {
	print "| case | recorder ns/run | empty ns/run | ratio | runs | events |"
	print "|---|---:|---:|---:|---:|---:|"
	for (i = 0; i < n; i++) {
		c = order[i]; k = cnt[c]
		printf "| %s | %.1f | %.1f | %.2fx | %d | %d |\n", c, ns[c]/k, empty[c]/k, ns[c]/empty[c], runs[c]/k, events[c]/k
	}
}'
