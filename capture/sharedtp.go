package capture

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/pathcap/pathcap/bpf"
	"golang.org/x/sys/unix"
)

// Shared tracepoint programs (Linux 6.10+). A tracepoint program loaded as
// tp_btf is bound to its tracepoint when it is verified, so every
// tracepoint costs a verification: most of record's start-up. A raw
// tracepoint program is bound to none: one program (on_skb_shared,
// bpf/skbshared.c, the same body as skb.c's on_skb) serves every tracepoint
// whose arguments sit at the same places, and each link's attach cookie
// (raw tracepoints have one since Linux 6.10) tells the program which hook
// ran. The arguments are plain numbers there, which bpf_rdonly_cast (Linux
// 6.2+) turns into the untrusted typed pointers the tp_btf programs walk
// too, so a hit makes the same loads, plus the cookie's helper call.

// loadUnit is one program to load: for one hook (hooks[0]), or shared by
// the tracepoints in hooks.
type loadUnit struct {
	hooks  []*Hook
	knobs  hookKnobs
	shared bool
}

// layoutKey is what a shared tracepoint program is specialized by:
// everything applyHook sets except the hook's id, and untrackOnly.
type layoutKey struct {
	skb, dev, reason, location int
	frees, noStart, untrack    bool
}

// shareable reports whether h may be served by a shared raw tracepoint
// program: a kernel tracepoint whose skb is an argument.
func shareable(h *Hook) bool {
	return h.Kind == HookTracepoint && h.Prog == nil && !h.NFState && !h.NFTChain
}

// planLoads groups hooks into the programs to load. knobs[i] are the
// settings of hooks[i]. With share, the shareable hooks of one layoutKey
// get one shared program (a group of one keeps a tp_btf program of its
// own: sharing it saves nothing); else every hook gets its own program.
// Units keep the order of their first hook.
func planLoads(hooks []*Hook, knobs []hookKnobs, share bool) []loadUnit {
	var units []loadUnit
	groups := make(map[layoutKey]int) // unit index
	for i, h := range hooks {
		if !share || !shareable(h) {
			units = append(units, loadUnit{hooks: []*Hook{h}, knobs: knobs[i]})
			continue
		}
		key := layoutKey{h.SKBArg, h.DevArg, h.ReasonArg, h.LocationArg, h.Frees, h.NoStart, knobs[i].untrackOnly}
		if u, ok := groups[key]; ok {
			units[u].hooks = append(units[u].hooks, h)
			units[u].shared = true
			continue
		}
		groups[key] = len(units)
		units = append(units, loadUnit{hooks: []*Hook{h}, knobs: knobs[i]})
	}
	for i := range units {
		units[i].knobs.cookieHook = units[i].shared
	}
	return units
}

// sharedSpec returns the shared raw tracepoint object (bpf/skbshared.c),
// whose maps replaced by shared ones are given skb's specs (spec), so that
// a load accepts the replacements as it does for skb's programs.
func sharedSpec(spec *ebpf.CollectionSpec, replaced map[string]*ebpf.Map) (*ebpf.CollectionSpec, error) {
	shared, err := bpf.LoadSkbShared()
	if err != nil {
		return nil, fmt.Errorf("load BPF object: %w", err)
	}
	for name := range replaced {
		if _, ok := shared.Maps[name]; ok {
			shared.Maps[name] = spec.Maps[name]
		}
	}
	return shared, nil
}

// haveSharedTracepoints reports whether this kernel can run shared raw
// tracepoint programs: raw tracepoint programs may read their attach
// cookie (Linux 6.10, the same release that lets a raw tracepoint link
// carry one) and walk typed pointers made with bpf_rdonly_cast (6.2).
// The probe loads one tiny program; an error other than "not supported"
// counts as no.
func haveSharedTracepoints(rdonlyCast bool) bool {
	if !rdonlyCast {
		return false
	}
	return features.HaveProgramHelper(ebpf.RawTracepoint, asm.FnGetAttachCookie) == nil
}

// attachShared attaches prog, the shared raw tracepoint program of u, to
// each of u's tracepoints, with the hook's id as the link's cookie.
func (r *Recorder) attachShared(u loadUnit, prog *ebpf.Program) error {
	r.progs = append(r.progs, prog)
	r.progKinds = append(r.progKinds, HookTracepoint)
	for _, h := range u.hooks {
		l, err := attachRawTracepoint(h.Name, prog, uint64(h.ID))
		if err != nil {
			return fmt.Errorf("attach hook %s:%s: %w", h.Kind, h.Name, permissionError(err))
		}
		r.links = append(r.links, l)
	}
	return nil
}

// attachRawTracepoint attaches prog, a raw tracepoint program, to the
// tracepoint name with cookie: BPF_RAW_TRACEPOINT_OPEN with the cookie
// field of Linux 6.10 (link.AttachRawTracepoint sets none).
func attachRawTracepoint(name string, prog *ebpf.Program, cookie uint64) (link.Link, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return nil, err
	}
	// union bpf_attr's raw_tracepoint member.
	attr := struct {
		name   uint64
		progFD uint32
		_      uint32
		cookie uint64
	}{name: uint64(uintptr(unsafe.Pointer(p))), progFD: uint32(prog.FD()), cookie: cookie}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_RAW_TRACEPOINT_OPEN, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(p)
	runtime.KeepAlive(prog)
	if errno != 0 {
		return nil, errno
	}
	l, err := link.NewFromFD(int(fd))
	if err != nil {
		unix.Close(int(fd))
		return nil, fmt.Errorf("raw tracepoint link: %w", err)
	}
	return l, nil
}
