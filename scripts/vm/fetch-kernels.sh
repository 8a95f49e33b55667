#!/usr/bin/env bash
# Downloads the Debian kernels pathcap's VM tests boot (5.10 from bullseye,
# 6.1 from bookworm, 6.12 from bookworm-backports), and unpacks the parts the
# tests need into a cache directory:
#
#   DIR/RELEASE/vmlinuz          the kernel image qemu boots
#   DIR/RELEASE/config           its build configuration
#   DIR/RELEASE/modules/         the kept modules, decompressed, at their
#                                lib/modules-relative paths, with a filtered
#                                modules.dep and modules.alias (for busybox
#                                modprobe) and load.order (dependencies first)
#   DIR/RELEASE/info             series=, release=, package=, version=
#
# Usage: fetch-kernels.sh [--refresh] [DIR]
#
#   DIR        cache directory; default ${PATHCAP_VM_CACHE:-$HOME/.cache/pathcap-vm}
#   --refresh  run apt-get update first, so the newest packages are seen
#              (also PATHCAP_VM_REFRESH=1)
#
# bookworm-backports and bullseye are added to apt's sources when missing
# (as root), with the archive URI and keyring of the default sources file.
# bullseye is pinned to priority 1 (/etc/apt/preferences.d/pathcap-bullseye)
# so that apt-get install never takes a bullseye package in place of the
# host's bookworm one; this script only ever runs apt-get download of an
# explicit package name.
#
# Environment:
#   PATHCAP_VM_MODULES  space-separated module names to keep (their
#                       dependencies are added); the default covers veth,
#                       nftables NAT, sch_ingress and cls_bpf (names a
#                       kernel lacks are reported and skipped)
#   PATHCAP_VM_SERIES   space-separated series to fetch (default all:
#                       5.10 6.1 6.12)
#
# One line per kernel goes to stdout, tab-separated:
#   kernel SERIES RELEASE DIR/RELEASE/vmlinuz PACKAGE VERSION
# Progress goes to stderr. Kernels already in the cache are not downloaded
# again; an older cached kernel of a series is used, with a warning, when the
# newest one cannot be downloaded.
set -euo pipefail

refresh=${PATHCAP_VM_REFRESH:-0}
if [ "${1:-}" = "--refresh" ]; then
	refresh=1
	shift
fi
cache=${1:-${PATHCAP_VM_CACHE:-$HOME/.cache/pathcap-vm}}
modules=${PATHCAP_VM_MODULES:-veth nf_tables nft_chain_nat nft_nat nft_masq nft_ct nf_nat nf_conntrack nf_defrag_ipv4 nf_defrag_ipv6 sch_ingress cls_bpf}

# series name -> extended regexp matching the binary package's name. The
# newest match (version sort of the name) is used.
declare -A pattern=(
	[5.10]='^linux-image-5\.10\.0-[0-9]+-cloud-amd64-unsigned$'
	[6.1]='^linux-image-6\.1\.0-[0-9]+-cloud-amd64$'
	[6.12]='^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$'
)
# shellcheck disable=SC2206 # a space-separated list
series_order=(${PATHCAP_VM_SERIES:-5.10 6.1 6.12})
for s in "${series_order[@]}"; do
	[ -n "${pattern[$s]:-}" ] || {
		echo "fetch-kernels: unknown series $s (known: ${!pattern[*]})" >&2
		exit 2
	}
done

log() { echo "fetch-kernels: $*" >&2; }

# depmod lives in /usr/sbin, which a user's PATH may lack.
PATH=$PATH:/usr/sbin:/sbin
for tool in apt-get apt-cache dpkg-deb depmod xz; do
	if ! command -v "$tool" >/dev/null; then
		log "missing $tool (scripts/setup.sh installs it)"
		exit 1
	fi
done

mkdir -p "$cache"

# ensure_suite adds a Debian suite to apt's sources (a deb822 file,
# /etc/apt/sources.list.d/pathcap-SUITE.sources), reusing the archive URI and
# keyring of the default Debian sources file, unless another sources file
# has it; PIN, when given, is written as the suite's priority in
# /etc/apt/preferences.d/pathcap-SUITE. It prints "added" when it wrote the
# sources file.
ensure_suite() {
	local suite=$1 pin=${2:-} main=/etc/apt/sources.list.d/debian.sources uri keyring f
	local file=/etc/apt/sources.list.d/pathcap-$suite.sources
	local prefs=/etc/apt/preferences.d/pathcap-$suite
	# A suite configured by someone else is left alone, pinning included.
	# Suites: lines list several suites ("bookworm bookworm-updates").
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && [ "$f" != "$file" ] || continue
		if grep -Eqs "^(Suites:.*[[:space:]]|deb(-src)?[[:space:]].*[[:space:]])$suite([[:space:]]|$)" "$f"; then
			return 0
		fi
	done
	if [ "$(id -u)" -ne 0 ]; then
		[ -f "$file" ] || log "not root: cannot add $suite to apt's sources"
		return 0
	fi
	if [ -n "$pin" ] && [ ! -f "$prefs" ]; then
		{
			echo "# Written by pathcap's scripts/vm/fetch-kernels.sh: $suite is only"
			echo "# used to download kernels, never to install or upgrade packages."
			echo "Package: *"
			echo "Pin: release n=$suite"
			echo "Pin-Priority: $pin"
		} >"$prefs"
		log "pinned $suite to priority $pin ($prefs)"
	fi
	[ -f "$file" ] && return 0
	if [ ! -r "$main" ]; then
		log "no $main: cannot add $suite"
		return 0
	fi
	uri=$(awk '/^URIs:/ {print $2; exit}' "$main")
	keyring=$(awk '/^Signed-By:/ {print $2; exit}' "$main")
	{
		echo "Types: deb"
		echo "URIs: $uri"
		echo "Suites: $suite"
		echo "Components: main"
		[ -n "$keyring" ] && echo "Signed-By: $keyring"
	} >"$file"
	log "added $suite ($file)"
	echo added
}

# ensure_suites adds the suites the wanted series come from; it prints
# "added" when it wrote a sources file.
ensure_suites() {
	local s added=
	for s in "${series_order[@]}"; do
		case "$s" in
		5.10) [ "$(ensure_suite bullseye 1)" = added ] && added=1 ;;
		6.12) [ "$(ensure_suite bookworm-backports)" = added ] && added=1 ;;
		esac
	done
	[ -z "$added" ] || echo added
}

updated=0
apt_update() {
	[ "$updated" -eq 1 ] && return 0
	updated=1
	if [ "$(id -u)" -ne 0 ]; then
		log "not root: skipping apt-get update"
		return 0
	fi
	log "apt-get update"
	apt-get update -qq >&2 || log "apt-get update failed; using the lists apt already has"
}

# names holds apt's linux-image-* package names, read once by load_names
# (each apt-cache run costs about a second) and again after apt_update.
names=
load_names() {
	names=$(apt-cache pkgnames linux-image- 2>/dev/null || true)
}

# newest_package prints the newest package name in names matching a regexp.
newest_package() {
	grep -E "$1" <<<"$names" | sort -V | tail -n 1 || true
}

# cached_release prints the release of the newest complete cached kernel of a
# series.
cached_release() {
	local s=$1 f
	for f in "$cache"/*/info; do
		[ -f "$f" ] || continue
		if grep -qx "series=$s" "$f"; then
			sed -n 's/^release=//p' "$f"
		fi
	done | sort -V | tail -n 1
}

# closure prints the kept modules' paths (relative to lib/modules/RELEASE),
# dependencies before the modules needing them, one per line, given
# modules.dep and the wanted names. Names compare with '-' and '_' equal.
closure() {
	awk -v want="$2" '
		function norm(p,   n) {
			n = p; sub(/.*\//, "", n); sub(/\.ko(\.(xz|zst|gz))?$/, "", n)
			gsub(/-/, "_", n); return n
		}
		function visit(n,   i, k, d) {
			if (n in seen) return
			seen[n] = 1
			k = split(deps[n], d, " ")
			# modules.dep lists the deepest dependencies last: load them first.
			for (i = k; i >= 1; i--) visit(norm(d[i]))
			print path[n]
		}
		{
			p = $1; sub(/:$/, "", p); n = norm(p)
			path[n] = p; deps[n] = ""
			for (i = 2; i <= NF; i++) deps[n] = deps[n] " " $i
		}
		END {
			k = split(want, w, " ")
			for (i = 1; i <= k; i++) {
				n = w[i]; gsub(/-/, "_", n)
				if (!(n in path)) { print "missing " w[i] > "/dev/stderr"; continue }
				visit(n)
			}
		}' "$1"
}

# unpack downloads PACKAGE and keeps the parts the tests need in
# $cache/RELEASE. It fails without touching an existing cache entry. Run it
# in a subshell: it sets an EXIT trap.
unpack() {
	local series=$1 pkg=$2 release=$3 tmp deb root moddir rel out
	tmp=$(mktemp -d "$cache/.fetch-$release.XXXXXX")
	# shellcheck disable=SC2064 # expand now: tmp is local
	trap "rm -rf '$tmp'" EXIT
	log "downloading $pkg"
	# -o APT::Sandbox::User=root: the temporary directory is private to root.
	(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2)
	deb=$(echo "$tmp"/*.deb)
	root=$tmp/root
	dpkg-deb -x "$deb" "$root"
	out=$tmp/out
	mkdir -p "$out/modules"
	cp "$root/boot/vmlinuz-$release" "$out/vmlinuz"
	cp "$root/boot/config-$release" "$out/config"
	# boot/System.map is a placeholder in Debian's packages (the real one is in
	# the -dbg package); /proc/kallsyms in the VM has the symbols.
	# Debian's 6.12 packages install modules under /usr/lib, 6.1 under /lib.
	# The package has no modules.dep (the installer makes it): run depmod.
	moddir=$root/lib/modules/$release
	if [ ! -d "$moddir" ]; then
		mkdir -p "$root/lib/modules"
		ln -s "../../usr/lib/modules/$release" "$moddir"
	fi
	depmod -b "$root" "$release"
	closure "$moddir/modules.dep" "$modules" >"$tmp/keep"
	while read -r rel; do
		mkdir -p "$out/modules/$(dirname "$rel")"
		case "$rel" in
		*.xz) xz -dc "$moddir/$rel" >"$out/modules/${rel%.xz}" ;;
		*.zst) zstd -qdc "$moddir/$rel" >"$out/modules/${rel%.zst}" ;;
		*.gz) gzip -dc "$moddir/$rel" >"$out/modules/${rel%.gz}" ;;
		*) cp "$moddir/$rel" "$out/modules/$rel" ;;
		esac
	done <"$tmp/keep"
	sed -E 's/\.ko\.(xz|zst|gz)$/.ko/' "$tmp/keep" >"$out/modules/load.order"
	# modules.dep and modules.alias restricted to the kept modules, with
	# uncompressed names, so busybox modprobe (and the kernel's module
	# autoloading through it) finds them.
	awk 'NR == FNR { keep[$1] = 1; next }
		{ p = $1; sub(/:$/, "", p); if (p in keep) print }' \
		"$tmp/keep" "$moddir/modules.dep" |
		sed -E 's/\.ko\.(xz|zst|gz)(:| |$)/.ko\2/g' >"$out/modules/modules.dep"
	awk 'NR == FNR { n = $1; sub(/.*\//, "", n); sub(/\.ko.*/, "", n); gsub(/-/, "_", n); keep[n] = 1; next }
		$1 == "alias" { n = $3; gsub(/-/, "_", n); if (n in keep) print }' \
		"$tmp/keep" "$moddir/modules.alias" >"$out/modules/modules.alias"
	{
		echo "series=$series"
		echo "release=$release"
		echo "package=$pkg"
		echo "version=$(dpkg-deb -f "$deb" Version)"
		echo "modules=$modules"
	} >"$out/info"
	rm -rf "${cache:?}/$release"
	mv "$out" "$cache/$release"
	log "unpacked $release ($(du -sh "$cache/$release" | cut -f1))"
}

if [ "$refresh" = 1 ]; then
	ensure_suites >/dev/null
	apt_update
elif [ "$(ensure_suites)" = added ]; then
	apt_update
fi

load_names
status=0
for series in "${series_order[@]}"; do
	pkg=$(newest_package "${pattern[$series]}")
	if [ -z "$pkg" ] && [ "$updated" -eq 0 ]; then
		apt_update
		load_names
		pkg=$(newest_package "${pattern[$series]}")
	fi
	release=
	if [ -n "$pkg" ]; then
		release=${pkg#linux-image-}
		release=${release%-unsigned}
	fi
	state=none
	if [ -n "$release" ] && [ -f "$cache/$release/info" ] &&
		grep -qx "modules=$modules" "$cache/$release/info"; then
		state=cached # already there, with the same module set
	elif [ -n "$pkg" ]; then
		# A subshell outside any condition, so that set -e applies inside.
		set +e
		(
			set -e
			unpack "$series" "$pkg" "$release"
		)
		rc=$?
		set -e
		[ "$rc" -eq 0 ] && state=new
	fi
	if [ "$state" = cached ]; then
		:
	elif [ "$state" = new ]; then
		# Drop older releases of the same series.
		for f in "$cache"/*/info; do
			[ -f "$f" ] || continue
			d=$(dirname "$f")
			if grep -qx "series=$series" "$f" && [ "$(basename "$d")" != "$release" ]; then
				rm -rf "$d"
			fi
		done
	else
		release=$(cached_release "$series")
		if [ -z "$release" ]; then
			log "no kernel for series $series (apt lists no ${pattern[$series]}, or its download failed)"
			status=1
			continue
		fi
		log "warning: using cached $release for series $series"
	fi
	info=$cache/$release/info
	printf 'kernel\t%s\t%s\t%s\t%s\t%s\n' "$series" "$release" "$cache/$release/vmlinuz" \
		"$(sed -n 's/^package=//p' "$info")" "$(sed -n 's/^version=//p' "$info")"
done
exit "$status"
