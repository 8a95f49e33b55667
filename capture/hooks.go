package capture

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/cilium/ebpf/btf"
	"github.com/pathcap/pathcap/internal/btfscan"
	"github.com/pathcap/pathcap/kmeta"
)

// HookKind says what kind of kernel hook a [Hook] is.
type HookKind uint8

const (
	// HookTracepoint is a kernel tracepoint, attached as a BTF raw
	// tracepoint (tp_btf).
	HookTracepoint HookKind = iota + 1
	// HookKprobe is the entry of a kernel function, attached as a kprobe
	// (one link per function) or through kprobe-multi (one link for all).
	HookKprobe
	// HookFentry is the entry of a kernel function, attached as fentry.
	HookFentry
	// HookFexit is the exit of a kernel function, attached as fexit: the
	// event carries the return value.
	HookFexit
	// HookKretprobe is the return of a kernel function, attached as a
	// kretprobe (or its kprobe-multi form): the event carries the return
	// value. Only clone functions (skb_clone & co) are hooked this way.
	HookKretprobe
)

// String returns the kind's short name: "tracepoint", "kprobe", "fentry",
// "fexit" or "kretprobe".
func (k HookKind) String() string {
	switch k {
	case HookTracepoint:
		return "tracepoint"
	case HookKprobe:
		return "kprobe"
	case HookFentry:
		return "fentry"
	case HookFexit:
		return "fexit"
	case HookKretprobe:
		return "kretprobe"
	default:
		return fmt.Sprintf("HookKind(%d)", uint8(k))
	}
}

// maxArg is the highest argument index the BPF program can read from a
// tracepoint; functions are limited to maxFuncArg.
const maxArg = 5

// Hook is a kernel hook that sees a struct sk_buff: a tracepoint, or a
// kernel function's entry or exit.
//
// Argument indices count the hook's own arguments from 0 (for a
// tracepoint without the tracing context that the kernel passes first);
// -1 means absent.
type Hook struct {
	// ID is the hook's index: in [ListHooks] the position in the list, in
	// [Recorder.Hooks] the id carried by events.
	ID int
	// Name is the tracepoint's or function's name, e.g. "net_dev_xmit"
	// or "ip_rcv".
	Name string
	// Kind is the kind of hook.
	Kind HookKind
	// SKBArg is the index of the struct sk_buff * argument.
	SKBArg int
	// DevArg is the index of a struct net_device * argument, or -1.
	DevArg int
	// ReasonArg is the index of an enum skb_drop_reason argument, or -1.
	ReasonArg int
	// LocationArg is the index of the code address that frees the skb,
	// or -1.
	LocationArg int
	// Frees reports that the skb is freed at this hook, so its address no
	// longer identifies the packet afterwards.
	Frees bool
	// NArgs is a function's number of arguments (0 for tracepoints).
	NArgs int
	// NoStart reports a function that never starts following a packet:
	// it sees skbs only while they are freed (after the free tracepoints
	// ended their tracking) or while a clone is built inside skb_clone
	// (before its return gives the clone its id and parent).
	NoStart bool
	// Clone reports a function that returns a clone or copy of its skb
	// argument (skb_clone, skb_copy, ...).
	Clone bool
	// Prog is the BPF program whose entry or exit this hook is (Config.TraceTC),
	// nil for a kernel hook. Name is then the kernel's symbol of the
	// program, bpf_prog_TAG_NAME, as stacks show it.
	Prog *BPFProgram
	// NFState reports a function whose argument after the skb is a
	// struct nf_hook_state * (nf_hook_slow): its events carry the
	// netfilter hook and family (Event.NF).
	NFState bool
	// NFTChain reports the exit of nft_do_chain (Config.Netfilter): its
	// events carry the nftables base chain and its verdict.
	NFTChain bool

	// ret describes a function's return type, for sign extension.
	ret retType
}

// retType is what a function returns: nothing, or an integer or pointer of
// size bytes.
type retType struct {
	size   uint8 // 0: void
	signed bool
}

// extend returns v, the raw 64-bit return register, as the function's
// return type's value widened to int64.
func (r retType) extend(v uint64) int64 {
	switch {
	case r.size == 0 || r.size >= 8:
		return int64(v)
	case r.signed:
		shift := 64 - 8*uint(r.size)
		return int64(v<<shift) >> shift
	default:
		return int64(v & (1<<(8*uint(r.size)) - 1))
	}
}

// freeHooks are the tracepoints after which an skb is gone.
var freeHooks = []string{kmeta.HookDrop, kmeta.HookConsume}

// ListHooks returns the hooks that the running kernel offers, sorted by
// name. It reads the kernel's BTF and needs no privileges beyond read access
// to /sys/kernel/btf/vmlinux.
func ListHooks() ([]Hook, error) {
	spec, err := loadKernelBTF()
	if err != nil {
		return nil, err
	}
	return discoverHooks(spec, kernelTable(spec))
}

// CheckBTF reports whether the running kernel's BTF can be read, without
// parsing it (which takes a few hundred milliseconds): an error wrapping
// ErrNoBTF when the kernel has none, ErrPermission when it may not be
// read.
func CheckBTF() error {
	f, err := os.Open("/sys/kernel/btf/vmlinux")
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("load kernel BTF: %w: %w", ErrNoBTF, err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("load kernel BTF: %w: %w", ErrPermission, err)
	case err != nil:
		return fmt.Errorf("load kernel BTF: %w", err)
	}
	return f.Close()
}

// loadKernelBTF loads the running kernel's BTF, mapping its absence to
// ErrNoBTF.
func loadKernelBTF() (*btf.Spec, error) {
	return kernelBTF(btf.NewCache())
}

// kernelBTF returns the running kernel's BTF from cache, mapping its
// absence to ErrNoBTF. Every load of a recorder shares one cache: without
// it, each program's load parses the kernel's BTF again (about 20 ms
// each).
func kernelBTF(cache *btf.Cache) (*btf.Spec, error) {
	spec, err := cache.Kernel()
	if err != nil {
		if errors.Is(err, btf.ErrNotSupported) || errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("load kernel BTF: %w: %w", ErrNoBTF, err)
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("load kernel BTF: %w: %w", ErrPermission, err)
		}
		return nil, fmt.Errorf("load kernel BTF: %w", err)
	}
	return spec, nil
}

// discoverHooks finds every btf_trace_<name> typedef in spec whose function
// prototype takes a struct sk_buff pointer. tab, when not nil, is the raw
// type table of spec (kernelTable): the typedefs are found there and only
// they are decoded.
func discoverHooks(spec *btf.Spec, tab *btfscan.Table) ([]Hook, error) {
	const prefix = "btf_trace_"
	var hooks []Hook
	add := func(typ btf.Type) {
		td, ok := typ.(*btf.Typedef)
		if !ok || !strings.HasPrefix(td.Name, prefix) {
			return
		}
		ptr, ok := td.Type.(*btf.Pointer)
		if !ok {
			return
		}
		proto, ok := ptr.Target.(*btf.FuncProto)
		if !ok || len(proto.Params) < 2 {
			return
		}
		name := strings.TrimPrefix(td.Name, prefix)
		if h, ok := hookFromProto(spec, name, proto.Params[1:]); ok {
			hooks = append(hooks, h)
		}
	}
	err := eachType(spec, tab, func(id uint32) bool {
		return tab.Kind(id) == btfscan.KindTypedef && tab.HasNamePrefix(id, prefix)
	}, add)
	if err != nil {
		return nil, err
	}
	if len(hooks) == 0 {
		return nil, fmt.Errorf("find tracepoints taking struct sk_buff: %w", ErrNoHooks)
	}
	slices.SortFunc(hooks, func(a, b Hook) int { return strings.Compare(a.Name, b.Name) })
	for i := range hooks {
		hooks[i].ID = i
	}
	return hooks, nil
}

// eachType calls fn with the types of spec: with a raw type table tab,
// only those whose id want selects, decoded one by one; without one
// (nil), every type.
func eachType(spec *btf.Spec, tab *btfscan.Table, want func(id uint32) bool, fn func(btf.Type)) error {
	if tab == nil {
		for typ, err := range spec.All() {
			if err != nil {
				return fmt.Errorf("iterate kernel BTF: %w", err)
			}
			fn(typ)
		}
		return nil
	}
	for id := uint32(1); id <= uint32(tab.Len()); id++ {
		if !want(id) {
			continue
		}
		typ, err := spec.TypeByID(btf.TypeID(id))
		if err != nil {
			return fmt.Errorf("kernel BTF type %d: %w", id, err)
		}
		if typ.TypeName() != tab.Name(id) {
			return fmt.Errorf("kernel BTF type %d: named %q in the raw table, %q decoded", id, tab.Name(id), typ.TypeName())
		}
		fn(typ)
	}
	return nil
}

// kernelTable returns the raw type table of the kernel's BTF
// (/sys/kernel/btf/vmlinux, where spec, the decoded BTF, comes from when
// the file exists), or nil when it cannot be read or does not match spec:
// the callers then decode every type instead.
func kernelTable(spec *btf.Spec) *btfscan.Table {
	raw, err := os.ReadFile("/sys/kernel/btf/vmlinux")
	if err != nil {
		return nil
	}
	tab, err := btfscan.Parse(raw)
	if err != nil || tab.Len() == 0 {
		return nil
	}
	// The same table: the last type is there, and none after it.
	last, err := spec.TypeByID(btf.TypeID(tab.Len()))
	if err != nil || last.TypeName() != tab.Name(uint32(tab.Len())) {
		return nil
	}
	if _, err := spec.TypeByID(btf.TypeID(tab.Len() + 1)); err == nil {
		return nil
	}
	return tab
}

// hookFromProto describes the tracepoint name with arguments params (the
// context argument removed), or reports false if it takes no skb or takes it
// where the BPF program cannot read it.
func hookFromProto(spec *btf.Spec, name string, params []btf.FuncParam) (Hook, bool) {
	h := Hook{
		Name:        name,
		Kind:        HookTracepoint,
		SKBArg:      -1,
		DevArg:      -1,
		ReasonArg:   -1,
		LocationArg: -1,
		Frees:       slices.Contains(freeHooks, name),
	}
	// The typedef's parameters are unnamed; the tracepoint's BTF trampoline
	// __bpf_trace_<name> has the same arguments with their names.
	names := paramNames(spec, name, len(params))
	for i, p := range params {
		if i > maxArg {
			break
		}
		switch {
		case h.SKBArg < 0 && pointsToStruct(p.Type, "sk_buff"):
			h.SKBArg = i
		case h.DevArg < 0 && pointsToStruct(p.Type, "net_device"):
			h.DevArg = i
		case h.ReasonArg < 0 && isEnum(p.Type, "skb_drop_reason"):
			h.ReasonArg = i
		case h.LocationArg < 0 && names[i] == "location":
			h.LocationArg = i
		case h.LocationArg < 0 && names[i] == "" && name == "kfree_skb" && i == 1 && isVoidPointer(p.Type):
			// Kernels whose BTF lacks __bpf_trace_kfree_skb (Debian's
			// 5.10): kfree_skb has been (skb, location, ...) since 4.x.
			h.LocationArg = i
		}
	}
	return h, h.SKBArg >= 0
}

// paramNames returns the names of the n tracepoint arguments of name, or
// empty names if the kernel's BTF does not have them.
func paramNames(spec *btf.Spec, name string, n int) []string {
	names := make([]string, n)
	var fn *btf.Func
	if err := spec.TypeByName("__bpf_trace_"+name, &fn); err != nil {
		return names
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok || len(proto.Params) != n+1 {
		return names
	}
	for i, p := range proto.Params[1:] {
		names[i] = p.Name
	}
	return names
}

// isVoidPointer reports whether t is void *, looking through typedefs and
// qualifiers.
func isVoidPointer(t btf.Type) bool {
	p, ok := btf.UnderlyingType(t).(*btf.Pointer)
	if !ok {
		return false
	}
	_, ok = btf.UnderlyingType(p.Target).(*btf.Void)
	return ok
}

// pointsToStruct reports whether t is a pointer to the struct called name,
// looking through typedefs and qualifiers.
func pointsToStruct(t btf.Type, name string) bool {
	ptr, ok := btf.UnderlyingType(t).(*btf.Pointer)
	if !ok {
		return false
	}
	s, ok := btf.UnderlyingType(ptr.Target).(*btf.Struct)
	return ok && s.Name == name
}

// isEnum reports whether t is the enum called name.
func isEnum(t btf.Type, name string) bool {
	e, ok := btf.UnderlyingType(t).(*btf.Enum)
	return ok && e.Name == name
}

// selectHooks returns the hooks of all named in names, in the order of
// names, or all of them for nil names.
func selectHooks(all []Hook, names []string) ([]Hook, error) {
	if names == nil {
		return slices.Clone(all), nil
	}
	var hooks []Hook
	for _, n := range names {
		i := slices.IndexFunc(all, func(h Hook) bool { return h.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("select hook %q: %w", n, ErrUnknownHook)
		}
		if slices.ContainsFunc(hooks, func(h Hook) bool { return h.Name == n }) {
			continue
		}
		hooks = append(hooks, all[i])
	}
	if len(hooks) == 0 {
		return nil, fmt.Errorf("select hooks: %w", ErrNoHooks)
	}
	return hooks, nil
}
