#!/usr/bin/env bash
# Makes, once, a minimal Debian trixie chroot with tshark (Wireshark 4.4), in
# which pathcap's wireshark tests run the Lua dissector and the profile a
# second time (see wireshark/README.md, "Wireshark 4.4"):
#
#   DIR/                 the chroot (debootstrap --variant=minbase
#                        --include=tshark trixie)
#   DIR/.pathcap-ready   written last: tshark's version line; a chroot
#                        without it is incomplete and is made again
#
# Usage: trixie-chroot.sh [DIR]
#
#   DIR  default ${PATHCAP_WIRESHARK_CACHE:-$HOME/.cache/pathcap-wireshark}/trixie
#
# The archive URI and keyring are those of the host's default apt sources
# (/etc/apt/sources.list.d/debian.sources, URIs: and Signed-By:). Making the
# chroot needs root, debootstrap (scripts/setup.sh installs it) and the
# network, and takes a few minutes; once made, the script only checks it and
# prints its path, without root or network.
#
# stdout: one line, the chroot's directory. Progress and errors go to stderr.
# Exit status: 0 ready, 1 it cannot be made here (the reason is on stderr).
set -euo pipefail

suite=trixie
dir=${1:-${PATHCAP_WIRESHARK_CACHE:-$HOME/.cache/pathcap-wireshark}/$suite}
main=/etc/apt/sources.list.d/debian.sources

log() { echo "trixie-chroot: $*" >&2; }

ready() {
	[ -s "$dir/.pathcap-ready" ] && [ -x "$dir/usr/bin/tshark" ]
}

if ready; then
	echo "$dir"
	exit 0
fi

PATH=$PATH:/usr/sbin:/sbin
if [ "$(id -u)" -ne 0 ]; then
	log "not root: cannot make the chroot $dir"
	exit 1
fi
for tool in debootstrap chroot flock; do
	if ! command -v "$tool" >/dev/null; then
		log "missing $tool (scripts/setup.sh installs it)"
		exit 1
	fi
done
if [ ! -r "$main" ]; then
	log "no $main: no archive URI to make the chroot from"
	exit 1
fi
uri=$(awk '/^URIs:/ {print $2; exit}' "$main")
keyring=$(awk '/^Signed-By:/ {print $2; exit}' "$main")
if [ -z "$uri" ]; then
	log "no URIs: line in $main"
	exit 1
fi

mkdir -p "$(dirname "$dir")"
# One maker at a time; a second caller waits, then finds the chroot ready.
exec 9>"$dir.lock"
flock 9
if ready; then
	echo "$dir"
	exit 0
fi

tmp=$dir.tmp
if [ -d "$tmp" ]; then
	log "removing the incomplete $tmp"
	# A failed earlier run may have left /proc mounted inside.
	umount -R "$tmp/proc" 2>/dev/null || true
	rm -rf --one-file-system "$tmp"
fi
if [ -d "$dir" ]; then
	log "removing the incomplete $dir"
	umount -R "$dir/proc" 2>/dev/null || true
	rm -rf --one-file-system "$dir"
fi

args=(--variant=minbase --include=tshark)
[ -n "$keyring" ] && args+=(--keyring="$keyring")
start=$(date +%s)
log "making $suite with tshark in $tmp from $uri (a few minutes)"
if ! debootstrap "${args[@]}" "$suite" "$tmp" "$uri" >"$dir.log" 2>&1; then
	log "debootstrap failed; last lines of $dir.log:"
	tail -n 15 "$dir.log" >&2
	exit 1
fi
# The package caches are not needed to run tshark.
rm -rf "${tmp:?}"/var/cache/apt/archives/*.deb "${tmp:?}"/var/lib/apt/lists/*_Packages
if ! version=$(chroot "$tmp" tshark -v 2>/dev/null | head -n 1) || [ -z "$version" ]; then
	log "tshark -v does not run in $tmp"
	exit 1
fi
echo "$version" >"$tmp/.pathcap-ready"
mv "$tmp" "$dir"
log "made $dir in $(($(date +%s) - start)) s: $version"
echo "$dir"
