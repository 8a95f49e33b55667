package kmeta

import "strconv"

// BPF program kinds: the values of the prog_type key.
const (
	// ProgTC is a tc program (cls_bpf or tcx): it sees the kernel's
	// struct sk_buff and returns a TC_ACT_* verdict.
	ProgTC = "tc"
	// ProgXDP is an XDP program: it sees the driver's buffer before any
	// struct sk_buff exists and returns an XDP_* action.
	ProgXDP = "xdp"
)

// ProgLabel returns how reports name a program kind: "tc", "XDP".
func ProgLabel(progType string) string {
	if progType == ProgXDP {
		return "XDP"
	}
	return progType
}

// Verdicts of tc programs (include/uapi/linux/pkt_cls.h) and XDP programs
// (enum xdp_action, include/uapi/linux/bpf.h) that analyze gives a meaning.
const (
	TCActUnspec   = -1
	TCActOK       = 0
	TCActShot     = 2
	TCActStolen   = 4
	TCActRedirect = 7

	XDPAborted  = 0
	XDPDrop     = 1
	XDPPass     = 2
	XDPTx       = 3
	XDPRedirect = 4
)

var tcVerdicts = map[int64]string{
	-1: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY", 2: "TC_ACT_SHOT",
	3: "TC_ACT_PIPE", 4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED", 6: "TC_ACT_REPEAT",
	7: "TC_ACT_REDIRECT", 8: "TC_ACT_TRAP",
}

var xdpVerdicts = [...]string{"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"}

// VerdictName returns the name of the verdict ret of a BPF program of
// kind progType (ProgTC: "TC_ACT_SHOT", ProgXDP: "XDP_DROP"), or ret in
// decimal for a value without a name or another kind.
func VerdictName(progType string, ret int64) string {
	switch progType {
	case ProgTC:
		if n, ok := tcVerdicts[ret]; ok {
			return n
		}
	case ProgXDP:
		if ret >= 0 && ret < int64(len(xdpVerdicts)) {
			return xdpVerdicts[ret]
		}
	}
	return strconv.FormatInt(ret, 10)
}
