#!/usr/bin/env bash
# Prints `record check` as it reads on each VM kernel: the kernels of
# fetch-kernels.sh, and (where ../shared/kernels/5.10-selinux-repro exists)
# the SELinux reproduction kernel and Debian's 5.10 with its policy
# enforcing. Used for docs/BACKENDS.md.
#
# Usage: scripts/vm/record-check.sh [RECORD_BINARY]   (default: builds bin/record)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-}
if [ -z "$bin" ]; then
	go build -o bin/record ./cmd/record
	bin=bin/record
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/selinux"
cp "$bin" "$tmp/bin/record"
export PATH="$tmp/bin:$PATH"

while IFS=$'\t' read -r _ series release _; do
	echo "== $series ($release)"
	bash scripts/vm/run.sh -x record -t 200 "${PATHCAP_VM_CACHE:-$HOME/.cache/pathcap-vm}/$release" "$tmp/bin/record" check || true
done < <(bash scripts/vm/fetch-kernels.sh 2>/dev/null | grep '^kernel')

repro=${PATHCAP_VM_REPRO:-../shared/kernels/5.10-selinux-repro}
if [ -d "$repro" ]; then
	cp "$repro/policy/repro.pol" "$tmp/selinux/"
	cat >"$tmp/selinux/check.sh" <<'EOS'
#!/bin/sh
mkdir -p /sys/fs/selinux && mount -t selinuxfs selinuxfs /sys/fs/selinux
cat /work/selinux/repro.pol > /sys/fs/selinux/load && echo 1 > /sys/fs/selinux/enforce
record check
EOS
	chmod +x "$tmp/selinux/check.sh"
	stock=$(ls -d "${PATHCAP_VM_CACHE:-$HOME/.cache/pathcap-vm}"/5.10.* 2>/dev/null | tail -n 1)
	for k in "$repro/kernel" $stock; do
		echo "== $(basename "$(dirname "$k")")/$(basename "$k") with the reproduction policy enforcing"
		PATHCAP_VM_APPEND="security=selinux selinux=1 enforcing=0" \
			bash scripts/vm/run.sh -M none -x record -d "$tmp/selinux" -t 200 "$k" "$tmp/selinux/check.sh" || true
	done
fi
