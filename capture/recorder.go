package capture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

	"github.com/pathcap/pathcap/bpf"
)

// pollInterval bounds how long a recorded event waits in the ring buffer
// before Run delivers it: the BPF program wakes the reader only every
// quarter of the ring.
const pollInterval = 50 * time.Millisecond

// Stats counts what a [Recorder] has seen.
type Stats struct {
	// Events is the number of events delivered to Run's callback.
	Events uint64
	// Lost is the number of hits, of packets that the filter kept, that
	// found the ring buffer full.
	Lost uint64
	// OverBudget is the number of hits not recorded because
	// Config.MaxRate was reached on their CPU.
	OverBudget uint64
}

// Recorder records the skbs seen at a set of hooks. Create it with
// [NewRecorder]; call Run to read events and Close to detach.
type Recorder struct {
	hooks   []Hook
	untrack []Hook // free hooks attached only to end tracking
	reasons *DropReasons
	snaplen int

	compat compat // what this kernel allows, and what recording does without the rest

	backend     string // the backend attached, as in Config.Backend
	backendNote string // why auto did not choose better backends
	skipped     int    // functions of the backend that failed to attach

	// filterInPlace: the filter expression reads the packet where it is
	// (the kernel allows loads through skb->head); else from a copy.
	filterInPlace bool

	stackBytes int           // bytes of stack area per record, 0: no stacks
	trimmer    *stackTrimmer // removes BPF frames from stacks

	events    *ebpf.Map
	tracked   *ebpf.Map
	heads     *ebpf.Map // buffers of followed packets, for clones
	states    *ebpf.Map
	buf       *ebpf.Map
	hints     *ebpf.Map
	calls     *ebpf.Map
	nft       nftState // names of nftables chains (nft_do_chain's exit)
	progs     []*ebpf.Program
	progKinds []HookKind            // the kind of hook each of progs serves
	hookProgs map[int]*ebpf.Program // by hook id, hooks with a program of their own
	links     []link.Link
	// detachOnce closes links once (when Run's ctx is done, or in
	// Close), with the errors in detachErrs.
	detachOnce sync.Once
	detachErrs []error
	ring       *ring
	clock      clock
	lastLost   []uint32 // per CPU, the lost count of the last record read
	lastSkip   []uint32 // per CPU, the skipped count of the last record read
	read       atomic.Uint64

	progress *progress // start-up progress reports (Config.Progress)
}

// NewRecorder loads the BPF programs for cfg's hooks and attaches them. The
// hooks record into the ring buffer from then on: call Run promptly. On
// error, everything opened so far is closed.
func NewRecorder(cfg Config) (*Recorder, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cache := btf.NewCache()
	kernel, err := kernelBTF(cache)
	if err != nil {
		return nil, err
	}
	tab := kernelTable(kernel)
	all, err := discoverHooks(kernel, tab)
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
		lastLost: make([]uint32, ncpu),
		lastSkip: make([]uint32, ncpu),
		progress: &progress{fn: cfg.Progress},
	}
	if cfg.Stack {
		r.stackBytes = 8 * cfg.StackDepth
	}
	for i := range r.hooks {
		r.hooks[i].ID = i
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK (the probes
	// below load programs too); this is a no-op on later ones.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raise memlock limit: %w", permissionError(err))
	}
	if r.compat, err = decideCompat(cfg, kernel, cache, hooks, ncpu); err != nil {
		return nil, err
	}
	if err := r.open(cfg, cache, kernel, tab, ncpu); err != nil {
		r.Close()
		return nil, err
	}
	if cfg.Stack {
		// After loading: the programs' own symbols must be in the table.
		r.trimmer = newStackTrimmer()
	}
	return r, nil
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

// AuditSafe reports whether the recorder makes no bpf_probe_read_kernel
// call per hit (see Config.ProbeReads), with the verdict that decided it.
func (r *Recorder) AuditSafe() (bool, AuditHazard) {
	return r.compat.auditSafe, r.compat.audit
}

// Notes returns what the recorder does differently on this kernel or host
// and why, one sentence each (missing helpers, audit-safe mode), for the
// user to read.
func (r *Recorder) Notes() []string {
	return r.compat.notes
}

// DropReasons returns the running kernel's drop reason names.
func (r *Recorder) DropReasons() *DropReasons {
	return r.reasons
}

// Run reads events until ctx is done and calls fn for each. When ctx is
// done it detaches the hooks, delivers every event they recorded until
// then and returns nil: Run records once.
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
	// Cancelling ctx interrupts a wait for data. Run returns only after
	// the interruption is done: Close may close its descriptor then (and
	// the number could be another file's by the time it is written).
	// The hooks are detached at the same time, while Run delivers what is
	// in the ring: closing links waits in the kernel (0.66 s for
	// kprobe-multi's in the 6.12 VM), the drain needs the CPU.
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = rg.interrupt()
		close(interrupted)
		r.detach()
	})
	defer func() {
		if !stop() {
			<-interrupted
		}
	}()

	rd := reader{ev: Event{reasons: r.reasons}}
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
	if err := r.drain(rg, &rd, fn); err != nil {
		return err
	}
	// Once the hooks are gone nothing more comes: what they recorded
	// while they were being detached is delivered too.
	r.detach()
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

// reader is Run's reusable state: one decoded record and one Event for
// all events.
type reader struct {
	raw   bpf.SkbEvent
	ev    Event
	stack []uint64 // Event.Stack's backing array
}

// deliver decodes the record sample and calls fn. sample is the record in
// the ring buffer itself, not a copy: the ring gives its space back only
// after fn returns (ring.read), and the mapping is read-only, so the
// Event's bytes stay as they are during fn.
func (r *Recorder) deliver(rd *reader, sample []byte, fn func(*Event) error) error {
	ev, raw := &rd.ev, &rd.raw
	if err := ev.decode(sample, raw, r.stackBytes); err != nil {
		return fmt.Errorf("decode event: %w", err)
	}
	if int(raw.HookId) >= len(r.hooks) {
		return fmt.Errorf("decode event: hook id %d out of range", raw.HookId)
	}
	ev.Hook = &r.hooks[raw.HookId]
	if ev.nftChain != 0 && ev.Hook.NFTChain && ev.Hook.Kind == HookFexit {
		r.nft.name(ev, ev.nftChain, ev.nftHandle)
	}
	ev.RetVal = 0
	if ev.HasRetVal {
		ev.RetVal = ev.Hook.ret.extend(raw.Retval)
	}
	ev.Stack, ev.StackLost, ev.StackErr = nil, false, 0
	if raw.Flags&flagHasStack != 0 {
		r.decodeStack(ev, sample[recordSize:recordSize+r.stackBytes], raw.StackLen, &rd.stack)
	}
	ev.Time = r.clock.wall(raw.KtimeNs)
	ev.LostBefore, ev.SkippedBefore = 0, 0
	if int(raw.Cpu) < len(r.lastLost) {
		// Running counts modulo 2^32: the difference is exact.
		ev.LostBefore = uint64(raw.Lost - r.lastLost[raw.Cpu])
		r.lastLost[raw.Cpu] = raw.Lost
		ev.SkippedBefore = uint64(raw.Skipped - r.lastSkip[raw.Cpu])
		r.lastSkip[raw.Cpu] = raw.Skipped
	}
	r.read.Add(1)
	return fn(ev)
}

// HookRuns returns how often the BPF program of hook h has run and for how
// long in all, as the kernel counts them while BPF statistics are on
// (sysctl kernel.bpf_stats_enabled, or ebpf.EnableStats): the program's
// own time, without the trampoline or kprobe that called it. ok is false
// for hooks without a program of their own (kprobes share one, and on
// Linux 6.10+ so do the tracepoints of one argument layout) and when
// the kernel does not say.
func (r *Recorder) HookRuns(h *Hook) (runs uint64, total time.Duration, ok bool) {
	p := r.hookProgs[h.ID]
	if p == nil {
		return 0, 0, false
	}
	st, err := p.Stats()
	if err != nil {
		return 0, 0, false
	}
	return st.RunCount, st.Runtime, true
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
		s.OverBudget += st.OverBudget
	}
	return s, nil
}

// Close detaches all hooks and frees the maps. Events still in the ring
// buffer are discarded. Call it after Run has returned.
func (r *Recorder) Close() error {
	r.detach()
	errs := r.detachErrs
	r.links = nil
	for _, p := range r.progs {
		errs = append(errs, p.Close())
	}
	r.progs = nil
	r.progKinds = nil
	r.hookProgs = nil
	if r.ring != nil {
		errs = append(errs, r.ring.close())
		r.ring = nil
	}
	for _, m := range []*ebpf.Map{r.events, r.tracked, r.heads, r.states, r.buf, r.hints, r.calls, r.nft.chains, r.nft.scratch} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	r.events, r.tracked, r.heads, r.states, r.buf, r.hints, r.calls = nil, nil, nil, nil, nil, nil, nil
	r.nft.chains, r.nft.scratch = nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close recorder: %w", err)
	}
	return nil
}

// detach closes the links, once: every hook stops recording.
func (r *Recorder) detach() {
	r.detachOnce.Do(func() { r.detachErrs = closeLinks(r.links) })
}

// closeLinkers bounds the links closed at once.
const closeLinkers = 16

// closeLinks closes links on up to closeLinkers goroutines and returns
// their errors in order. Closing a link waits in the kernel (an RCU grace
// period, a trampoline or ftrace update, a kretprobe's unregistering):
// those waits overlap, instead of adding up link after link.
func closeLinks(links []link.Link) []error {
	errs := make([]error, len(links))
	sem := make(chan struct{}, closeLinkers)
	var wg sync.WaitGroup
	for i, l := range links {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			errs[i] = l.Close()
			<-sem
		}()
	}
	wg.Wait()
	return errs
}
