package kmeta

import "testing"

// TestNFNames checks the names of netfilter families, hooks and verdicts
// against the kernel's numbering (include/uapi/linux/netfilter.h,
// netfilter_arp.h, netfilter_bridge.h).
func TestNFNames(t *testing.T) {
	for _, c := range []struct {
		pf, hook   uint8
		family, hk string
	}{
		{2, 0, "ip", "prerouting"}, {2, 1, "ip", "input"}, {10, 2, "ip6", "forward"}, {1, 3, "inet", "output"},
		{2, 4, "ip", "postrouting"}, {1, 5, "inet", "ingress"}, {5, 0, "netdev", "ingress"}, {5, 1, "netdev", "egress"},
		{3, 1, "arp", "output"}, {7, 5, "bridge", "brouting"}, {2, 9, "ip", "9"}, {99, 1, "99", "1"},
	} {
		if f, h := NFFamilyName(c.pf), NFHookName(c.pf, c.hook); f != c.family || h != c.hk {
			t.Errorf("pf %d hook %d: %s %s, want %s %s", c.pf, c.hook, f, h, c.family, c.hk)
		}
	}
	for v, want := range map[uint32]string{0: "drop", 1: "accept", 2: "stolen", 3: "queue", 4: "repeat", 5: "stop", 0xff01: "accept", 0x10000: "drop", 9: "9"} {
		if got := NFVerdictName(v); got != want {
			t.Errorf("verdict %#x: %s, want %s", v, got, want)
		}
	}
}
