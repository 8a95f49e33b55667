package kmeta

import "strconv"

// Protocol families of netfilter (NFPROTO_* in include/uapi/linux/netfilter.h),
// as the values of the nf_pf and nft_family keys name them: the family
// names nft uses.
var nfFamilyNames = map[uint8]string{
	1:  "inet",
	2:  "ip",
	3:  "arp",
	5:  "netdev",
	7:  "bridge",
	10: "ip6",
}

// NFFamilyName returns the nft name of netfilter protocol family pf
// ("ip", "ip6", "inet", "arp", "bridge", "netdev"), or its number.
func NFFamilyName(pf uint8) string {
	if s, ok := nfFamilyNames[pf]; ok {
		return s
	}
	return strconv.Itoa(int(pf))
}

// NFHookName returns the nft name of netfilter hook number hook in
// protocol family pf: "prerouting", "input", "forward", "output",
// "postrouting", "ingress", "egress" (the numbering differs between the
// families: enum nf_inet_hooks, nf_dev_hooks, NF_ARP_*, nf_br_hooks), or
// the number.
func NFHookName(pf, hook uint8) string {
	var names []string
	switch pf {
	case 1, 2, 10: // inet, ip, ip6: enum nf_inet_hooks
		names = []string{"prerouting", "input", "forward", "output", "postrouting", "ingress"}
	case 5: // netdev: enum nf_dev_hooks
		names = []string{"ingress", "egress"}
	case 3: // arp: NF_ARP_IN, NF_ARP_OUT, NF_ARP_FORWARD
		names = []string{"input", "output", "forward"}
	case 7: // bridge: enum nf_br_hooks
		names = []string{"prerouting", "input", "forward", "output", "postrouting", "brouting"}
	}
	if int(hook) < len(names) {
		return names[hook]
	}
	return strconv.Itoa(int(hook))
}

// Netfilter verdicts (NF_DROP, NF_ACCEPT, ... in
// include/uapi/linux/netfilter.h), the low byte of nft_do_chain's return
// value, as the nf_verdict key names them.
const (
	NFDrop   = "drop"
	NFAccept = "accept"
	// NFStolen: the hook took the skb. nft_do_chain returns it for a
	// drop whose skb it freed itself (with the reason NETFILTER_DROP).
	NFStolen = "stolen"
)

var nfVerdictNames = [...]string{NFDrop, NFAccept, NFStolen, "queue", "repeat", "stop"}

// NFVerdictName returns the name of a netfilter verdict (the return value
// of nft_do_chain or of a hook function): its low byte is NF_DROP (0),
// NF_ACCEPT (1), NF_STOLEN, NF_QUEUE, NF_REPEAT or NF_STOP; the bits above
// carry an errno or a queue number.
func NFVerdictName(v uint32) string {
	if b := v & 0xff; int(b) < len(nfVerdictNames) {
		return nfVerdictNames[b]
	}
	return strconv.Itoa(int(v & 0xff))
}
