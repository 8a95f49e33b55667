#!/usr/bin/env bash
# record against pwru in the same VM run (issue #18): the 6.12 VM kernel
# (software emulation, so only the ratios mean something), a ping flood
# across a veth pair between two namespaces, filter "host 10.88.0.2", and
# for each of
#   - nothing attached,
#   - pwru with kprobe-multi on every function taking an skb,
#   - record --backend kprobe-multi (the same functions, plus the tracepoints),
#   - record --backend tracepoint,
# the round trips the flood made, the time from start until ready (pwru:
# its "Listening for events" line; record: its --ready-file), the time from
# SIGINT until it exited (detach), events written and lost, bytes written.
#
# Usage: bench/peers-vm.sh [PWRU]
#
#   PWRU  a pwru binary (default ../shared/peers/pwru/pwru); without one the
#         pwru row is skipped with the reason
#
# Environment: SECONDS_PER_RUN (default 3), KERNEL (default 6.12: a series of
# scripts/vm/fetch-kernels.sh), PATHCAP_VM_CACHE (the kernel cache).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "peers-vm: skipped (qemu and the kernel cache need root here)"
	exit 0
fi
pwru=${1:-../shared/peers/pwru/pwru}
secs=${SECONDS_PER_RUN:-3}
series=${KERNEL:-6.12}
cache=${PATHCAP_VM_CACHE:-$HOME/.cache/pathcap-vm}
kdir=$(ls -d "$cache"/"$series".[0-9]* 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$kdir" ]; then
	scripts/vm/fetch-kernels.sh >&2
	kdir=$(ls -d "$cache"/"$series".[0-9]* 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [ -z "$kdir" ]; then
	echo "peers-vm: skipped (no $series kernel in $cache; scripts/vm/fetch-kernels.sh fetches them)"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pathcap-peers.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
go build -o "$work/bin/" ./cmd/record
tools=(-x record -x ping)
if [ -x "$pwru" ]; then
	cp "$pwru" "$work/bin/pwru"
	tools+=(-x pwru)
else
	echo "peers-vm: no pwru binary at $pwru: its row is skipped"
fi

# The script the VM runs (busybox sh: iputils' ping and iproute2's ip by
# their full paths, since busybox runs its own applets for those names).
cat >"$work/inner.sh" <<'EOF'
#!/bin/sh
secs=$1
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

now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
flood() {
	$IP netns exec a $PING -f -q -w "$secs" 10.88.0.2 2>/dev/null |
		sed -n 's/.* \([0-9]*\) received.*/\1/p'
}
# wait_for FILE PATTERN: until FILE has a line matching PATTERN (300 s at most).
wait_for() {
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 3000 ] && return 1
		sleep 0.1
	done
}

echo "ROW nothing $(flood) - - - - -"

if command -v pwru >/dev/null; then
	t=$(now)
	pwru --output-file /tmp/pwru.out 'host 10.88.0.2' 2>/tmp/pwru.err &
	pid=$!
	if wait_for /tmp/pwru.err 'Listening for events'; then
		ready=$(since "$t")
		rt=$(flood)
		t=$(now)
		kill -INT $pid
		wait $pid || true
		detach=$(since "$t")
		lines=$(wc -l </tmp/pwru.out)
		bytes=$(wc -c </tmp/pwru.out)
		echo "ROW pwru $rt $ready $detach $lines - $bytes"
	else
		echo "ROW pwru failed - - - - -"
		cat /tmp/pwru.err
		kill $pid 2>/dev/null
	fi
fi

for backend in kprobe-multi tracepoint; do
	rm -f /tmp/ready /tmp/r.pcapng
	t=$(now)
	record --backend "$backend" -w /tmp/r.pcapng --ready-file /tmp/ready 'host 10.88.0.2' 2>/tmp/record.err &
	pid=$!
	i=0
	while [ ! -e /tmp/ready ] && kill -0 $pid 2>/dev/null; do
		sleep 0.1
	done
	if [ ! -e /tmp/ready ]; then
		echo "ROW record-$backend failed - - - - -"
		cat /tmp/record.err
		continue
	fi
	ready=$(since "$t")
	rt=$(flood)
	t=$(now)
	kill -INT $pid
	wait $pid || true
	detach=$(since "$t")
	# record's last line: "record: N events written, M lost, B bytes"
	last=$(grep 'events written' /tmp/record.err | tail -n 1)
	ev=$(echo "$last" | sed -n 's/.* \([0-9]*\) events written.*/\1/p')
	lost=$(echo "$last" | sed -n 's/.*written, \([0-9]*\) lost.*/\1/p')
	bytes=$(wc -c </tmp/r.pcapng)
	echo "ROW record-$backend $rt $ready $detach $ev $lost $bytes"
	grep 'record: starting' /tmp/record.err | sed 's/^/  progress: /'
done
EOF
chmod 755 "$work/inner.sh"

echo "peers-vm: $(basename "$kdir"), ping -f for $secs s per row, filter 'host 10.88.0.2'"
out=$(PATH="$work/bin:$PATH" scripts/vm/run.sh -t 900 "${tools[@]}" "$kdir" "$work/inner.sh" "$secs")
printf '%s\n' "$out" | grep '^  progress: ' || true
printf '| %s | %s | %s | %s | %s | %s | %s |\n' run "round trips in ${secs} s" "start until ready (s)" "detach (s)" "events (pwru: output lines)" lost "bytes written"
printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n'
printf '%s\n' "$out" | awk '/^ROW / { printf "| %s | %s | %s | %s | %s | %s | %s |\n", $2, $3, $4, $5, $6, $7, $8 }'
