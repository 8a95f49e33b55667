package capture

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/cilium/ebpf/btf"
	"github.com/pathcap/pathcap/internal/btfscan"
	"github.com/pathcap/pathcap/kmeta"
)

// maxFuncArg is the highest argument index at which a function's skb is
// looked for: kprobes read arguments from registers, and x86-64 passes the
// first five that a kprobe program reads (di, si, dx, cx, r8) there.
const maxFuncArg = 4

// defaultFunctions are the kernel functions the kprobe and fentry backends
// attach to when Config.Functions is empty (those the running kernel has
// and can trace): the main steps of the IPv4/IPv6 receive, local delivery,
// forward and transmit paths, bridging, netfilter and the transport
// protocols' receive functions. Those backends pay per function (a kprobe
// takes one RCU grace period to detach, an fentry program one verification
// to load), so they get a short list; kprobe-multi attaches every function
// that takes an skb.
var defaultFunctions = []string{
	// device layer
	"__netif_receive_skb", "__netif_receive_skb_one_core", "netif_receive_skb",
	"__dev_queue_xmit", "dev_hard_start_xmit", "validate_xmit_skb",
	// IPv4
	"ip_rcv", "ip_rcv_finish", "ip_local_deliver", "ip_local_deliver_finish",
	"ip_forward", "ip_forward_finish", "ip_output", "ip_finish_output", "ip_finish_output2",
	"__ip_local_out", "ip_send_skb", "ip_route_input_noref", "ip_defrag",
	// IPv6
	"ipv6_rcv", "ip6_rcv_finish", "ip6_input", "ip6_forward", "ip6_output",
	"ip6_finish_output", "ip6_finish_output2",
	// transport
	"icmp_rcv", "icmpv6_rcv", "udp_rcv", "__udp4_lib_rcv", "udpv6_rcv",
	"tcp_v4_rcv", "tcp_v6_rcv", "ping_rcv", "raw_local_deliver", "raw_rcv",
	"udp_queue_rcv_skb", "sock_queue_rcv_skb_reason", "__sock_queue_rcv_skb",
	// netfilter, bridge, ARP, tc
	"nf_hook_slow", "br_handle_frame", "br_forward", "br_pass_frame_up",
	"arp_rcv", "arp_process", "tcf_classify", "sch_direct_xmit",
	// the end of every skb, whatever freed it: tracking ends here
	"kfree_skbmem",
}

// DefaultFunctions returns the names of the kernel functions the kprobe
// and fentry backends attach to when Config.Functions is empty (those of
// them that the running kernel has and can trace): the main steps of the
// IPv4/IPv6 receive, local delivery, forward and transmit paths, bridging,
// netfilter and the transport protocols' receive functions. kprobe-multi
// attaches every function that takes an skb instead.
func DefaultFunctions() []string { return slices.Clone(defaultFunctions) }

// noStartFunctions never start following a packet (Hook.NoStart): they run
// on an skb after the kfree_skb/consume_skb tracepoints ended its tracking
// (each would otherwise start a ghost packet of the free's last steps), or
// on a clone being built inside skb_clone, before skb_clone returns and the
// clone is followed with its parent.
var noStartFunctions = []string{
	"__kfree_skb", "skb_release_all", "skb_release_head_state", "skb_release_data",
	"skb_free_head", "kfree_skbmem", "kfree_skb_partial", "skb_free_frag",
	"__copy_skb_header", "__skb_clone", "skb_copy_header", "skb_headers_offset_update",
	// destructors, called while an skb is freed
	"sock_wfree", "__sock_wfree", "tcp_wfree", "sock_rfree", "sock_efree", "sock_edemux",
}

// cloneFunctions return a clone or copy of their skb argument; the
// function backends hook their exits to follow clones of followed packets.
// pskb_copy is an inline wrapper of __pskb_copy_fclone.
var cloneFunctions = []string{"skb_clone", "skb_copy", "__pskb_copy_fclone", "skb_copy_expand"}

// ListFunctions returns the kernel functions that take a struct sk_buff *
// among their first five arguments and can be traced (those listed in
// available_filter_functions when it is readable), sorted by name. The
// function backends attach to these; see [Config.Functions]. It reads the
// kernel's BTF and needs no privileges beyond read access to
// /sys/kernel/btf/vmlinux.
func ListFunctions() ([]Hook, error) {
	spec, err := loadKernelBTF()
	if err != nil {
		return nil, err
	}
	tab := kernelTable(spec)
	return discoverFunctions(spec, tab, traceableFunctions(tab))
}

// discoverFunctions finds every function in spec that takes a struct
// sk_buff * among its first five arguments, keeping only those in
// traceable unless it is nil. The hooks' Kind is left 0: the backend sets
// it. tab, when not nil, is the raw type table of spec (kernelTable): the
// functions are found there and only they are decoded.
func discoverFunctions(spec *btf.Spec, tab *btfscan.Table, traceable map[string]bool) ([]Hook, error) {
	seen := make(map[string]bool)
	var fns []Hook
	err := eachType(spec, tab, func(id uint32) bool {
		return takesSKB(tab, id)
	}, func(typ btf.Type) {
		fn, ok := typ.(*btf.Func)
		if !ok || seen[fn.Name] {
			return
		}
		proto, ok := fn.Type.(*btf.FuncProto)
		if !ok {
			return
		}
		h, ok := hookFromFunc(fn.Name, proto)
		if !ok || (traceable != nil && !traceable[fn.Name]) {
			return
		}
		seen[fn.Name] = true
		fns = append(fns, h)
	})
	if err != nil {
		return nil, err
	}
	if len(fns) == 0 {
		return nil, fmt.Errorf("find functions taking struct sk_buff: %w", ErrNoHooks)
	}
	slices.SortFunc(fns, func(a, b Hook) int { return strings.Compare(a.Name, b.Name) })
	for i := range fns {
		fns[i].ID = i
	}
	return fns, nil
}

// hookFromFunc describes the function name with prototype proto, or
// reports false if it takes no skb among its first five arguments.
func hookFromFunc(name string, proto *btf.FuncProto) (Hook, bool) {
	h := Hook{
		Name:        name,
		SKBArg:      -1,
		DevArg:      -1,
		ReasonArg:   -1,
		LocationArg: -1,
		NArgs:       len(proto.Params),
		Clone:       slices.Contains(cloneFunctions, name),
		// The skb's memory goes here, whatever path freed it (also the
		// ones no tracepoint reports): its tracking entry ends.
		Frees:   name == kmeta.HookMemoryFree,
		NoStart: slices.Contains(noStartFunctions, name),
		NFState: name == nfHookSlow,
	}
	for i, p := range proto.Params {
		if i > maxFuncArg {
			break
		}
		if pointsToStruct(p.Type, "sk_buff") {
			h.SKBArg = i
			break
		}
	}
	switch t := btf.UnderlyingType(proto.Return).(type) {
	case *btf.Int:
		h.ret = retType{size: uint8(t.Size), signed: t.Encoding&btf.Signed != 0}
	case *btf.Enum:
		h.ret = retType{size: uint8(t.Size), signed: t.Signed}
	case *btf.Pointer:
		h.ret = retType{size: 8}
	}
	return h, h.SKBArg >= 0
}

// takesSKB reports whether type id of tab is a function with a struct
// sk_buff pointer among its first arguments.
func takesSKB(tab *btfscan.Table, id uint32) bool {
	if tab.Kind(id) != btfscan.KindFunc {
		return false
	}
	for i, p := range tab.Params(tab.Ref(id)) {
		if i > maxFuncArg {
			break
		}
		if tab.PointsToStruct(p, "sk_buff") {
			return true
		}
	}
	return false
}

// filterFunctionsPaths are where tracefs lists the functions that ftrace
// (and so kprobes on function entries, kprobe-multi and fentry) can
// attach to.
var filterFunctionsPaths = []string{
	"/sys/kernel/tracing/available_filter_functions",
	"/sys/kernel/debug/tracing/available_filter_functions",
}

// traceableFunctions returns the names of vmlinux functions that ftrace can
// attach to, or nil when the list is not readable (the caller then tries
// every function and skips those that fail to attach). Module functions
// are left out: only vmlinux BTF is searched. With tab, the kernel's raw
// type table, it keeps only the functions that take an skb (takesSKB):
// the list has tens of thousands of names, and a map of all of them cost
// 40 ms on the host and 0.4 s under software emulation at every start.
func traceableFunctions(tab *btfscan.Table) map[string]bool {
	var want map[string]bool
	if tab != nil {
		want = make(map[string]bool)
		for id := uint32(1); id <= uint32(tab.Len()); id++ {
			if takesSKB(tab, id) {
				want[tab.Name(id)] = true
			}
		}
	}
	for _, p := range filterFunctionsPaths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		names := make(map[string]bool, len(want))
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Bytes()
			if bytes.IndexByte(line, '[') >= 0 {
				continue // a module's function
			}
			name, _, _ := bytes.Cut(line, []byte{' '})
			// want[string(name)] does not allocate.
			if len(name) > 0 && (want == nil || want[string(name)]) {
				names[string(name)] = true
			}
		}
		err = sc.Err()
		f.Close()
		if err == nil && len(names) > 0 {
			return names
		}
	}
	return nil
}

// selectFunctions returns the functions of all whose name matches re, or
// the names in defaults if re is nil (or all of them if defaults is nil
// too).
func selectFunctions(all []Hook, re *regexp.Regexp, defaults []string) []Hook {
	var out []Hook
	for _, h := range all {
		switch {
		case re != nil && !re.MatchString(h.Name):
		case re == nil && defaults != nil && !slices.Contains(defaults, h.Name):
		default:
			out = append(out, h)
		}
	}
	return out
}

// compileFunctions compiles Config.Functions, "" meaning nil.
func compileFunctions(expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("compile function pattern %q: %w", expr, errors.Join(ErrUnknownHook, err))
	}
	return re, nil
}
