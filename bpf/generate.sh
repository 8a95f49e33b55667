#!/bin/sh
# Regenerates the Go bindings and BPF objects in this directory from the C
# sources. Needs clang and libbpf headers (Debian: clang llvm libbpf-dev).
#
#   bpf/generate.sh          regenerate (vmlinux.h is kept as committed)
#   bpf/generate.sh -btf     also re-dump vmlinux.h from the running kernel
set -eu
cd "$(dirname "$0")"
if [ "${1:-}" = "-btf" ]; then
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h.tmp
	mv vmlinux.h.tmp vmlinux.h
fi
exec go generate ./
