package main_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/internal/testenv"
)

// TestRecordFilterErrors checks that a filter the recorder cannot use
// stops record with exit status 2 and a message saying why, before it
// creates its output or attaches anything.
func TestRecordFilterErrors(t *testing.T) {
	bin := testenv.BuildCommand(t, "record")
	for _, tc := range []struct {
		args []string
		want []string // in the message
	}{
		{[]string{"inbound"}, []string{`filter expression "inbound"`, "packet type", "not available in kernel hooks"}},
		{[]string{"tcp", "and", "outbound"}, []string{"packet type", "--hooks"}},
		{[]string{"ifindex", "3"}, []string{"interface index", "--ifname"}},
		{[]string{"tcp", "port", "banana"}, []string{"unknown port 'banana'", "pcap-filter(7)"}},
		{[]string{"ip", "and", "("}, []string{"syntax error", "pcap-filter(7)"}},
		{[]string{"--mark", "garbage"}, []string{`--mark "garbage"`, "VALUE/MASK"}},
		{[]string{"--mark", "0x10/0x0f"}, []string{"outside mask"}},
		{[]string{"--netns", "/nonexistent/ns"}, []string{`--netns "/nonexistent/ns"`}},
		{[]string{"--ifname", "pathcap-none0"}, []string{`--ifname "pathcap-none0"`}},
	} {
		dir := t.TempDir()
		out, ready := filepath.Join(dir, "out.pcapng"), filepath.Join(dir, "ready")
		args := append([]string{"-w", out, "--ready-file", ready, "--duration", "5s"}, tc.args...)
		msg, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("record %v: %v, want exit status 2\n%s", tc.args, err, msg)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(msg), w) {
				t.Errorf("record %v: message does not say %q:\n%s", tc.args, w, msg)
			}
		}
		if strings.Contains(string(msg), "hooks attached") {
			t.Errorf("record %v: attached hooks:\n%s", tc.args, msg)
		}
		for _, f := range []string{out, ready} {
			if _, err := os.Stat(f); err == nil {
				t.Errorf("record %v: created %s", tc.args, f)
			}
		}
	}
}

// TestRecordFilterFollowsDNAT records with a filter naming a destination
// that nftables in the receiving namespace rewrites (DNAT): the packet
// stays recorded under the same id at the hooks after the rewrite, where
// its bytes no longer match. With --track=false it is not.
func TestRecordFilterFollowsDNAT(t *testing.T) {
	testenv.RequireRoot(t)
	nft := testenv.RequireTool(t, "nft")
	bin := testenv.BuildCommand(t, "record")
	pair := testenv.NewVethPair(t)
	const vip = "192.0.2.99"
	pair.Exec(t, pair.NSA, "ip", "route", "add", vip+"/32", "via", pair.IPB)
	pair.Exec(t, pair.NSB, nft, "add table ip pathcap_nat; "+
		"add chain ip pathcap_nat pre { type nat hook prerouting priority -100; }; "+
		"add rule ip pathcap_nat pre ip daddr "+vip+" dnat to "+pair.IPB)
	// Resolve the neighbour first.
	pair.Exec(t, pair.NSA, "ping", "-c", "1", "-W", "2", pair.IPB)

	vipAddr, addrB := netip.MustParseAddr(vip), netip.MustParseAddr(pair.IPB)
	for _, track := range []bool{true, false} {
		t.Run(fmt.Sprintf("track=%v", track), func(t *testing.T) {
			rec := startRecord(t, bin, "--hooks", "net_dev_queue,netif_receive_skb,kfree_skb,consume_skb",
				fmt.Sprintf("--track=%v", track), "icmp", "and", "host", vip)
			pair.Exec(t, pair.NSA, "ping", "-c", "1", "-W", "2", vip)
			rec.stop(t)
			events, _ := readRecording(t, rec.file)

			var id uint64
			for _, e := range events {
				proto, _, dst, off, ok := ipv4(e.data)
				if ok && proto == 1 && dst == vipAddr && e.data[off] == 8 &&
					e.meta.Hook == "net_dev_queue" && e.meta.NetNS == pair.InodeA {
					id = e.id
				}
			}
			if id == 0 {
				t.Fatalf("no echo request to %s at A's net_dev_queue among %d events", vip, len(events))
			}
			var path []string
			beforeNAT, afterNAT := false, false
			for _, e := range events {
				if e.id != id {
					continue
				}
				_, _, dst, _, ok := ipv4(e.data)
				if !ok {
					t.Errorf("packet %d at %s is not IPv4: %x", id, e.meta.Hook, e.data)
					continue
				}
				path = append(path, fmt.Sprintf("%s(netns %d, dst %s)", e.meta.Hook, e.meta.NetNS, dst))
				if e.meta.NetNS != pair.InodeB {
					continue
				}
				switch dst {
				case vipAddr:
					beforeNAT = beforeNAT || e.meta.Hook == "netif_receive_skb"
				case addrB:
					afterNAT = true
				}
			}
			t.Logf("packet %d: %s", id, strings.Join(path, " -> "))
			if !beforeNAT {
				t.Errorf("packet %d not recorded at B's netif_receive_skb with destination %s", id, vip)
			}
			if track && !afterNAT {
				t.Errorf("packet %d not recorded after DNAT to %s in B: tracking lost it", id, pair.IPB)
			}
			if !track && afterNAT {
				t.Errorf("--track=false: packet %d recorded after DNAT, where its bytes no longer match", id)
			}
		})
	}
}
