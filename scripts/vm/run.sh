#!/usr/bin/env bash
# Boots a kernel fetched by fetch-kernels.sh in qemu (software emulation) with
# a busybox initramfs, runs one program in it as root, and exits with that
# program's exit status. The program's output (stdout and stderr, through the
# serial console) is copied to this script's stdout as it arrives.
#
# Usage: run.sh [OPTIONS] KERNEL_DIR BINARY [ARGS...]
#
#   KERNEL_DIR   a kernel directory of the fetch-kernels.sh cache
#   BINARY       the program to run, ideally static (CGO_ENABLED=0); a
#                dynamically linked one gets its shared libraries copied in
#   ARGS         its arguments
#
# Options:
#   -e NAME=VALUE  set an environment variable for BINARY (repeatable);
#                  PATHCAP_IN_VM=1 and PATHCAP_VM_KERNEL=RELEASE are always set
#   -d DIR         copy DIR into /work in the VM (as /work/NAME, repeatable);
#                  BINARY runs in /work
#   -x TOOL        also install a host command (with its shared libraries) in
#                  /usr/local/bin, e.g. -x nft (repeatable)
#   -M MODULES     space-separated modules to load at boot (default: every
#                  module the kernel directory holds; "none" loads none); the
#                  others still load on demand through modprobe in the VM
#   -t SECONDS     kill qemu after this long (default 300)
#   -m MIB         VM memory (default 1024)
#   -s CPUS        VM CPUs (default 2)
#
# Environment:
#   PATHCAP_VM_TOOLS    host commands installed like -x (default "ip":
#                       iproute2, since busybox's ip has neither netns nor
#                       veth)
#   PATHCAP_VM_APPEND   extra kernel command line arguments
#   PATHCAP_VM_VERBOSE  1 copies the whole console (boot messages included)
#                       to stderr
#
# Exit status: BINARY's, or 124 when qemu timed out, or 125 when the VM ended
# without reporting one (kernel panic, init failure); the console is then
# printed to stderr.
#
# Inside the VM: proc, sysfs, devtmpfs, tmpfs (/tmp, /run), debugfs, tracefs
# (/sys/kernel/tracing), bpffs (/sys/fs/bpf) and cgroup2 (/sys/fs/cgroup) are
# mounted, lo is up, memlock is unlimited and the VM powers off once BINARY
# exits. PATH puts /usr/local/bin (the host tools) first, so exec.Command and
# "ip netns exec" find iproute2's ip; busybox's sh, though, runs its own
# applet for any name it has one for (ip, ping, ...), whatever PATH says, so
# shell scripts in the VM must call /usr/local/bin/ip by its full path. The
# kernel autoloads the kept modules through busybox modprobe (nft rules load
# nf_tables, nft_chain_nat and the rest on demand).
set -euo pipefail

usage() {
	sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2
	exit 2
}

envs=()
dirs=()
extra_tools=()
load_modules=
timeout=300
mem=1024
cpus=2
while getopts 'e:d:x:M:t:m:s:h' opt; do
	case "$opt" in
	e) envs+=("$OPTARG") ;;
	d) dirs+=("$OPTARG") ;;
	x) extra_tools+=("$OPTARG") ;;
	M) load_modules=$OPTARG ;;
	t) timeout=$OPTARG ;;
	m) mem=$OPTARG ;;
	s) cpus=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || usage
kdir=$1
binary=$2
shift 2

log() { echo "vm: $*" >&2; }

if [ ! -f "$kdir/vmlinuz" ] || [ ! -f "$kdir/info" ]; then
	log "$kdir is not a kernel directory of fetch-kernels.sh"
	exit 2
fi
[ -f "$binary" ] || {
	log "no such file: $binary"
	exit 2
}
command -v qemu-system-x86_64 >/dev/null || {
	log "qemu-system-x86_64 is not installed (scripts/setup.sh installs it)"
	exit 2
}
release=$(sed -n 's/^release=//p' "$kdir/info")

# sq quotes a word for sh.
sq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

stage=$(mktemp -d "${TMPDIR:-/tmp}/pathcap-vm.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,proc,sys,dev,tmp,run,etc,root,work,pathcap}
mkdir -p "$root/lib/modules/$release"
mkdir -p "$root/var" && ln -s ../run "$root/var/run"

# busybox and its applets, as symbolic links.
busybox=$(command -v busybox) || {
	log "busybox is not installed (scripts/setup.sh installs busybox-static)"
	exit 2
}
if ldd "$busybox" >/dev/null 2>&1; then
	log "$busybox is dynamically linked; install busybox-static"
	exit 2
fi
cp "$busybox" "$root/bin/busybox"
while read -r applet; do
	case "$applet" in
	linuxrc | sbin/init) continue ;;
	esac
	[ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done < <("$busybox" --list-full)

# install_elf copies an executable to DEST in the VM and, if it is
# dynamically linked, its loader and shared libraries to their host paths.
install_elf() {
	local src=$1 dest=$2 lib
	cp "$src" "$root/$dest"
	chmod 755 "$root/$dest"
	ldd "$src" >/dev/null 2>&1 || return 0
	for lib in $(ldd "$src" | grep -o '/[^ )]*'); do
		if [ ! -e "$root/$lib" ]; then
			mkdir -p "$root/$(dirname "$lib")"
			cp -L "$lib" "$root/$lib"
		fi
	done
}

# shellcheck disable=SC2206 # PATHCAP_VM_TOOLS is a space-separated list
tools=(${PATHCAP_VM_TOOLS-ip} "${extra_tools[@]}")
for tool in "${tools[@]}"; do
	path=$(PATH=$PATH:/usr/sbin:/sbin command -v "$tool") || {
		log "host command $tool not found; not installed in the VM"
		continue
	}
	install_elf "$path" "usr/local/bin/$tool"
done

name=$(basename "$binary")
install_elf "$binary" "pathcap/$name"

for d in "${dirs[@]}"; do
	cp -a "$d" "$root/work/"
done

# Modules, with load.order (dependencies first) and the files busybox
# modprobe reads.
cp -a "$kdir/modules/." "$root/lib/modules/$release/"
if [ -n "$load_modules" ]; then
	# Each named module with its dependencies, in load.order's order.
	deps=$(for m in $load_modules; do
		m=${m//-/_}
		awk -v m="$m" '{ p = $1; sub(/:$/, "", p); n = p; sub(/.*\//, "", n); sub(/\.ko$/, "", n);
			gsub(/-/, "_", n); if (n == m) { print p; for (i = 2; i <= NF; i++) print $i } }' \
			"$kdir/modules/modules.dep"
	done)
	grep -Fxf <(printf '%s\n' "$deps") "$kdir/modules/load.order" >"$root/lib/modules/$release/boot.order" || true
else
	cp "$kdir/modules/load.order" "$root/lib/modules/$release/boot.order"
fi

# Markers on the console: a random token so that nothing else prints them.
token=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
start="PATHCAP-VM-START $token"
end="PATHCAP-VM-EXIT $token"

{
	cat <<-'EOF'
		#!/bin/sh
		export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp
		mount -t proc proc /proc
		mount -t sysfs sysfs /sys
		mount -t devtmpfs devtmpfs /dev
		exec </dev/console >/dev/console 2>&1
		mkdir -p /dev/pts /dev/shm
		mount -t devpts devpts /dev/pts
		mount -t tmpfs tmpfs /dev/shm
		mount -t tmpfs tmpfs /tmp
		mount -t tmpfs tmpfs /run
		mount -t debugfs debugfs /sys/kernel/debug
		mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
		mount -t bpf bpf /sys/fs/bpf
		mount -t cgroup2 cgroup2 /sys/fs/cgroup
		ulimit -l unlimited
		r=$(uname -r)
		while read -r m; do
			insmod "/lib/modules/$r/$m" || echo "init: insmod $m failed"
		done <"/lib/modules/$r/boot.order"
		ip link set lo up
	EOF
	echo "export PATHCAP_IN_VM=1 PATHCAP_VM_KERNEL=$(sq "$release")"
	for kv in "${envs[@]}"; do
		case "$kv" in
		[A-Za-z_]*=*) echo "export ${kv%%=*}=$(sq "${kv#*=}")" ;;
		*)
			log "bad -e $kv (want NAME=VALUE)"
			exit 2
			;;
		esac
	done
	echo "cd /work"
	echo "echo; echo $(sq "$start")"
	printf '%s' "/pathcap/$(sq "$name")"
	for a in "$@"; do printf ' %s' "$(sq "$a")"; done
	echo
	cat <<-EOF
		rc=\$?
		echo "$end \$rc"
		sync
		poweroff -f
	EOF
} >"$root/init"
chmod 755 "$root/init"
# /dev/console for the kernel to open before /init runs (root only; /init
# reopens it from devtmpfs anyway).
mknod "$root/dev/console" c 5 1 2>/dev/null || true

initrd=$stage/initrd.cpio
(cd "$root" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) >"$initrd"

console=$stage/console
t0=$(date +%s.%N)
set +e
timeout -k 5 "$timeout" qemu-system-x86_64 \
	-accel tcg,thread=multi -cpu max -m "$mem" -smp "$cpus" \
	-kernel "$kdir/vmlinuz" -initrd "$initrd" \
	-append "console=ttyS0 quiet panic=-1 ${PATHCAP_VM_APPEND:-}" \
	-nographic -no-reboot -nic none </dev/null 2>&1 |
	tr -d '\r' | tee "$console" |
	if [ "${PATHCAP_VM_VERBOSE:-0}" = 1 ]; then
		cat >&2
	else
		awk -v s="$start" -v e="$end" '
			# The start marker may follow escape sequences on its line.
			(i = index($0, s)) && substr($0, i) == s { on = 1; next }
			index($0, e) == 1 { on = 0 }
			on { print; fflush() }'
	fi
qemu_status=${PIPESTATUS[0]}
set -e
t1=$(date +%s.%N)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')

rc=$(awk -v e="$end" 'index($0, e " ") == 1 { print substr($0, length(e) + 2) }' "$console" | tail -n 1)
if [ -z "$rc" ]; then
	if [ "$qemu_status" = 124 ] || [ "$qemu_status" = 137 ]; then
		log "$release: timed out after ${timeout}s; console:"
		rc=124
	else
		log "$release: the VM ended (qemu status $qemu_status) without reporting an exit status; console:"
		rc=125
	fi
	cat "$console" >&2
	exit "$rc"
fi
log "$release: exit status $rc, ${secs}s for boot, run and power-off"
exit "$rc"
