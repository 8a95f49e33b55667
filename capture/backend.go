package capture

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/bpf"
)

// Backends: the values of Config.Backend.
const (
	// BackendAuto picks the best function backend the kernel allows (see
	// [Config.Backend]) and combines it with the tracepoints.
	BackendAuto = "auto"
	// BackendTracepoint records at tracepoints only.
	BackendTracepoint = "tracepoint"
	// BackendKprobeMulti attaches one kprobe program to every function
	// with one kprobe-multi link (Linux 5.18+ with CONFIG_FPROBE).
	BackendKprobeMulti = "kprobe-multi"
	// BackendKprobe attaches one kprobe program with one link per
	// function (CONFIG_KPROBES).
	BackendKprobe = "kprobe"
	// BackendFentry loads one fentry program per function (and with
	// Config.Exit one fexit program too).
	BackendFentry = "fentry"
)

// Backends returns the values of Config.Backend, in the order of the
// documentation.
func Backends() []string {
	return []string{BackendAuto, BackendTracepoint, BackendKprobeMulti, BackendKprobe, BackendFentry}
}

// AutoFentryMax is the largest function set for which BackendAuto prefers
// fentry (cheapest per hit, no bpf_probe_read_kernel for fields) over
// kprobe-multi: fentry loads and verifies one program per function, about
// 80 ms each in the test VMs against 0.2 s for kprobe-multi to attach
// 1,458 functions.
const AutoFentryMax = 64

// cookie packs a function's hook id, skb argument position and whether it
// frees the skb for the kprobe programs (COOKIE_HOOK, COOKIE_ARG and
// COOKIE_FREES in bpf/kprobe.c).
func cookie(hookID, skbArg int, frees bool) uint64 {
	c := uint64(hookID)&0xffff | uint64(skbArg&0xff)<<16
	if frees {
		c |= 1 << 24
	}
	return c
}

// hookCookie is the cookie of function hook h (with COOKIE_NOSTART).
func hookCookie(h *Hook) uint64 {
	c := cookie(h.ID, h.SKBArg, h.Frees)
	if h.NoStart {
		c |= 1 << 25
	}
	return c
}

// plan is what the function backends are asked to attach.
type plan struct {
	all    []Hook         // every traceable function taking an skb
	re     *regexp.Regexp // Config.Functions, nil for the defaults
	exit   bool           // fexit too (fentry)
	clones bool           // hook the exits of clone functions (tracking on)
}

// functions returns the functions backend b attaches under p: those
// matching the pattern, or the backend's default set.
func (p plan) functions(b string) []Hook {
	var defaults []string
	if b != BackendKprobeMulti {
		defaults = defaultFunctions
	}
	return selectFunctions(p.all, p.re, defaults)
}

// cloneFuncs returns the clone functions that exist, if clones are
// followed.
func (p plan) cloneFuncs() []Hook {
	if !p.clones {
		return nil
	}
	var out []Hook
	for _, h := range p.all {
		if h.Clone {
			out = append(out, h)
		}
	}
	return out
}

// FunctionsLikely reports whether recording with backend (Config.Backend)
// will hook kernel functions, as far as cheap probes tell before anything
// is loaded: a function backend asked for by name will (or the recorder
// fails); BackendAuto will if the kernel has kprobe-multi links or kprobes
// (a kernel with fentry only is taken not to: that probe loads a program
// against the kernel's BTF). It needs the privileges of recording.
func FunctionsLikely(backend string) bool {
	switch backend {
	case BackendTracepoint:
		return false
	case BackendAuto, "":
		return haveBackend(BackendKprobeMulti, "", nil, nil) == nil || haveBackend(BackendKprobe, "", nil, nil) == nil
	}
	return true
}

// haveBackend reports whether the kernel allows backend b, with the reason
// if not, attaching a trivial program to probe where no cheaper check
// exists. sym is a traceable function to probe with; cache is the
// recorder's BTF cache, or nil.
func haveBackend(b, sym string, kernel *btf.Spec, cache *btf.Cache) error {
	if (b == BackendKprobe || b == BackendKprobeMulti) && runtime.GOARCH != "amd64" {
		// bpf/kprobe.c reads the arguments from x86-64's struct pt_regs
		// at fixed offsets.
		return fmt.Errorf("the kprobe programs are built for x86-64 registers only, not %s: %w", runtime.GOARCH, ebpf.ErrNotSupported)
	}
	switch b {
	case BackendKprobeMulti:
		if err := features.HaveBPFLinkKprobeMulti(); err != nil {
			if errors.Is(err, ebpf.ErrNotSupported) {
				return fmt.Errorf("no kprobe-multi links (Linux 5.18 with CONFIG_FPROBE): %w", ebpf.ErrNotSupported)
			}
			return err
		}
		return nil
	case BackendKprobe:
		// The kprobe PMU, or tracefs's kprobe_events on older kernels:
		// neither exists without CONFIG_KPROBES.
		for _, p := range []string{"/sys/bus/event_source/devices/kprobe/type", "/sys/kernel/tracing/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events"} {
			if _, err := os.Stat(p); err == nil {
				return nil
			}
		}
		return fmt.Errorf("no kprobe PMU or kprobe_events: %w", ebpf.ErrNotSupported)
	case BackendFentry:
		prog, err := newProbeProgram(&ebpf.ProgramSpec{
			Name: "probe_fentry", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceFEntry,
			AttachTo: sym, License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		}, ebpf.ProgramOptions{KernelTypes: kernel}, cache)
		if err != nil {
			// Tracepoints loaded, so EPERM here is the kernel's policy
			// (lockdown), not missing privileges.
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("load an fentry program: refused by the kernel (lockdown?): %w", unix.EPERM)
			}
			return fmt.Errorf("load an fentry program: %w", err)
		}
		defer prog.Close()
		l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceFEntry})
		if err != nil {
			return fmt.Errorf("attach an fentry program: %w", err)
		}
		return l.Close()
	}
	return nil
}

// autoOrder returns the backends BackendAuto tries, best first, for plan p:
// fentry if function exits are asked for or for a small explicit function
// set; kprobe-multi; fentry on its default set; kprobe; fentry on a large
// explicit set.
func autoOrder(p plan) []string {
	if p.exit {
		// Only fentry hooks function exits.
		return []string{BackendFentry}
	}
	if p.re != nil {
		if n := len(p.functions(BackendFentry)); n > 0 && n <= AutoFentryMax {
			return []string{BackendFentry, BackendKprobeMulti, BackendKprobe}
		}
		return []string{BackendKprobeMulti, BackendKprobe, BackendFentry}
	}
	return []string{BackendKprobeMulti, BackendFentry, BackendKprobe}
}

// attachFunctions attaches the function backend cfg asks for (or the one
// auto picks) and adds its hooks to r.hooks. With auto, a kernel that
// allows no function backend leaves tracepoints only; r.backend and
// r.backendNote say what happened.
func (r *Recorder) attachFunctions(cfg Config, env *loadEnv) error {
	if cfg.Backend == BackendTracepoint {
		r.backend = BackendTracepoint
		return nil
	}
	re, err := compileFunctions(cfg.Functions)
	if err != nil {
		return err
	}
	all, err := env.functions()
	if err != nil {
		if cfg.Backend == BackendAuto {
			r.backend = BackendTracepoint
			r.backendNote = fmt.Sprintf("no kernel function to attach to: %v", err)
			return nil
		}
		return fmt.Errorf("select backend %s: %w", cfg.Backend, err)
	}
	p := plan{all: all, re: re, exit: cfg.Exit, clones: !cfg.NoTrack}

	order := []string{cfg.Backend}
	if cfg.Backend == BackendAuto {
		order = autoOrder(p)
	}
	var notes []string
	if r.compat.auditSafe {
		// kprobes read the skb and every other field with
		// bpf_probe_read_kernel.
		why := "reads every field with bpf_probe_read_kernel, and recording is audit-safe"
		if cfg.Backend == BackendKprobe || cfg.Backend == BackendKprobeMulti {
			return fmt.Errorf("select backend %s: %w: it %s (%s); use --backend fentry or tracepoint, or allow probe reads (--probe-read on)", cfg.Backend, ErrBackend, why, r.compat.audit.Why)
		}
		order = slices.DeleteFunc(order, func(b string) bool {
			if b == BackendKprobe || b == BackendKprobeMulti {
				notes = append(notes, fmt.Sprintf("%s: not used: it %s", b, why))
				return true
			}
			return false
		})
	}
	for _, b := range order {
		fns := p.functions(b)
		if len(fns) == 0 {
			err = fmt.Errorf("no traceable function matches %q: %w", cfg.Functions, ErrNoHooks)
		} else if err = haveBackend(b, fns[0].Name, env.kernel, env.opts.Cache); err == nil {
			err = r.attachBackend(b, fns, p, env)
		}
		if err == nil {
			r.backend = b
			r.backendNote = strings.Join(notes, "; ")
			return nil
		}
		if cfg.Backend != BackendAuto {
			return fmt.Errorf("attach backend %s: %w: %w", b, ErrBackend, err)
		}
		notes = append(notes, fmt.Sprintf("%s: %v", b, err))
	}
	r.backend = BackendTracepoint
	r.backendNote = strings.Join(notes, "; ")
	return nil
}

// attachBackend attaches fns (and the clone functions of p) with backend
// b. On error, what it attached is detached again and r.hooks is as before.
func (r *Recorder) attachBackend(b string, fns []Hook, p plan, env *loadEnv) (err error) {
	nHooks, nProgs, nLinks := len(r.hooks), len(r.progs), len(r.links)
	defer func() {
		if err == nil {
			return
		}
		for _, l := range r.links[nLinks:] {
			l.Close()
		}
		for _, prog := range r.progs[nProgs:] {
			prog.Close()
		}
		r.hooks, r.progs, r.links = r.hooks[:nHooks], r.progs[:nProgs], r.links[:nLinks]
		r.progKinds = r.progKinds[:nProgs]
	}()
	switch b {
	case BackendFentry:
		return r.attachFentry(fns, p, env)
	case BackendKprobe, BackendKprobeMulti:
		return r.attachKprobes(b == BackendKprobeMulti, fns, p, env)
	}
	return fmt.Errorf("select backend %q: %w", b, ErrBackend)
}

// addHook appends h to r.hooks with kind k, setting its ID, and returns
// a pointer to the entry.
func (r *Recorder) addHook(h Hook, k HookKind) *Hook {
	h.Kind = k
	h.ID = len(r.hooks)
	r.hooks = append(r.hooks, h)
	return &r.hooks[len(r.hooks)-1]
}

// attachFentry loads one fentry program per function (and one fexit
// program if p.exit), and one fexit program per clone function. Functions
// whose program the kernel refuses are skipped; none attached is an error.
func (r *Recorder) attachFentry(fns []Hook, p plan, env *loadEnv) error {
	var firstErr error
	// try attaches h as a hook of kind k and returns its id, or -1.
	try := func(h Hook, kind HookKind, k hookKnobs) int {
		hook := r.addHook(h, kind)
		id := hook.ID
		if err := r.attachTracing(hook, k, env); err != nil {
			r.hooks = r.hooks[:len(r.hooks)-1]
			if firstErr == nil {
				firstErr = err
			}
			return -1
		}
		return id
	}
	attached := 0
	for i, h := range fns {
		r.progress.report(stepFentry, i, len(fns))
		entry := env.knobs
		entry.pairCalls = p.exit
		id := try(h, HookFentry, entry)
		if id < 0 {
			if errors.Is(firstErr, ErrPermission) {
				return firstErr
			}
			continue
		}
		attached++
		if p.exit {
			k := env.knobs
			k.exit = true
			k.entryHook = id
			k.retArg = h.NArgs
			try(h, HookFexit, k)
		}
	}
	if attached == 0 {
		return fmt.Errorf("no function attached: %w", firstErr)
	}
	r.skipped = len(fns) - attached
	for _, h := range p.cloneFuncs() {
		k := env.knobs
		k.clone = true
		k.retArg = h.NArgs
		try(h, HookFexit, k)
	}
	return nil
}

// attachTracing loads the BTF-typed program for h (a tracepoint, fentry or
// fexit hook) with knobs k and attaches it.
func (r *Recorder) attachTracing(h *Hook, k hookKnobs, env *loadEnv) error {
	prog, err := loadHook(env.spec, h, env.opts, k)
	if err != nil {
		return err
	}
	return r.attachLoaded(h, prog)
}

// attachLoaded attaches prog, loaded for h, and keeps both.
func (r *Recorder) attachLoaded(h *Hook, prog *ebpf.Program) error {
	r.progs = append(r.progs, prog)
	r.progKinds = append(r.progKinds, h.Kind)
	if r.hookProgs == nil {
		r.hookProgs = make(map[int]*ebpf.Program)
	}
	r.hookProgs[h.ID] = prog
	at := ebpf.AttachTraceRawTp
	switch h.Kind {
	case HookFentry:
		at = ebpf.AttachTraceFEntry
	case HookFexit:
		at = ebpf.AttachTraceFExit
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: at})
	if err != nil {
		return fmt.Errorf("attach hook %s:%s: %w", h.Kind, h.Name, permissionError(err))
	}
	r.links = append(r.links, l)
	return nil
}

// kprobeSpec returns the kprobe object with the load-time settings of k,
// for kprobe-multi links if multi, finding each function by its attach
// cookie if useCookie (else by its address), and with the filter of k.
func kprobeSpec(k hookKnobs, multi, useCookie bool) (*ebpf.CollectionSpec, error) {
	spec, err := bpf.LoadKprobe()
	if err != nil {
		return nil, fmt.Errorf("load BPF object: %w", err)
	}
	vs, err := knobSpecs(spec)
	if err == nil {
		err = k.apply(vs)
	}
	if err != nil {
		return nil, fmt.Errorf("load kprobe programs: %w", err)
	}
	if !useCookie {
		var kv bpf.KprobeVariableSpecs
		if err := spec.Assign(&kv); err != nil {
			return nil, fmt.Errorf("load kprobe programs: %w", err)
		}
		if err := kv.UseCookie.Set(uint32(0)); err != nil {
			return nil, fmt.Errorf("load kprobe programs: set use_cookie: %w", err)
		}
	}
	for _, name := range []string{bpf.KprobeProgOnKprobe, bpf.KprobeProgOnCloneEntry, bpf.KprobeProgOnCloneReturn} {
		ps := spec.Programs[name]
		if multi {
			ps.AttachType = ebpf.AttachTraceKprobeMulti
		}
		if k.filter != nil && hasFilter(ps) {
			if err := replaceFilter(ps, k.filter); err != nil {
				return nil, fmt.Errorf("load %s: %w", name, err)
			}
		}
	}
	return spec, nil
}

// attachKprobes loads the kprobe object once and attaches its program to
// every function of fns: one link per function, or one kprobe-multi link
// for all. The clone functions get an entry and a return probe each (or a
// kprobe-multi link of each kind).
func (r *Recorder) attachKprobes(multi bool, fns []Hook, p plan, env *loadEnv) error {
	// Kernels before 5.15 have no attach cookies: the programs find a
	// function's cookie by its address.
	useCookie := multi || probeAttachCookie()
	spec, err := kprobeSpec(env.knobs, multi, useCookie)
	if err != nil {
		return err
	}
	var byAddr *funcCookies
	if !useCookie {
		if byAddr, err = newFuncCookies(); err != nil {
			return err
		}
		r.compat.notes = append(r.compat.notes, "this kernel has no bpf_get_attach_cookie (Linux 5.15): kprobe programs find each function by its address, one hash lookup per event")
	}
	// The shared maps as created (sizes set by user space).
	for name := range env.opts.MapReplacements {
		spec.Maps[name] = env.spec.Maps[name].Copy()
	}
	if byAddr != nil {
		// Room for every address of every function (a name can have
		// several) and of the clone functions.
		spec.Maps[bpf.KprobeMapFuncCookies].MaxEntries = uint32(byAddr.room(fns, p.cloneFuncs()))
	}
	r.progress.report(stepKprobePrograms, 0, 1)
	coll, err := ebpf.NewCollectionWithOptions(spec, env.opts)
	if err != nil {
		return loadError("kprobe programs", err)
	}
	r.progress.report(stepKprobePrograms, 1, 1)
	defer coll.Close()
	if byAddr != nil {
		byAddr.m = coll.Maps[bpf.KprobeMapFuncCookies]
	}
	progs := make(map[string]*ebpf.Program)
	for _, name := range []string{bpf.KprobeProgOnKprobe, bpf.KprobeProgOnCloneEntry, bpf.KprobeProgOnCloneReturn} {
		progs[name] = coll.DetachProgram(name)
		r.progs = append(r.progs, progs[name])
		kind := HookKprobe
		if name == bpf.KprobeProgOnCloneReturn {
			kind = HookKretprobe
		}
		r.progKinds = append(r.progKinds, kind)
	}

	attached := 0
	if multi {
		var syms []string
		var cookies []uint64
		for _, h := range fns {
			hook := r.addHook(h, HookKprobe)
			syms = append(syms, h.Name)
			cookies = append(cookies, hookCookie(hook))
		}
		r.progress.report(stepKprobeMulti, 0, 1)
		n, err := r.attachMulti(progs[bpf.KprobeProgOnKprobe], syms, cookies, false)
		if err != nil {
			return err
		}
		r.progress.report(stepKprobeMulti, 1, 1)
		attached = n
	} else {
		var firstErr error
		for i, h := range fns {
			r.progress.report(stepKprobes, i, len(fns))
			hook := r.addHook(h, HookKprobe)
			c := hookCookie(hook)
			opts := &link.KprobeOptions{Cookie: c}
			if byAddr != nil {
				opts.Cookie = 0
				if err := byAddr.put(h.Name, funcRecord, c); err != nil {
					return err
				}
			}
			l, err := link.Kprobe(h.Name, progs[bpf.KprobeProgOnKprobe], opts)
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, os.ErrPermission) {
					return fmt.Errorf("attach kprobe %s: %w", h.Name, permissionError(err))
				}
				continue
			}
			r.links = append(r.links, l)
			attached++
		}
		if attached == 0 {
			return fmt.Errorf("no function attached: %w", firstErr)
		}
	}
	r.skipped = len(fns) - attached

	// Clones: the entry remembers the original, the return records the
	// clone. Failures here only lose clone links.
	clones := p.cloneFuncs()
	if len(clones) == 0 {
		return nil
	}
	// The entry's cookie holds the original's argument position and the
	// return probe's hook id; the entry hands it to the return probe.
	var syms []string
	var cookies []uint64
	for _, h := range clones {
		hook := r.addHook(h, HookKretprobe)
		syms = append(syms, h.Name)
		cookies = append(cookies, cookie(hook.ID, h.SKBArg, false))
	}
	if multi {
		if _, err := r.attachMulti(progs[bpf.KprobeProgOnCloneEntry], syms, cookies, false); err != nil {
			return nil
		}
		_, _ = r.attachMulti(progs[bpf.KprobeProgOnCloneReturn], syms, nil, true)
		return nil
	}
	for i, s := range syms {
		opts := &link.KprobeOptions{Cookie: cookies[i]}
		if byAddr != nil {
			opts.Cookie = 0
			if err := byAddr.put(s, funcClone, cookies[i]); err != nil {
				continue
			}
		}
		le, err := link.Kprobe(s, progs[bpf.KprobeProgOnCloneEntry], opts)
		if err != nil {
			continue
		}
		lr, err := link.Kretprobe(s, progs[bpf.KprobeProgOnCloneReturn], nil)
		if err != nil {
			le.Close()
			continue
		}
		r.links = append(r.links, le, lr)
	}
	return nil
}

// attachMulti attaches prog to syms with one kprobe-multi link (a return
// probe if ret). If the kernel refuses the set, it splits it in halves and
// retries, so that a function that cannot be probed costs only itself.
// It returns the number of functions attached.
func (r *Recorder) attachMulti(prog *ebpf.Program, syms []string, cookies []uint64, ret bool) (int, error) {
	attach := link.KprobeMulti
	if ret {
		attach = link.KretprobeMulti
	}
	l, err := attach(prog, link.KprobeMultiOptions{Symbols: syms, Cookies: cookies})
	if err == nil {
		r.links = append(r.links, l)
		return len(syms), nil
	}
	if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, os.ErrPermission) || len(syms) == 1 {
		return 0, fmt.Errorf("attach kprobe-multi: %w", permissionError(err))
	}
	half := len(syms) / 2
	n1, err1 := r.attachMulti(prog, syms[:half], cookies[:half], ret)
	n2, err2 := r.attachMulti(prog, syms[half:], cookies[half:], ret)
	if n1+n2 == 0 {
		return 0, errors.Join(err1, err2)
	}
	return n1 + n2, nil
}
