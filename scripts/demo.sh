#!/usr/bin/env bash
# The main job on its built-in default: where root and BPF are available,
# record the built-in scenario (scripts/scenario.sh) for a few seconds and
# report on it; elsewhere, analyze the recording shipped in testdata/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin out
go build -o bin/ ./cmd/analyze

if [ "$(id -u)" -eq 0 ] && [ -r /sys/kernel/btf/vmlinux ] && go build -o bin/ ./cmd/record 2>/dev/null \
	&& bin/record --list >/dev/null 2>&1; then
	out=out/demo.pcapng
	trap 'scripts/scenario.sh teardown; [ -n "${rec:-}" ] && kill "$rec" 2>/dev/null || true' EXIT
	scripts/scenario.sh setup
	rm -f out/ready
	bin/record -w "$out" --ready-file out/ready --duration 30s "net 10.231.0.0/24" &
	rec=$!
	for _ in $(seq 100); do [ -e out/ready ] && break; sleep 0.1; done
	scripts/scenario.sh traffic
	kill -INT "$rec"
	wait "$rec"
	rec=
	echo
	bin/analyze report "$out"
	echo
	echo "Recording: $out"
	echo "  open it in Wireshark:        wireshark $out"
	echo "  with the pathcap fields:     wireshark -X lua_script:wireshark/pathcap.lua $out"
	echo "  one frame per packet:        bin/analyze wireshark -o out/demo-paths.pcapng $out"
else
	echo "demo: no root or no BPF here: analyzing the recording in testdata/ instead" >&2
	bin/analyze report testdata/recordings/host-veth.pcapng
fi
