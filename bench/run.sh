#!/usr/bin/env bash
# Every benchmark, each comparison measured in one run and printed with its
# raw figures. The recorder part needs root and skips otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "### pcapng reader and writer vs gopacket pcapgo"
bash bench/pcapng/run.sh
echo
echo "### recorder, user side (decode + comment + block, one core)"
go test ./recording/ -run '^$' -bench WriteEvent -benchtime 2s | grep -E 'Benchmark|events/s'
echo
echo "### recorder, kernel side and host impact"
bash bench/recorder.sh
echo
echo "### recorded hit against the floor program (root)"
[ "$(id -u)" -eq 0 ] && go test ./capture/ -run '^$' -bench RecordFloor -benchtime 1x -count 3 | grep -E "Benchmark|ns/run" || echo "skipped: needs root"
echo
echo "### analyze vs tshark and a pcapgo read loop"
bash bench/analyze.sh
echo
echo "### analyze vs tshark on real recordings made by record (root to make them)"
bash bench/analyze-real.sh
echo
echo "### analyze html and graph vs analyze stats"
bash bench/html.sh
