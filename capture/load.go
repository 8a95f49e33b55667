package capture

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/pathcap/pathcap/bpf"
	"github.com/pathcap/pathcap/internal/btfscan"
	"golang.org/x/sys/unix"
)

// The steps of start-up that Progress reports.
const (
	stepTracepoints    = "tracepoint programs"
	stepFentry         = "fentry programs"
	stepKprobePrograms = "kprobe programs"
	stepKprobes        = "kprobes"
	stepKprobeMulti    = "kprobe-multi link"
)

// loadConcurrently calls load for 0 to n-1 on up to GOMAXPROCS goroutines
// and returns the programs in order: the kernel verifies the programs of a
// privileged loader in parallel, and verification is most of the time
// record takes to start. On an error it closes what was loaded and returns
// the error of the lowest index.
func loadConcurrently(n int, load func(i int) (*ebpf.Program, error)) ([]*ebpf.Program, error) {
	progs := make([]*ebpf.Program, n)
	errs := make([]error, n)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			progs[i], errs[i] = load(i)
		}()
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		for _, p := range progs {
			if p != nil {
				p.Close()
			}
		}
		return nil, err
	}
	return progs, nil
}

// firstError returns the first non-nil error of errs.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// loadEnv is what loading a program needs: the BPF object, the kernel's
// BTF, the shared maps and the knobs common to every hook.
type loadEnv struct {
	spec   *ebpf.CollectionSpec // the BTF-typed object (bpf/skb.c)
	shared *ebpf.CollectionSpec // the shared raw tracepoint object (bpf/skbshared.c), or nil
	kernel *btf.Spec
	table  *btfscan.Table // kernel's raw type table, or nil (kernelTable)
	opts   ebpf.CollectionOptions
	knobs  hookKnobs
	// functions returns the kernel functions a backend may attach to
	// (discoverFunctions), found while the tracepoint programs load: the
	// traceable list and the BTF are read on a CPU the loads leave idle
	// (under software emulation, a second of start-up).
	functions func() ([]Hook, error)
}

// open creates the shared maps, loads one program per tracepoint, attaches
// them and the function backend, and opens the ring buffer reader. cache
// holds the kernel's BTF (kernel), for every load; tab is its raw type
// table, or nil.
func (r *Recorder) open(cfg Config, cache *btf.Cache, kernel *btf.Spec, tab *btfscan.Table, ncpu int) error {
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; this is a
	// no-op on later ones.
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("raise memlock limit: %w", permissionError(err))
	}
	spec, err := bpf.LoadSkb()
	if err != nil {
		return fmt.Errorf("load BPF object: %w", err)
	}
	if r.events, err = newMap(spec, bpf.SkbMapEvents, uint32(cfg.RingBufferSize)); err != nil {
		return err
	}
	sets := trackSets(cfg.TrackedPackets)
	if r.tracked, err = newMap(spec, bpf.SkbMapTracked, sets); err != nil {
		return err
	}
	if r.heads, err = newMap(spec, bpf.SkbMapHeads, sets); err != nil {
		return err
	}
	if r.states, err = newMap(spec, bpf.SkbMapCpuStates, 0); err != nil {
		return err
	}
	if r.hints, err = newMap(spec, bpf.SkbMapHints, 0); err != nil {
		return err
	}
	if r.calls, err = newMap(spec, bpf.SkbMapCalls, 0); err != nil {
		return err
	}
	// The netfilter maps exist whether or not nft_do_chain is hooked:
	// every load of the object needs them, and creating them once is
	// cheaper than once per program.
	if r.nft.chains, err = newMap(spec, bpf.SkbMapNftChains, 0); err != nil {
		return err
	}
	if r.nft.scratch, err = newMap(spec, bpf.SkbMapNftScratch, 0); err != nil {
		return err
	}
	knobs := hookKnobs{
		snaplen:     uint32(cfg.Snaplen),
		stackBytes:  uint32(r.stackBytes),
		ncpu:        uint32(ncpu),
		wakeupBytes: uint64(cfg.wakeupBytes),
		trackSets:   sets,
		match:       cfg.Match,
		track:       !cfg.NoTrack,
		probeRead:   cfg.probeRead,
		retArg:      -1,
		taskBTF:     r.compat.taskBTF,
		rdonlyCast:  r.compat.rdonlyCast,
		copyBytes:   !r.compat.auditSafe,
		budget:      r.compat.perCPU,
		linkClones:  !cfg.NoTrack,
		onlyChanged: cfg.BytesChanged,
	}
	bufSize := 64
	switch {
	case cfg.filter != nil:
		knobs.filter = cfg.filter
		knobs.window = uint32(cfg.Snaplen)
		bufSize = (cfg.Snaplen + 63) &^ 63
	case cfg.Filter != nil:
		l := cfg.Filter.layout(cfg.Snaplen)
		knobs.filter = cfg.Filter.body(l.bufSize)
		knobs.window = uint32(l.window)
		bufSize = l.bufSize
	}
	// One filter buffer entry per possible CPU.
	spec.Maps[bpf.SkbMapFilterBuf].ValueSize = uint32(bufSize)
	if r.buf, err = newMap(spec, bpf.SkbMapFilterBuf, uint32(ncpu)); err != nil {
		return err
	}
	env := &loadEnv{
		spec:   spec,
		kernel: kernel,
		table:  tab,
		opts: ebpf.CollectionOptions{
			MapReplacements: map[string]*ebpf.Map{
				bpf.SkbMapEvents:     r.events,
				bpf.SkbMapTracked:    r.tracked,
				bpf.SkbMapHeads:      r.heads,
				bpf.SkbMapCpuStates:  r.states,
				bpf.SkbMapFilterBuf:  r.buf,
				bpf.SkbMapHints:      r.hints,
				bpf.SkbMapCalls:      r.calls,
				bpf.SkbMapNftChains:  r.nft.chains,
				bpf.SkbMapNftScratch: r.nft.scratch,
			},
			Programs: ebpf.ProgramOptions{KernelTypes: kernel},
			Cache:    cache,
		},
		knobs: knobs,
	}

	if r.compat.sharedTP {
		if env.shared, err = sharedSpec(spec, env.opts.MapReplacements); err != nil {
			return err
		}
	}

	env.functions = func() ([]Hook, error) { return nil, nil }
	if cfg.Backend != BackendTracepoint {
		done := make(chan struct{})
		var (
			fns []Hook
			err error
		)
		go func() {
			defer close(done)
			fns, err = discoverFunctions(env.kernel, env.table, traceableFunctions(env.table))
		}()
		env.functions = func() ([]Hook, error) {
			<-done
			return fns, err
		}
	}

	// The tracepoints and the untrack-only hooks: where the kernel can
	// share a raw tracepoint program among the tracepoints of one argument
	// layout, one program per layout (sharedtp.go), else one each.
	untrack := env.knobs
	untrack.untrackOnly = true
	var (
		hooks    []*Hook
		settings []hookKnobs
	)
	for i := range r.hooks {
		hooks = append(hooks, &r.hooks[i])
		settings = append(settings, env.knobs)
	}
	for i := range r.untrack {
		hooks = append(hooks, &r.untrack[i])
		settings = append(settings, untrack)
	}
	// With a filter expression, the first tracepoint is loaded alone (a
	// tp_btf program): it tells whether this kernel lets the filter read
	// the packet in place.
	first := 0
	if env.knobs.filter != nil {
		first = min(1, len(r.hooks))
	}
	units := planLoads(hooks[first:], settings[first:], r.compat.sharedTP)
	programs := first + len(units)
	for i := range r.hooks[:first] {
		err := r.attachTracing(&r.hooks[i], env.knobs, env)
		if err != nil && env.knobs.filter != nil && !env.knobs.probeRead {
			// Older kernels type skb->head as a number, not as memory
			// the program may load from: copy the filter's bytes with
			// the helper instead.
			var ve *ebpf.VerifierError
			if errors.As(err, &ve) {
				if r.compat.auditSafe {
					return fmt.Errorf("%w: a filter expression reads packet bytes, which this kernel lets programs do only with bpf_probe_read_kernel, and recording is audit-safe (%w); select packets with --netns, --ifname, --mark or --pid instead, or allow probe reads (--probe-read on)", ErrFilter, ErrProbeRead)
				}
				env.knobs.probeRead = true
				for j := range units {
					units[j].knobs.probeRead = true
				}
				err = r.attachTracing(&r.hooks[i], env.knobs, env)
			}
		}
		if err != nil {
			return err
		}
	}
	if first > 0 {
		r.progress.report(stepTracepoints, first, programs)
	}
	r.filterInPlace = env.knobs.filter != nil && !env.knobs.probeRead
	// The other programs, loaded concurrently (verification is most of
	// the start-up time) and attached in order.
	var loaded atomic.Int64
	progs, err := loadConcurrently(len(units), func(i int) (*ebpf.Program, error) {
		spec := env.spec
		if units[i].shared {
			spec = env.shared
		}
		prog, err := loadHook(spec, units[i].hooks[0], env.opts, units[i].knobs)
		if err == nil {
			r.progress.report(stepTracepoints, first+int(loaded.Add(1)), programs)
		}
		return prog, err
	})
	if err != nil {
		return err
	}
	for i, prog := range progs {
		var err error
		if units[i].shared {
			err = r.attachShared(units[i], prog)
		} else {
			err = r.attachLoaded(units[i].hooks[0], prog)
		}
		if err != nil {
			for _, p := range progs[i+1:] {
				p.Close()
			}
			return err
		}
	}
	if err := r.attachFunctions(cfg, env); err != nil {
		return err
	}
	if err := r.attachPrograms(cfg, env); err != nil {
		return err
	}
	r.attachNetfilter(cfg, env)

	r.ring, err = newRing(r.events)
	if err != nil {
		return err
	}
	r.clock, err = newClock()
	return err
}

// untrackHooks returns the hooks of all that free skbs and are not among
// selected. They are attached in any case, recording nothing: without them
// a freed skb would stay followed, and a new skb at its address would
// inherit its id and bypass the filter.
func untrackHooks(all, selected []Hook) []Hook {
	var extra []Hook
	for _, h := range all {
		if h.Frees && !slices.ContainsFunc(selected, func(s Hook) bool { return s.Name == h.Name }) {
			h.ID = 0 // records nothing, so no event refers to it
			extra = append(extra, h)
		}
	}
	return extra
}

// trackWays is the number of entries in a set of the tracked table
// (TRACK_WAYS in bpf/common.h).
const trackWays = 4

// trackSets returns the number of sets of the tracked table for packets
// entries: a power of two, with at least packets entries in all.
func trackSets(packets int) uint32 {
	sets := uint32(1)
	for int(sets)*trackWays < packets {
		sets <<= 1
	}
	return sets
}

// newMap creates the map called name from spec, with maxEntries entries
// unless 0. It updates spec to match, so that later loads accept the map as
// a replacement.
func newMap(spec *ebpf.CollectionSpec, name string, maxEntries uint32) (*ebpf.Map, error) {
	ms, ok := spec.Maps[name]
	if !ok {
		return nil, fmt.Errorf("create map %s: not in BPF object", name)
	}
	if maxEntries != 0 {
		ms.MaxEntries = maxEntries
	}
	m, err := ebpf.NewMap(ms)
	if err != nil {
		return nil, fmt.Errorf("create map %s: %w", name, permissionError(err))
	}
	return m, nil
}

// hookKnobs are the load-time constants of a program: those the same for
// every hook, and those of a hook kind (exit, clone, untrackOnly, retArg).
type hookKnobs struct {
	snaplen     uint32
	stackBytes  uint32
	ncpu        uint32
	wakeupBytes uint64
	trackSets   uint32 // sets of the tracked table, a power of two
	match       Match
	track       bool
	filter      asm.Instructions // nil: keep every packet Match matches
	window      uint32           // packet bytes copied for filter
	probeRead   bool             // copy them with bpf_probe_read_kernel
	untrackOnly bool             // only end tracking (a free hook not asked for)
	exit        bool             // a function exit, paired with its entry
	entryHook   int              // exit: the hook id of the paired entry
	pairCalls   bool             // an entry whose exit is hooked too
	clone       bool             // the exit of a clone function
	retArg      int              // argument index of the return value, or -1
	taskBTF     bool             // bpf_get_current_task_btf exists
	rdonlyCast  bool             // the kfunc bpf_rdonly_cast exists (skb.c walks untrusted pointers)
	copyBytes   bool             // record packet bytes (a probe read per event)
	budget      uint64           // events per second per CPU, 0: no limit
	linkClones  bool             // link clones by their buffer (heads)
	onlyChanged bool             // record bytes only where they may have changed (Config.BytesChanged)
	cookieHook  bool             // bpf/skbshared.c: a raw tracepoint program shared by tracepoints (sharedtp.go)
}

// knobSpecs returns the load-time settings of spec as bpf2go's typed
// variable specs. Both BPF objects declare every setting of bpf/knobs.h, so
// the skb object's struct serves the kprobe object too.
func knobSpecs(spec *ebpf.CollectionSpec) (*bpf.SkbVariableSpecs, error) {
	var vs bpf.SkbVariableSpecs
	if err := spec.Assign(&vs); err != nil {
		return nil, fmt.Errorf("find the load-time settings: %w", err)
	}
	return &vs, nil
}

// knobSetter sets variables, keeping the first error.
type knobSetter struct{ err error }

func (s *knobSetter) set(v *ebpf.VariableSpec, val any) {
	if s.err != nil {
		return
	}
	if err := v.Set(val); err != nil {
		s.err = fmt.Errorf("set %s: %w", v, err)
	}
}

// b32 is a C boolean.
func b32(v bool) uint32 {
	if v {
		return 1
	}
	return 0
}

// apply sets the knobs of k in vs.
func (k hookKnobs) apply(vs *bpf.SkbVariableSpecs) error {
	var s knobSetter
	s.set(vs.Snaplen, k.snaplen)
	s.set(vs.StackBytes, k.stackBytes)
	s.set(vs.NrCpus, k.ncpu)
	s.set(vs.WakeupBytes, k.wakeupBytes)
	s.set(vs.TrackSetMask, k.trackSets-1)
	s.set(vs.MatchNetns, k.match.NetNS)
	s.set(vs.MatchIfindex, k.match.Ifindex)
	s.set(vs.MatchMark, k.match.Mark)
	s.set(vs.MatchMarkMask, k.match.MarkMask)
	s.set(vs.MatchPid, k.match.PID)
	s.set(vs.HasExpr, b32(k.filter != nil))
	s.set(vs.Filtered, b32(k.filter != nil || k.match != Match{}))
	s.set(vs.FilterWindow, k.window)
	s.set(vs.Track, b32(k.track))
	s.set(vs.DirectRead, b32(!k.probeRead))
	s.set(vs.UntrackOnly, b32(k.untrackOnly))
	s.set(vs.ExitHook, b32(k.exit))
	s.set(vs.EntryHook, uint32(k.entryHook))
	s.set(vs.PairCalls, b32(k.pairCalls))
	s.set(vs.CloneHook, b32(k.clone))
	s.set(vs.RetArg, int32(k.retArg))
	s.set(vs.TaskBtf, b32(k.taskBTF))
	s.set(vs.RdonlyCast, b32(k.rdonlyCast))
	s.set(vs.CopyBytes, b32(k.copyBytes))
	s.set(vs.BudgetPerCpu, k.budget)
	s.set(vs.LinkClones, b32(k.linkClones))
	s.set(vs.BytesChanged, b32(k.onlyChanged))
	return s.err
}

// applyHook sets the knobs of hook h in vs: its id and where its
// arguments are.
func applyHook(vs *bpf.SkbVariableSpecs, h *Hook) error {
	var s knobSetter
	s.set(vs.HookId, uint32(h.ID))
	s.set(vs.SkbArg, int32(h.SKBArg))
	s.set(vs.DevArg, int32(h.DevArg))
	s.set(vs.ReasonArg, int32(h.ReasonArg))
	s.set(vs.LocationArg, int32(h.LocationArg))
	s.set(vs.IsFreeHook, b32(h.Frees))
	s.set(vs.NoStart, b32(h.NoStart))
	nfState := -1
	if h.NFState {
		nfState = h.SKBArg + 1
	}
	s.set(vs.NfStateArg, int32(nfState))
	s.set(vs.NftChain, b32(h.NFTChain))
	return s.err
}

// setKnobs sets k and h's argument positions as the load-time constants
// of spec.
func setKnobs(spec *ebpf.CollectionSpec, h *Hook, k hookKnobs) error {
	vs, err := knobSpecs(spec)
	if err == nil {
		err = k.apply(vs)
	}
	if err == nil {
		err = applyHook(vs, h)
	}
	if err != nil {
		return fmt.Errorf("load hook %s: %w", h.Name, err)
	}
	return nil
}

// copyForLoad copies what one load of spec changes or may change: its
// programs, its load-time settings (variables) and the maps not replaced
// by shared ones. Its BTF types are shared with spec: loading only reads
// them (each program's instructions point at them in both copies), and
// ebpf.CollectionSpec.Copy, which copies every type as well, was an eighth
// of record's start-up CPU under software emulation.
func copyForLoad(spec *ebpf.CollectionSpec, replaced map[string]*ebpf.Map) *ebpf.CollectionSpec {
	cp := *spec
	cp.Maps = make(map[string]*ebpf.MapSpec, len(spec.Maps))
	for name, m := range spec.Maps {
		if _, ok := replaced[name]; ok {
			cp.Maps[name] = m
			continue
		}
		cp.Maps[name] = m.Copy()
	}
	cp.Programs = make(map[string]*ebpf.ProgramSpec, len(spec.Programs))
	for name, p := range spec.Programs {
		cp.Programs[name] = p.Copy()
	}
	if spec.Variables != nil {
		cp.Variables = make(map[string]*ebpf.VariableSpec, len(spec.Variables))
		for name, v := range spec.Variables {
			cp.Variables[name] = v.Copy()
		}
	}
	return &cp
}

// loadHook loads the BTF-typed program for h (a tracepoint, fentry or fexit
// hook, by h.Kind) from a copy of spec, with h's argument positions and k
// set as constants and the shared maps in opts. With k.cookieHook, spec is
// the shared raw tracepoint object (bpf/skbshared.c) and the program is
// bound to no tracepoint: it is attached to each of its layout's with a
// cookie.
func loadHook(spec *ebpf.CollectionSpec, h *Hook, opts ebpf.CollectionOptions, k hookKnobs) (*ebpf.Program, error) {
	name := bpf.SkbProgOnSkb
	what := "hook " + h.Kind.String() + ":" + h.Name
	if k.cookieHook {
		name = bpf.SkbSharedProgOnSkbShared
		what += " (a raw tracepoint program shared with the tracepoints of its argument layout)"
	}
	spec = copyForLoad(spec, opts.MapReplacements)
	if err := setKnobs(spec, h, k); err != nil {
		return nil, err
	}
	prog := spec.Programs[name]
	switch {
	case k.cookieHook:
		// Bound to no tracepoint.
	case h.Prog != nil:
		// A BPF program: found through its own BTF, by its function.
		prog.AttachTo = h.Prog.Name
		prog.AttachTarget = h.Prog.target
	default:
		prog.AttachTo = h.Name
	}
	switch h.Kind {
	case HookFentry:
		prog.AttachType = ebpf.AttachTraceFEntry
	case HookFexit:
		prog.AttachType = ebpf.AttachTraceFExit
	}
	if k.filter != nil {
		err := inlineFilter(prog, k.filter)
		if errors.Is(err, errNoInline) {
			err = replaceFilter(prog, k.filter)
		}
		if err != nil {
			return nil, fmt.Errorf("load hook %s: %w", h.Name, err)
		}
	}

	coll, err := ebpf.NewCollectionWithOptions(spec, opts)
	if err != nil {
		return nil, loadError(what, err)
	}
	loaded := coll.DetachProgram(name)
	// The program holds its own references to the maps it uses.
	coll.Close()
	return loaded, nil
}

// LoadError is a BPF program the kernel refused to load. Its message is one
// line: what was loaded, on which kernel, and the verifier's reason (the
// missing helper where that is the reason); [LoadError.Log] has the
// verifier's whole log.
type LoadError struct {
	// What names the program, e.g. "hook tp:kfree_skb".
	What string
	// Release is the kernel release (uname -r).
	Release string
	// Err is the loader's error; it wraps an *ebpf.VerifierError when
	// the verifier refused.
	Err error
}

// Error returns the one-line message.
func (e *LoadError) Error() string {
	var ve *ebpf.VerifierError
	if !errors.As(e.Err, &ve) {
		return fmt.Sprintf("load %s: %v", e.What, e.Err)
	}
	if fn, ok := unknownHelper(e.Err); ok {
		since := ""
		if v, ok := helperSince[fn]; ok {
			since = " (added in Linux " + v + ")"
		}
		return fmt.Sprintf("load %s: Linux %s lacks the helper %s%s that this program needs", e.What, e.Release, helperName(fn), since)
	}
	reason := "refused"
	for i := len(ve.Log) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(ve.Log[i]); l != "" && !strings.HasPrefix(l, "processed ") && !strings.HasPrefix(l, "verification time") && !strings.HasPrefix(l, "stack depth") {
			reason = l
			break
		}
	}
	return fmt.Sprintf("load %s: the verifier of Linux %s refused it: %s (--verbose prints its log)", e.What, e.Release, reason)
}

// Unwrap returns the loader's error.
func (e *LoadError) Unwrap() error { return e.Err }

// Log returns the verifier's log, or nil if the verifier did not refuse.
func (e *LoadError) Log() []string {
	var ve *ebpf.VerifierError
	if errors.As(e.Err, &ve) {
		return ve.Log
	}
	return nil
}

// loadError wraps an error of loading what: a *LoadError if the verifier
// refused, else the error with ErrPermission where the kernel said EPERM.
func loadError(what string, err error) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE):
		// The loader reports these as a verifier error without a log.
		return fmt.Errorf("load %s: %w: raise the limit on open files (ulimit -n): each hook holds a few", what, unix.EMFILE)
	case errors.Is(err, unix.ENOMEM):
		return fmt.Errorf("load %s: %w", what, unix.ENOMEM)
	case errors.As(err, &ve):
		return &LoadError{What: what, Release: kernelRelease(), Err: err}
	}
	return fmt.Errorf("load %s: %w", what, permissionError(err))
}

// permissionError adds ErrPermission to err if the kernel refused with
// EPERM.
func permissionError(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w: %w", ErrPermission, err)
	}
	return err
}
