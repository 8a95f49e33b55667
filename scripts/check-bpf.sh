#!/bin/sh
# Fails when the committed BPF objects and Go bindings (bpf/*_bpfel.o,
# bpf/*_bpfel.go) are not what their C sources give: regenerates them in a
# scratch copy of the module (go.mod, go.sum, bpf/) and compares, so the
# checkout is never touched. Needs clang and the libbpf headers
# (scripts/setup.sh installs them).
#
#   scripts/check-bpf.sh         check this checkout
#   scripts/check-bpf.sh DIR     check the module at DIR
set -eu
src=$(cd "${1:-$(dirname "$0")/..}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
cp "$src/go.mod" "$src/go.sum" "$tmp/"
cp -R "$src/bpf" "$tmp/bpf"
# Generated from scratch: a generator that writes nothing is caught too.
rm -f "$tmp"/bpf/*_bpfel.go "$tmp"/bpf/*_bpfel.o
if ! (cd "$tmp" && sh bpf/generate.sh) >"$tmp/generate.log" 2>&1; then
	cat "$tmp/generate.log" >&2
	echo "check-bpf: the BPF sources in $src/bpf do not build" >&2
	exit 1
fi
stale=""
for f in "$tmp"/bpf/*_bpfel.go "$tmp"/bpf/*_bpfel.o; do
	name=$(basename "$f")
	if [ ! -e "$src/bpf/$name" ]; then
		stale="$stale $name(not committed)"
	elif ! cmp -s "$f" "$src/bpf/$name"; then
		stale="$stale $name"
	fi
done
for f in "$src"/bpf/*_bpfel.go "$src"/bpf/*_bpfel.o; do
	name=$(basename "$f")
	[ -e "$tmp/bpf/$name" ] || stale="$stale $name(no longer generated)"
done
if [ -n "$stale" ]; then
	echo "check-bpf: committed BPF objects are stale, they differ from what the sources give:$stale" >&2
	echo "check-bpf: run make generate and commit the result (or check the clang version: $(clang --version | head -n 1))" >&2
	exit 1
fi
echo "check-bpf: the committed BPF objects match their sources"
