package capture

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// HookKind says what kind of kernel hook a [Hook] is.
type HookKind uint8

const (
	// HookTracepoint is a kernel tracepoint, attached as a BTF raw
	// tracepoint (tp_btf).
	HookTracepoint HookKind = iota + 1
)

// String returns the kind's short name, as used in recordings.
func (k HookKind) String() string {
	switch k {
	case HookTracepoint:
		return "tracepoint"
	default:
		return fmt.Sprintf("HookKind(%d)", uint8(k))
	}
}

// maxArg is the highest argument index the BPF program can read.
const maxArg = 5

// Hook is a kernel hook that sees a struct sk_buff.
//
// Argument indices count the tracepoint's own arguments from 0, without the
// tracing context that the kernel passes first; -1 means absent.
type Hook struct {
	// ID is the hook's index: in [ListHooks] the position in the list, in
	// [Recorder.Hooks] the id carried by events.
	ID int
	// Name is the tracepoint's name, e.g. "net_dev_xmit".
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
}

// freeHooks are the tracepoints after which an skb is gone.
var freeHooks = []string{"kfree_skb", "consume_skb"}

// ListHooks returns the hooks that the running kernel offers, sorted by
// name. It reads the kernel's BTF and needs no privileges beyond read access
// to /sys/kernel/btf/vmlinux.
func ListHooks() ([]Hook, error) {
	spec, err := loadKernelBTF()
	if err != nil {
		return nil, err
	}
	return discoverHooks(spec)
}

// loadKernelBTF loads the running kernel's BTF, mapping its absence to
// ErrNoBTF.
func loadKernelBTF() (*btf.Spec, error) {
	spec, err := btf.LoadKernelSpec()
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
// prototype takes a struct sk_buff pointer.
func discoverHooks(spec *btf.Spec) ([]Hook, error) {
	const prefix = "btf_trace_"
	var hooks []Hook
	for typ, err := range spec.All() {
		if err != nil {
			return nil, fmt.Errorf("iterate kernel BTF: %w", err)
		}
		td, ok := typ.(*btf.Typedef)
		if !ok || !strings.HasPrefix(td.Name, prefix) {
			continue
		}
		ptr, ok := td.Type.(*btf.Pointer)
		if !ok {
			continue
		}
		proto, ok := ptr.Target.(*btf.FuncProto)
		if !ok || len(proto.Params) < 2 {
			continue
		}
		name := strings.TrimPrefix(td.Name, prefix)
		if h, ok := hookFromProto(spec, name, proto.Params[1:]); ok {
			hooks = append(hooks, h)
		}
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
