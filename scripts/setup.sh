#!/usr/bin/env bash
# Installs the system packages pathcap's build, tests and benchmarks use,
# skipping apt-get entirely when everything is already present.
set -euo pipefail

# command -> Debian package that provides it
declare -A want=(
	[make]=make
	[tshark]=tshark
	[capinfos]=tshark
	[tcpdump]=tcpdump
	[clang]=clang
	[llvm-strip]=llvm
	[bpftool]=bpftool
	[ip]=iproute2
	[ping]=iputils-ping
	[iperf3]=iperf3
	[nft]=nftables
	[qemu-system-x86_64]=qemu-system-x86
	[busybox]=busybox-static
	[cpio]=cpio
	[xz]=xz-utils
	[depmod]=kmod
	[chromium]=chromium
	[dot]=graphviz
	[setcap]=libcap2-bin
	[pgrep]=procps
	[debootstrap]=debootstrap
)
# headers and libraries -> package
declare -A want_files=(
	[/usr/include/pcap/pcap.h]=libpcap-dev
	[/usr/include/bpf/bpf_helpers.h]=libbpf-dev
	[/usr/include/dbus-1.0/dbus/dbus.h]=libdbus-1-dev
)

missing=()
for cmd in "${!want[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
for f in "${!want_files[@]}"; do
	[ -e "$f" ] || missing+=("${want_files[$f]}")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "setup: missing packages: ${missing[*]} (run as root to install them)" >&2
	exit 0
fi
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "setup: installing ${pkgs[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
