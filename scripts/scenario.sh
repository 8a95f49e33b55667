#!/usr/bin/env bash
# The built-in scenario: two network namespaces joined by a veth pair, and
# traffic whose paths through the kernel are worth seeing.
#
#   scripts/scenario.sh setup      create namespaces pcdemoA/pcdemoB (10.231.0.1, 10.231.0.2)
#   scripts/scenario.sh traffic    ping, UDP to a closed port, TCP to a closed port
#   scripts/scenario.sh teardown   remove them
set -euo pipefail
A=pcdemoA
B=pcdemoB
IPA=10.231.0.1
IPB=10.231.0.2

case "${1:-}" in
setup)
	"$0" teardown 2>/dev/null || true
	ip netns add $A
	ip netns add $B
	ip link add veth-a netns $A type veth peer name veth-b netns $B
	ip -n $A addr add $IPA/24 dev veth-a
	ip -n $B addr add $IPB/24 dev veth-b
	for ns in $A $B; do
		ip -n $ns link set lo up
	done
	ip -n $A link set veth-a up
	ip -n $B link set veth-b up
	;;
traffic)
	# An echo request and its reply, three times.
	ip netns exec $A ping -c 3 -i 0.2 -W 1 $IPB >/dev/null
	# UDP to a port nobody listens on: dropped with NO_SOCKET.
	ip netns exec $A bash -c "echo pathcap > /dev/udp/$IPB/9" || true
	# TCP to a closed port: the SYN is answered by a reset.
	ip netns exec $A bash -c "exec 3<>/dev/tcp/$IPB/81" 2>/dev/null || true
	sleep 0.3
	;;
teardown)
	ip netns del $A 2>/dev/null || true
	ip netns del $B 2>/dev/null || true
	;;
*)
	echo "usage: $0 setup|traffic|teardown" >&2
	exit 2
	;;
esac
