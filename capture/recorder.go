package capture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/bpf"
)

// Defaults and limits of [Config].
const (
	// DefaultSnaplen is the snap length used when Config.Snaplen is 0.
	DefaultSnaplen = 256
	// MaxSnaplen is the largest snap length the BPF program accepts.
	MaxSnaplen = 65535
	// DefaultRingBufferSize is the ring buffer size used when
	// Config.RingBufferSize is 0.
	DefaultRingBufferSize = 32 << 20
	// DefaultTrackedPackets is the number of packets followed at once
	// when Config.TrackedPackets is 0.
	DefaultTrackedPackets = 1 << 16
	// MaxTrackedPackets is the largest Config.TrackedPackets (24 bytes
	// each).
	MaxTrackedPackets = 1 << 24
	// DefaultStackDepth is the most kernel stack frames recorded per event
	// when stacks are on.
	DefaultStackDepth = 64
)

// pollInterval bounds how long a recorded event waits in the ring buffer
// before Run delivers it: the BPF program wakes the reader only every
// quarter of the ring.
const pollInterval = 50 * time.Millisecond

// Config selects what a [Recorder] records.
type Config struct {
	// Snaplen is the most packet bytes recorded per event (0 means
	// DefaultSnaplen). Each event takes this much ring buffer space.
	Snaplen int
	// RingBufferSize is the size in bytes of the ring buffer shared by all
	// hooks: a power of two and a multiple of the page size (0 means
	// DefaultRingBufferSize).
	RingBufferSize int
	// TrackedPackets is how many packets can be followed at once (0 means
	// DefaultTrackedPackets, at most MaxTrackedPackets), rounded up to a
	// power of two. The table is set-associative: an skb address selects
	// a set of four entries, and a packet that finds its set full replaces
	// the one that was first followed longest ago.

	TrackedPackets int
	// Hooks names the tracepoints to attach, as in [Hook.Name]; nil means
	// all that the kernel offers (see [ListHooks]). The hooks that free skbs (kfree_skb,
	// consume_skb) are attached in any case, to end tracking; they record
	// only if named here.
	Hooks []string
	// Backend chooses how kernel functions are hooked, in addition to the
	// tracepoints (which are always attached: kfree_skb gives drop
	// reasons): BackendTracepoint (no functions), BackendKprobeMulti,
	// BackendKprobe, BackendFentry, or BackendAuto ("" too), which picks
	// fentry for a Functions pattern matching at most AutoFentryMax
	// functions, else the first that the kernel allows of kprobe-multi,
	// fentry (on DefaultFunctions) and kprobe, else tracepoints only
	// (Exit makes it fentry). See docs/BACKENDS.md.
	// [Recorder.Backend] tells which was chosen.
	Backend string
	// Functions is a regular expression selecting the kernel functions
	// (among those taking a struct sk_buff *, see [ListFunctions]) that
	// the function backend attaches to. Empty means every such function
	// for kprobe-multi and [DefaultFunctions] for kprobe and fentry.
	Functions string
	// Exit also hooks the exit of every function (fentry backend: one
	// fexit program each), so that events carry return values.
	Exit bool

	// Stack records the kernel stack of every event (Event.Stack), at most
	// StackDepth frames (0 means DefaultStackDepth, at most MaxStackDepth).
	// Each frame takes 8 bytes of ring buffer per event.
	Stack      bool
	StackDepth int

	// Filter, if not nil, is a compiled filter expression: a packet not
	// yet followed is recorded only if it matches (and Match matches too).
	// It runs in the kernel on the packet's first bytes.
	Filter *Filter
	// Match selects packets by kernel metadata, ANDed with Filter.
	Match Match
	// NoTrack runs the filter at every hook, also for packets already
	// followed. By default a packet that matched once is recorded at every
	// later hook, whatever its bytes become (NAT, encapsulation).
	NoTrack bool

	// filter replaces the body of the in-kernel packet filter; nil keeps
	// every packet. It takes precedence over Filter. See replaceFilter.
	filter asm.Instructions
	// probeRead copies the filter's bytes with bpf_probe_read_kernel even
	// where the kernel allows direct loads.
	probeRead bool
	// wakeupBytes is the fill level at whose multiples the BPF program
	// wakes the reader; 0 means a quarter of the ring buffer.
	wakeupBytes int
}

// Match selects packets by kernel metadata, evaluated in the kernel for
// each packet not yet followed. Zero fields match anything.
type Match struct {
	// NetNS is the inode number of a network namespace (as in
	// [Event.NetNS]): the device's, or the socket's if the skb has no
	// device.
	NetNS uint32
	// Ifindex is a device index (as in [Event.Ifindex]). Indexes repeat
	// across namespaces: set NetNS too.
	Ifindex uint32
	// Mark and MarkMask select skb->mark & MarkMask == Mark. A MarkMask of
	// 0 ignores the mark; to match a mark of 0, set MarkMask.
	Mark, MarkMask uint32
	// PID is the thread group id of the task running when the hook fires.
	// Hooks in softirq context run on behalf of whichever task they
	// interrupted, so this selects sending more reliably than receiving.
	PID uint32
}

// Stats counts what a [Recorder] has seen.
type Stats struct {
	// Events is the number of events delivered to Run's callback.
	Events uint64
	// Lost is the number of hits, of packets that the filter kept, that
	// found the ring buffer full.
	Lost uint64
}

// Recorder records the skbs seen at a set of hooks. Create it with
// [NewRecorder]; call Run to read events and Close to detach.
type Recorder struct {
	hooks   []Hook
	untrack []Hook // free hooks attached only to end tracking
	reasons *DropReasons
	snaplen int

	backend     string // the backend attached, as in Config.Backend
	backendNote string // why auto did not choose better backends
	skipped     int    // functions of the backend that failed to attach

	// filterInPlace: the filter expression reads the packet where it is
	// (the kernel allows loads through skb->head); else from a copy.
	filterInPlace bool

	stackBytes int           // bytes of stack area per record, 0: no stacks
	trimmer    *stackTrimmer // removes BPF frames from stacks

	events   *ebpf.Map
	tracked  *ebpf.Map
	states   *ebpf.Map
	buf      *ebpf.Map
	hints    *ebpf.Map
	calls    *ebpf.Map
	progs    []*ebpf.Program
	links    []link.Link
	ring     *ring
	clock    clock
	lastLost []uint64 // per CPU, the lost count of the last record read
	read     atomic.Uint64
}

// NewRecorder loads the BPF programs for cfg's hooks and attaches them. The
// hooks record into the ring buffer from then on: call Run promptly. On
// error, everything opened so far is closed.
func NewRecorder(cfg Config) (*Recorder, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	kernel, err := loadKernelBTF()
	if err != nil {
		return nil, err
	}
	all, err := discoverHooks(kernel)
	if err != nil {
		return nil, err
	}
	hooks, err := selectHooks(all, cfg.Hooks)
	if err != nil {
		return nil, err
	}
	reasons, err := dropReasonsFromBTF(kernel)
	if err != nil {
		// Hooks still work; events then carry only the reason's number.
		reasons = nil
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("count possible CPUs: %w", err)
	}

	r := &Recorder{
		hooks:    hooks,
		untrack:  untrackHooks(all, hooks),
		reasons:  reasons,
		snaplen:  cfg.Snaplen,
		lastLost: make([]uint64, ncpu),
	}
	if cfg.Stack {
		r.stackBytes = 8 * cfg.StackDepth
	}
	for i := range r.hooks {
		r.hooks[i].ID = i
	}
	if err := r.open(cfg, kernel, ncpu); err != nil {
		r.Close()
		return nil, err
	}
	if cfg.Stack {
		// After loading: the programs' own symbols must be in the table.
		r.trimmer = newStackTrimmer()
	}
	return r, nil
}

// withDefaults fills in cfg's zero values and checks the rest.
func (cfg Config) withDefaults() (Config, error) {
	switch cfg.Backend {
	case "":
		cfg.Backend = BackendAuto
	case BackendAuto, BackendTracepoint, BackendKprobeMulti, BackendKprobe, BackendFentry:
	default:
		return cfg, fmt.Errorf("select backend %q: %w", cfg.Backend, ErrBackend)
	}
	if cfg.Exit && cfg.Backend != BackendFentry && cfg.Backend != BackendAuto {
		return cfg, fmt.Errorf("select backend %s: %w: function exits need fentry", cfg.Backend, ErrBackend)
	}
	if cfg.StackDepth == 0 {
		cfg.StackDepth = DefaultStackDepth
	}
	if cfg.StackDepth < 0 || cfg.StackDepth > MaxStackDepth {
		return cfg, fmt.Errorf("check stack depth %d: want 1 to %d", cfg.StackDepth, MaxStackDepth)
	}
	stack := 0
	if cfg.Stack {
		stack = 8 * cfg.StackDepth
	}
	if cfg.Snaplen == 0 {
		cfg.Snaplen = DefaultSnaplen
	}
	if cfg.Snaplen < 0 || cfg.Snaplen > MaxSnaplen {
		return cfg, fmt.Errorf("check snap length %d: want 1 to %d", cfg.Snaplen, MaxSnaplen)
	}
	if cfg.RingBufferSize == 0 {
		cfg.RingBufferSize = DefaultRingBufferSize
	}
	page := os.Getpagesize()
	size := cfg.RingBufferSize
	if size < page || size&(size-1) != 0 || size > 1<<30 {
		return cfg, fmt.Errorf("check ring buffer size %d: want a power of two from %d to %d", size, page, 1<<30)
	}
	if need := 4 * (recordSize + stack + cfg.Snaplen + 8); size < need {
		return cfg, fmt.Errorf("check ring buffer size %d: want at least %d for snap length %d", size, need, cfg.Snaplen)
	}
	if cfg.wakeupBytes == 0 {
		cfg.wakeupBytes = cfg.RingBufferSize / 4
	}
	if cfg.TrackedPackets == 0 {
		cfg.TrackedPackets = DefaultTrackedPackets
	}
	if cfg.TrackedPackets < 0 || cfg.TrackedPackets > MaxTrackedPackets {
		return cfg, fmt.Errorf("check tracked packets %d: want a number from 1 to %d", cfg.TrackedPackets, MaxTrackedPackets)
	}
	if m := cfg.Match; m.Mark&^m.MarkMask != 0 {
		return cfg, fmt.Errorf("check mark %#x/%#x: %w: the value has bits outside the mask", m.Mark, m.MarkMask, ErrFilter)
	}
	return cfg, nil
}

// loadEnv is what loading a program needs: the BPF object, the kernel's
// BTF, the shared maps and the knobs common to every hook.
type loadEnv struct {
	spec   *ebpf.CollectionSpec // the BTF-typed object (bpf/skb.c)
	kernel *btf.Spec
	opts   ebpf.CollectionOptions
	knobs  hookKnobs
}

// open creates the shared maps, loads one program per tracepoint, attaches
// them and the function backend, and opens the ring buffer reader.
func (r *Recorder) open(cfg Config, kernel *btf.Spec, ncpu int) error {
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
	if r.states, err = newMap(spec, bpf.SkbMapCpuStates, 0); err != nil {
		return err
	}
	if r.hints, err = newMap(spec, bpf.SkbMapHints, 0); err != nil {
		return err
	}
	if r.calls, err = newMap(spec, bpf.SkbMapCalls, 0); err != nil {
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
		opts: ebpf.CollectionOptions{
			MapReplacements: map[string]*ebpf.Map{
				bpf.SkbMapEvents:    r.events,
				bpf.SkbMapTracked:   r.tracked,
				bpf.SkbMapCpuStates: r.states,
				bpf.SkbMapFilterBuf: r.buf,
				bpf.SkbMapHints:     r.hints,
				bpf.SkbMapCalls:     r.calls,
			},
			Programs: ebpf.ProgramOptions{KernelTypes: kernel},
		},
		knobs: knobs,
	}

	for i := range r.hooks {
		err := r.attachTracing(&r.hooks[i], env.knobs, env)
		if i == 0 && err != nil && env.knobs.filter != nil && !env.knobs.probeRead {
			// Older kernels type skb->head as a number, not as memory
			// the program may load from: copy the filter's bytes with
			// the helper instead.
			var ve *ebpf.VerifierError
			if errors.As(err, &ve) {
				env.knobs.probeRead = true
				err = r.attachTracing(&r.hooks[i], env.knobs, env)
			}
		}
		if err != nil {
			return err
		}
	}
	r.filterInPlace = env.knobs.filter != nil && !env.knobs.probeRead
	untrack := env.knobs
	untrack.untrackOnly = true
	for i := range r.untrack {
		if err := r.attachTracing(&r.untrack[i], untrack, env); err != nil {
			return err
		}
	}
	if err := r.attachFunctions(cfg, env); err != nil {
		return err
	}

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
}

// vars returns the values of the knobs in k by BPF variable name (the
// names are the same in both BPF objects).
func (k hookKnobs) vars() map[string]any {
	b := func(v bool) uint32 {
		if v {
			return 1
		}
		return 0
	}
	return map[string]any{
		bpf.SkbVarSnaplen:       k.snaplen,
		bpf.SkbVarStackBytes:    k.stackBytes,
		bpf.SkbVarNrCpus:        k.ncpu,
		bpf.SkbVarWakeupBytes:   k.wakeupBytes,
		bpf.SkbVarTrackSetMask:  k.trackSets - 1,
		bpf.SkbVarMatchNetns:    k.match.NetNS,
		bpf.SkbVarMatchIfindex:  k.match.Ifindex,
		bpf.SkbVarMatchMark:     k.match.Mark,
		bpf.SkbVarMatchMarkMask: k.match.MarkMask,
		bpf.SkbVarMatchPid:      k.match.PID,
		bpf.SkbVarHasExpr:       b(k.filter != nil),
		bpf.SkbVarFiltered:      b(k.filter != nil || k.match != Match{}),
		bpf.SkbVarFilterWindow:  k.window,
		bpf.SkbVarTrack:         b(k.track),
		bpf.SkbVarDirectRead:    b(!k.probeRead),
		bpf.SkbVarUntrackOnly:   b(k.untrackOnly),
		bpf.SkbVarExitHook:      b(k.exit),
		bpf.SkbVarEntryHook:     uint32(k.entryHook),
		bpf.SkbVarPairCalls:     b(k.pairCalls),
		bpf.SkbVarCloneHook:     b(k.clone),
		bpf.SkbVarRetArg:        int32(k.retArg),
	}
}

// setKnobs sets the BPF variables in vars in spec.
func setKnobs(spec *ebpf.CollectionSpec, vars map[string]any) error {
	for name, v := range vars {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("set %s: variable not in BPF object", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	return nil
}

// loadHook loads the BTF-typed program for h (a tracepoint, fentry or fexit
// hook, by h.Kind) from a copy of spec, with h's argument positions and k
// set as constants and the shared maps in opts.
func loadHook(spec *ebpf.CollectionSpec, h *Hook, opts ebpf.CollectionOptions, k hookKnobs) (*ebpf.Program, error) {
	spec = spec.Copy()
	vars := k.vars()
	vars[bpf.SkbVarHookId] = uint32(h.ID)
	vars[bpf.SkbVarSkbArg] = int32(h.SKBArg)
	vars[bpf.SkbVarDevArg] = int32(h.DevArg)
	vars[bpf.SkbVarReasonArg] = int32(h.ReasonArg)
	vars[bpf.SkbVarLocationArg] = int32(h.LocationArg)
	vars[bpf.SkbVarIsFreeHook] = uint32(0)
	if h.Frees {
		vars[bpf.SkbVarIsFreeHook] = uint32(1)
	}
	if err := setKnobs(spec, vars); err != nil {
		return nil, fmt.Errorf("load hook %s: %w", h.Name, err)
	}
	prog := spec.Programs[bpf.SkbProgOnSkb]
	prog.AttachTo = h.Name
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
		return nil, loadError("hook "+h.Kind.String()+":"+h.Name, err)
	}
	loaded := coll.DetachProgram(bpf.SkbProgOnSkb)
	// The program holds its own references to the maps it uses.
	coll.Close()
	return loaded, nil
}

// loadError wraps an error of loading what, with the tail of the verifier
// log if the verifier refused.
func loadError(what string, err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("load %s: %w\nverifier log (tail):\n%-30v", what, err, ve)
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

// Hooks returns the attached hooks (tracepoints, then functions); an
// Event's Hook points into this table and Hook.ID is the index. The caller
// must not modify it.
func (r *Recorder) Hooks() []Hook {
	return r.hooks
}

// Backend returns the function backend attached besides the tracepoints
// (BackendKprobeMulti, BackendKprobe or BackendFentry), or
// BackendTracepoint if none.
func (r *Recorder) Backend() string {
	return r.backend
}

// BackendNote says why BackendAuto did not choose a better backend (the
// error of each it tried), or is empty.
func (r *Recorder) BackendNote() string {
	return r.backendNote
}

// SkippedFunctions returns the number of selected functions that the
// kernel refused to attach to (not traceable after all, e.g. inlined
// everywhere, or with arguments a trampoline cannot pass); the others are
// attached.
func (r *Recorder) SkippedFunctions() int {
	return r.skipped
}

// DropReasons returns the running kernel's drop reason names.
func (r *Recorder) DropReasons() *DropReasons {
	return r.reasons
}

// Run reads events until ctx is done and calls fn for each, then delivers
// the events that were in the ring buffer at that moment and returns nil.
// fn's error stops Run and is returned. The Event passed to fn is reused:
// its contents, Data above all, are valid only during the call. Run must
// not be called concurrently with itself, and returns an error after Close.
func (r *Recorder) Run(ctx context.Context, fn func(*Event) error) error {
	rg := r.ring
	if rg == nil {
		return fmt.Errorf("read ring buffer: %w", os.ErrClosed)
	}
	rg.reading.Lock()
	defer rg.reading.Unlock()
	// Cancelling ctx interrupts a wait for data.
	stop := context.AfterFunc(ctx, func() { _ = rg.interrupt() })
	defer stop()

	rd := reader{
		sample: make([]byte, 0, recordSize+r.stackBytes+r.snaplen),
		ev:     Event{reasons: r.reasons},
	}
	deliver := func(sample []byte) error {
		if err := r.deliver(&rd, sample, fn); err != nil {
			return err
		}
		// Under a flood the ring never empties: stop between records.
		return ctx.Err()
	}
	for {
		if rg.closing.Load() {
			return fmt.Errorf("read ring buffer: %w", os.ErrClosed)
		}
		n, busy, err := rg.read(deliver)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			return err
		}
		switch {
		case busy && n == 0:
			// A record is being written: it is submitted within
			// microseconds.
			time.Sleep(50 * time.Microsecond)
		case n == 0:
			// The ring is empty. The BPF programs wake the reader only
			// once a quarter of the ring is unread, so poll again after a
			// while.
			if err := rg.wait(pollInterval); err != nil {
				return err
			}
		}
	}
	return r.drain(rg, &rd, fn)
}

// drain delivers the events in the ring buffer now, but not those that
// hooks keep adding: under a steady stream it would never end.
func (r *Recorder) drain(rg *ring, rd *reader, fn func(*Event) error) error {
	for tries := 0; tries < 100; tries++ {
		_, busy, err := rg.read(func(sample []byte) error { return r.deliver(rd, sample, fn) })
		if err != nil || !busy {
			return err
		}
		time.Sleep(50 * time.Microsecond)
	}
	return nil
}

// reader is Run's reusable state: one record buffer, one decoded record
// and one Event for all events.
type reader struct {
	sample []byte // the record being delivered, copied out of the ring
	raw    bpf.SkbEvent
	ev     Event
	stack  []uint64 // Event.Stack's backing array
}

// deliver decodes the record in rd and calls fn.
func (r *Recorder) deliver(rd *reader, sample []byte, fn func(*Event) error) error {
	// The record is copied out of the ring: the Event's bytes stay valid
	// however the caller uses them during fn.
	rd.sample = append(rd.sample[:0], sample...)
	ev, raw := &rd.ev, &rd.raw
	if err := ev.decode(rd.sample, raw, r.stackBytes); err != nil {
		return fmt.Errorf("decode event: %w", err)
	}
	if int(raw.HookId) >= len(r.hooks) {
		return fmt.Errorf("decode event: hook id %d out of range", raw.HookId)
	}
	ev.Hook = &r.hooks[raw.HookId]
	ev.RetVal = 0
	if ev.HasRetVal {
		ev.RetVal = ev.Hook.ret.extend(raw.Retval)
	}
	ev.Stack, ev.StackLost, ev.StackErr = nil, false, 0
	if raw.Flags&flagHasStack != 0 {
		r.decodeStack(ev, rd.sample[recordSize:recordSize+r.stackBytes], raw.StackLen, &rd.stack)
	}
	ev.Time = r.clock.wall(raw.KtimeNs)
	ev.LostBefore = 0
	if int(raw.Cpu) < len(r.lastLost) {
		ev.LostBefore = raw.Lost - r.lastLost[raw.Cpu]
		r.lastLost[raw.Cpu] = raw.Lost
	}
	r.read.Add(1)
	return fn(ev)
}

// Stats returns the counts so far. It may be called while Run runs.
func (r *Recorder) Stats() (Stats, error) {
	s := Stats{Events: r.read.Load()}
	var states []bpf.SkbCpuState
	if err := r.states.Lookup(uint32(0), &states); err != nil {
		return s, fmt.Errorf("read per-CPU state: %w", err)
	}
	for _, st := range states {
		s.Lost += st.Lost
	}
	return s, nil
}

// Close detaches all hooks and frees the maps. Events still in the ring
// buffer are discarded. Call it after Run has returned.
func (r *Recorder) Close() error {
	var errs []error
	for _, l := range r.links {
		errs = append(errs, l.Close())
	}
	r.links = nil
	for _, p := range r.progs {
		errs = append(errs, p.Close())
	}
	r.progs = nil
	if r.ring != nil {
		errs = append(errs, r.ring.close())
		r.ring = nil
	}
	for _, m := range []*ebpf.Map{r.events, r.tracked, r.states, r.buf, r.hints, r.calls} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	r.events, r.tracked, r.states, r.buf, r.hints, r.calls = nil, nil, nil, nil, nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close recorder: %w", err)
	}
	return nil
}

// clock converts bpf_ktime_get_ns (CLOCK_MONOTONIC) to wall-clock time.
type clock struct {
	offset int64 // realtime - monotonic, in ns
}

// newClock measures the offset between the two clocks, taking the
// realtime reading with the smallest monotonic bracket of a few tries.
func newClock() (clock, error) {
	best := int64(-1)
	var c clock
	for range 5 {
		var m1, rt, m2 unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &m1); err != nil {
			return c, fmt.Errorf("read monotonic clock: %w", err)
		}
		if err := unix.ClockGettime(unix.CLOCK_REALTIME, &rt); err != nil {
			return c, fmt.Errorf("read realtime clock: %w", err)
		}
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &m2); err != nil {
			return c, fmt.Errorf("read monotonic clock: %w", err)
		}
		if d := m2.Nano() - m1.Nano(); best < 0 || d < best {
			best = d
			c.offset = rt.Nano() - (m1.Nano()+m2.Nano())/2
		}
	}
	return c, nil
}

// wall returns the wall-clock time of the monotonic time ns.
func (c clock) wall(ns uint64) time.Time {
	return time.Unix(0, c.offset+int64(ns))
}
