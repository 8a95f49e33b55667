#!/usr/bin/env bash
# record --bytes all against --bytes changed in the 6.12 VM (issue #18):
# software emulation, so only ratios within one run mean something. A ping
# flood across a veth pair between two namespaces, filter "host 10.88.0.2",
# recorded by record with each backend and mode, one after the other in one
# boot; for each: round trips, events written and lost, bytes written,
# followed packets (analyze stats: packets and clones) and file bytes per
# followed packet.
#
# Usage: bench/bytes-vm.sh
#
# Environment: SECONDS_PER_RUN (default 3), KERNEL (default 6.12),
# BACKENDS (default "kprobe-multi tracepoint"), PATHCAP_VM_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "bytes-vm: skipped (qemu and the kernel cache need root here)"
	exit 0
fi
secs=${SECONDS_PER_RUN:-3}
series=${KERNEL:-6.12}
backends=${BACKENDS:-kprobe-multi tracepoint}
cache=${PATHCAP_VM_CACHE:-$HOME/.cache/pathcap-vm}
kdir=$(ls -d "$cache"/"$series".[0-9]* 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$kdir" ]; then
	echo "bytes-vm: skipped (no $series kernel in $cache; scripts/vm/fetch-kernels.sh fetches them)"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pathcap-bytes.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
go build -o "$work/bin/" ./cmd/record ./cmd/analyze

cat >"$work/inner.sh" <<'EOF'
#!/bin/sh
secs=$1
shift
IP=/usr/local/bin/ip
PING=/usr/local/bin/ping
$IP netns add a
$IP netns add b
$IP link add va netns a type veth peer name vb netns b
$IP -n a addr add 10.88.0.1/24 dev va
$IP -n b addr add 10.88.0.2/24 dev vb
$IP -n a link set va up
$IP -n b link set vb up
$IP -n a link set lo up
$IP -n b link set lo up
$IP netns exec a $PING -c 1 -W 2 10.88.0.2 >/dev/null
flood() {
	$IP netns exec a $PING -f -q -w "$secs" 10.88.0.2 2>/dev/null |
		sed -n 's/.* \([0-9]*\) received.*/\1/p'
}
for backend in "$@"; do
	for mode in all changed; do
		rm -f /tmp/ready /tmp/r.pcapng
		record --backend "$backend" --bytes "$mode" -w /tmp/r.pcapng --ready-file /tmp/ready 'host 10.88.0.2' 2>/tmp/record.err &
		pid=$!
		while [ ! -e /tmp/ready ] && kill -0 $pid 2>/dev/null; do
			sleep 0.1
		done
		if [ ! -e /tmp/ready ]; then
			echo "ROW $backend $mode failed - - - - -"
			cat /tmp/record.err
			continue
		fi
		rt=$(flood)
		kill -INT $pid
		wait $pid || true
		last=$(grep 'events written' /tmp/record.err | tail -n 1)
		ev=$(echo "$last" | sed -n 's/.* \([0-9]*\) events written.*/\1/p')
		lost=$(echo "$last" | sed -n 's/.*written, \([0-9]*\) lost.*/\1/p')
		bytes=$(wc -c </tmp/r.pcapng)
		stats=$(analyze stats --json /tmp/r.pcapng 2>/dev/null)
		pk=$(echo "$stats" | sed -n 's/^{"packets":\([0-9]*\),.*/\1/p')
		cl=$(echo "$stats" | sed -n 's/.*"clones":\([0-9]*\),.*/\1/p')
		echo "ROW $backend $mode $rt $ev $lost $bytes $((pk + ${cl:-0}))"
	done
done
EOF
chmod 755 "$work/inner.sh"

echo "bytes-vm: $(basename "$kdir"), ping -f for $secs s per row, filter 'host 10.88.0.2'"
# shellcheck disable=SC2086
# Under the VM lock internal/vmtest takes: one emulated VM at a time.
out=$(PATH="$work/bin:$PATH" flock "$cache/.vm.lock" scripts/vm/run.sh -t 1200 -x record -x analyze -x ping "$kdir" "$work/inner.sh" "$secs" $backends)
printf '| backend | --bytes | round trips in %s s | events written | lost | file bytes | followed packets | file bytes per followed packet |\n' "$secs"
printf '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n'
printf '%s\n' "$out" | awk '/^ROW / { per = ($8 > 0) ? sprintf("%.0f", $7 / $8) : "-"; printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $2, $3, $4, $5, $6, $7, $8, per }'
printf '%s\n' "$out" | grep -v '^ROW ' | tail -n 20 >&2 || true
