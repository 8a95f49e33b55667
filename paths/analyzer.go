package paths

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/pathcap/pathcap/kmeta"
)

// Options controls an Analyzer.
type Options struct {
	// Window is how long (in recording time) a packet may go without a new
	// event before its path is considered complete. Default 2 s.
	Window time.Duration
	// Grace is how long a freed packet stays open for events that arrive
	// out of order. Default 50 ms.
	Grace time.Duration
	// MaxOpen bounds the packets held open at once; past it the oldest
	// are completed early. Default 1,000,000.
	MaxOpen int
	// MaxHops bounds the hops kept per packet (further hops are counted).
	// Default 1024.
	MaxHops int
	// KeepData keeps each packet's bytes as first seen (Packet.Data).
	KeepData bool
	// Filter, when set, is run on every event's bytes; a packet with one
	// accepted hop gets Packet.FilterMatched.
	Filter func(data []byte) bool
	// NoChanges leaves every Hop.Changed zero, for callers that do not
	// read it (statistics): marking the changes reads every hop back
	// once more when its packet completes.
	NoChanges bool
}

func (o Options) withDefaults() Options {
	if o.Window <= 0 {
		o.Window = 2 * time.Second
	}
	if o.Grace <= 0 {
		o.Grace = 50 * time.Millisecond
	}
	if o.MaxOpen <= 0 {
		o.MaxOpen = 1_000_000
	}
	if o.MaxHops <= 0 {
		o.MaxHops = 1024
	}
	return o
}

// reuseGap is the silence after which an event of another flow under a
// packet's id is taken for a new skb that inherited the id. The hops of one
// packet whose flow changes (NAT, encapsulation) follow each other within
// microseconds.
const reuseGap = 10 * time.Millisecond

// FreedUnseen is Outcome.Why of a packet whose tracking id passed to
// another skb: its skb was freed where no hook sees it.
const FreedUnseen = "its skb was freed where no hook sees it (the id passed to another skb)"

// NotDroppedAfterReceive is Outcome.Why of a packet last seen at a receive
// hook and at no hook after it, neither dropped nor freed: the free
// tracepoints are always recorded, so it was not dropped, but where it went
// (a socket's receive path that copies and frees where no tracepoint
// fires, on recent kernels) only a function backend shows.
const NotDroppedAfterReceive = "not dropped (a drop would show), but no hook saw it after it was received: a socket's receive path that frees where no tracepoint fires; a function backend shows where"

type packetKey struct {
	recording int
	id        uint64
}

type openPacket struct {
	Packet
	key      packetKey
	last     int64 // time of the latest event
	memFreed int64 // time of a kfree_skbmem hop, 0 if none
	freed    bool
	gen      uint64 // bumped each time the struct is reused
	// openChildren counts its clones still open: a packet waits for them
	// (within the window), since a clone's fate can decide its outcome.
	openChildren int
	// ownDelivered caches, when settledKnown, whether its own skb was
	// delivered (the kind classify gives it before the clones): then no
	// clone can change its outcome and it does not wait for them.
	settledKnown, ownDelivered bool
	// disordered says a hop came with an earlier time than the hop
	// before it (!inTimeOrder(Hops), known without reading them again).
	disordered bool
	// fold is classify's view of its hops, folded in as they came.
	fold hookFold
	// why is what ended the packet's analysis, for an unknown outcome.
	why string
	// unfinished says the output goroutine completes it (complete)
	// before emitting it.
	unfinished bool
	// held are its clones that completed while it waited for them: they
	// are handed over right after it, so that a packet comes before its
	// clones in the output.
	held []*openPacket
	// metas holds the metadata of its hops that is not shared (hopMeta);
	// kept across reuses, as Hops.
	metas []kmeta.Event
	// deferred are its clones whose outcomes the output goroutine
	// completes before it completes this packet (Clones[i].Outcome is
	// deferred[i]'s), when there is one; kept across reuses.
	deferred []*openPacket
}

// freedEntry is a packet waiting in the freed queue; gen tells whether the
// struct still holds that packet.
type freedEntry struct {
	p   *openPacket
	gen uint64
}

// Analyzer groups events into packets and hands each packet to a callback
// once its path is complete. Use Add for every event, then Close.
type Analyzer struct {
	opts      Options
	emit      func(*Packet) error
	open      openTable
	now       int64 // latest event time seen
	lastSweep int64
	nextID    uint64 // ids for events without one
	free      []*openPacket
	batch     []*openPacket
	freedQ    []freedEntry // freed packets, in the order they were freed
	freedHead int
	// last is the packet of the previous event while it is open (gen
	// still lastGen): consecutive events mostly belong to one packet,
	// which then needs no map lookup.
	last    *openPacket
	lastGen uint64
	// out, when set, runs emit on a goroutine of its own (Process).
	out *handoff
	// bare is the metadata of the latest event without any (hopMeta).
	bare *kmeta.Event
}

// NewAnalyzer returns an Analyzer that calls emit for every completed
// packet. The Packet passed to emit is reused after emit returns.
func NewAnalyzer(opts Options, emit func(*Packet) error) *Analyzer {
	return &Analyzer{
		opts: opts.withDefaults(),
		emit: emit,
		open: newOpenTable(),
	}
}

// Add adds one event. It reads the event's fields (Data for the flow, the
// filter and, with KeepData, the packet's bytes; IfName as the device of
// events without metadata; NSName), never Interface, and keeps nothing of
// ev after it returns but copies.
func (a *Analyzer) Add(ev *Event) error {
	return a.add(ev, ParseFlow(ev.Data))
}

// add is Add with the event's flow, ParseFlow(ev.Data), parsed already
// (Process parses it on the reading side).
func (a *Analyzer) add(ev *Event, flow Flow) error {
	if ev.Time > a.now {
		a.now = ev.Time
	}
	meta := ev.metadata()
	class := kmeta.ClassOf(meta.Hook)
	var key packetKey
	if ev.HasID {
		key = packetKey{ev.Recording, ev.ID}
	} else {
		// A capture without tracking ids: every frame is its own packet.
		a.nextID++
		key = packetKey{-1 - ev.File, a.nextID}
	}
	var p *openPacket
	if a.last != nil && a.last.gen == a.lastGen && a.last.key == key {
		p = a.last
	} else {
		p = a.open.get(key)
	}
	if p != nil && !p.freed && ev.Time-p.last > int64(reuseGap) && len(p.Hops) > 0 {
		// A long silence, then bytes of another flow under the same id:
		// the skb was freed where no hook saw it (TCP frees with
		// __kfree_skb, which no tracepoint sees) and a new skb at its
		// address inherited the id. Complete the old packet, start anew.
		if len(ev.Data) > 0 && p.Hops[len(p.Hops)-1].Flow.EtherType != 0 && flow != p.Hops[len(p.Hops)-1].Flow {
			a.open.remove(p.key)
			p.why = FreedUnseen
			if err := a.emitOne(p); err != nil {
				return err
			}
			p = nil
		}
	}
	if p != nil && p.memFreed != 0 && ev.Time > p.memFreed {
		// The skb's memory was freed (kfree_skbmem) before this event:
		// the id has passed to a new skb at the same address, which the
		// recorder could not tell apart. Complete the old packet and
		// start a new one.
		a.open.remove(p.key)
		if err := a.emitOne(p); err != nil {
			return err
		}
		p = nil
	}
	if p != nil && a.done(p) {
		// The id comes back after its packet was complete (freed and
		// past the grace period, or quiet for longer than the window):
		// complete the old packet, which a sweep would have done had
		// one run since, and start a new one.
		if err := a.sweep(false); err != nil {
			return err
		}
		p = nil
	}
	if p == nil {
		if a.open.len() >= a.opts.MaxOpen {
			if err := a.evictOldest(); err != nil {
				return err
			}
		}
		p = a.newPacket()
		p.ID = key.id
		p.key = key
		if a.opts.KeepData {
			p.Data = append(p.Data[:0], ev.Data...)
		}
		if ev.HasMeta && meta.Parent != 0 {
			p.Parent = meta.Parent
			if parent := a.open.get(packetKey{ev.Recording, meta.Parent}); parent != nil && !a.done(parent) && mayBeCopyOf(flow, &parent.Packet) {
				parent.Children = append(parent.Children, p.ID)
				parent.openChildren++
				p.Attached = true
			}
		}
		a.open.put(p)
	}
	a.last, a.lastGen = p, p.gen
	if ev.HasMeta {
		// A packet has metadata when any of its events has (the first
		// one's comment may not have parsed). classify depends on it.
		if !p.HasMeta {
			p.settledKnown = false
		}
		p.HasMeta = true
	}
	if ev.Time > p.last {
		p.last = ev.Time
	}
	if len(p.Hops) >= a.opts.MaxHops {
		p.Truncated = true
		p.DroppedHops++
	} else {
		// The hop is written once, in place (hops are large, and the
		// memory they go to is mostly out of the cache).
		n := len(p.Hops)
		switch {
		case n < cap(p.Hops):
			p.Hops = p.Hops[:n+1]
		case n == 0:
			// Most paths have a few hops: one allocation for them.
			p.Hops = make([]Hop, 1, 8)
		default:
			p.Hops = append(p.Hops, Hop{})
		}
		if n > 0 && ev.Time < p.Hops[n-1].Time {
			p.disordered = true
		}
		meta = a.hopMeta(ev, p)
		h := &p.Hops[n]
		if ev.HasMeta {
			*h = Hop{Time: ev.Time, Meta: meta, NSName: ev.NSName, CapLen: uint32(len(ev.Data)), OrigLen: ev.OrigLen,
				Flow: flow, Frame: ev.Frame, File: ev.File, Lost: ev.Lost, Stack: ev.Stack}
		} else {
			*h = Hop{Time: ev.Time, Meta: meta, CapLen: uint32(len(ev.Data)), OrigLen: ev.OrigLen,
				Flow: flow, Frame: ev.Frame, File: ev.File, Lost: ev.Lost}
		}
		p.fold.add(n, meta, class)
		p.settledKnown = false
	}
	if a.opts.Filter != nil && !p.FilterMatched && a.opts.Filter(ev.Data) {
		p.FilterMatched = true
	}
	if ev.HasMeta && class == kmeta.ClassMemoryFree && kmeta.IsFunctionKind(meta.Kind) {
		// A function backend saw the skb's memory go: nothing later
		// can be this packet.
		p.memFreed = ev.Time
	}
	if !p.freed && (!ev.HasID || ev.HasMeta && class.EndsTracking()) {
		// The skb is gone (or, without tracking ids, nothing else will
		// join this packet): complete it once the grace period for
		// out-of-order events has passed.
		p.freed = true
		a.freedQ = append(a.freedQ, freedEntry{p, p.gen})
	}
	if err := a.completeFreed(false); err != nil {
		return err
	}
	if a.now-a.lastSweep >= int64(a.opts.Window)/4 {
		return a.sweep(false)
	}
	return nil
}

// hopMeta returns the metadata of ev's hop in p, which the hop keeps a
// pointer to: the event's shared metadata (Process, a comment that
// repeats), else a copy of Meta in p's own, or for an event without
// metadata one that names only its device.
func (a *Analyzer) hopMeta(ev *Event, p *openPacket) *kmeta.Event {
	if ev.meta != nil {
		return ev.meta
	}
	if !ev.HasMeta {
		if a.bare == nil || a.bare.Dev != ev.IfName {
			a.bare = &kmeta.Event{Dev: ev.IfName}
		}
		return a.bare
	}
	// Appending may move the slice: the hops before keep pointing into
	// the old array, whose events do not change (the array is reused
	// only with the struct, once its hops are gone).
	p.metas = append(p.metas, ev.Meta)
	return &p.metas[len(p.metas)-1]
}

// completeFreed emits the freed packets whose grace period is over (all of
// them when final), oldest first.
func (a *Analyzer) completeFreed(final bool) error {
	cut := a.now - int64(a.opts.Grace)
	var waiting []freedEntry
	for a.freedHead < len(a.freedQ) {
		e := a.freedQ[a.freedHead]
		if e.p.gen == e.gen {
			if !final && e.p.last > cut {
				break
			}
			if e.p.waits() {
				// Its clones decide with it: it waits for them (the
				// sweep completes it once they are, or when final).
				waiting = append(waiting, e)
			} else {
				a.open.remove(e.p.key)
				if err := a.emitOne(e.p); err != nil {
					a.freedHead++
					return err
				}
			}
		}
		a.freedQ[a.freedHead] = freedEntry{}
		a.freedHead++
	}
	if !final {
		a.freedQ = append(a.freedQ, waiting...)
	}
	if a.freedHead > 4096 && a.freedHead*2 > len(a.freedQ) {
		n := copy(a.freedQ, a.freedQ[a.freedHead:])
		a.freedQ = a.freedQ[:n]
		a.freedHead = 0
	}
	return nil
}

// emitOne completes one packet, hands it to emit and returns its struct to
// the pool. With an output goroutine, a packet is finished there unless
// another packet finished here needs its outcome: that work, on hops mostly
// out of the cache by now, leaves the analysis. A clone whose packet is
// finished there is finished there too, just before its packet.
func (a *Analyzer) emitOne(p *openPacket) error {
	if p.Parent != 0 {
		// A clone: its outcome goes to its packet, if that is still open
		// and waiting for it, and it is handed over after its packet.
		if parent := a.open.get(packetKey{p.key.recording, p.Parent}); parent != nil && parent.openChildren > 0 && slices.Contains(parent.Children, p.ID) {
			parent.openChildren--
			parent.held = append(parent.held, p)
			if parent.Parent == 0 && a.out != nil {
				p.unfinished = true
				parent.Clones = append(parent.Clones, CloneOutcome{ID: p.ID})
				parent.deferred = append(parent.deferred, p)
				return nil
			}
			p.complete(!a.opts.NoChanges)
			parent.Clones = append(parent.Clones, CloneOutcome{ID: p.ID, Outcome: p.Outcome})
			return nil
		}
	}
	if a.out != nil {
		p.unfinished = true
		return a.hand(p)
	}
	p.complete(!a.opts.NoChanges)
	return a.hand(p)
}

// complete finishes a packet (hop order, changes, outcome) and says why
// its outcome is unknown, when it is.
// With changes false, Hop.Changed is left as it is (zero).
func (p *openPacket) complete(changes bool) {
	p.finish(changes)
	if p.Outcome.Kind == Unknown {
		p.Outcome.Why = p.why
		if p.Outcome.Why == "" {
			p.Outcome.Why = "no hook saw it after its last hop"
		}
		if n := len(p.Hops); n > 0 && p.HasMeta && kmeta.ClassOf(p.Hops[n-1].Meta.Hook) == kmeta.ClassReceive && strings.HasPrefix(p.Outcome.Why, "no hook saw it") {
			// kfree_skb is always recorded: a drop would show. Sockets'
			// receive paths on recent kernels copy and free where no
			// tracepoint fires.
			p.Outcome.Why = NotDroppedAfterReceive
		}
	}
}

// hand gives a finished packet, then the clones it held, to emit, and
// returns their structs to the pool.
func (a *Analyzer) hand(p *openPacket) error {
	held := p.held
	// The slice stays with the struct (it is reused with it); nothing
	// appends to it before the struct comes back from the pool.
	p.held = held[:0]
	p.gen++
	var err error
	if a.out != nil {
		// Back to the pool once the output goroutine has seen it.
		err = a.out.put(a, p)
	} else {
		err = a.emit(&p.Packet)
		// What the hops point to (metadata shared in blocks, stacks)
		// is not kept alive by the pool.
		clear(p.Hops)
		a.free = append(a.free, p)
	}
	for _, c := range held {
		if e := a.hand(c); err == nil {
			err = e
		}
	}
	clear(held)
	return err
}

func (a *Analyzer) newPacket() *openPacket {
	if n := len(a.free); n > 0 {
		p := a.free[n-1]
		a.free = a.free[:n-1]
		hops, children, clones, data, held, gen, metas, deferred := p.Hops[:0], p.Children[:0], p.Clones[:0], p.Data[:0], p.held[:0], p.gen, p.metas[:0], p.deferred[:0]
		if cap(metas) > 8 {
			// A long path's: not kept for every later packet.
			metas = nil
		}
		*p = openPacket{}
		p.Hops, p.Children, p.Clones, p.Data, p.held, p.gen, p.metas, p.deferred = hops, children, clones, data, held, gen, metas, deferred
		return p
	}
	return &openPacket{}
}

// done reports whether an open packet's path is complete: freed and past
// the grace period, or idle for longer than the window.
func (a *Analyzer) done(p *openPacket) bool {
	return (p.freed && !p.waits() && p.last <= a.now-int64(a.opts.Grace)) || p.last <= a.now-int64(a.opts.Window)
}

// waits reports whether p waits for clones still open: its own skb was
// not delivered, so a clone may decide its outcome (see withClones).
func (p *openPacket) waits() bool {
	if p.openChildren == 0 {
		return false
	}
	if !p.settledKnown {
		p.ownDelivered = p.foldDelivered()
		p.settledKnown = true
	}
	return !p.ownDelivered
}

// foldDelivered reports whether classifyFolded(&p.Packet, &p.fold) says
// Delivered, reading only the hop of the free (the whole classification
// is left to the finish, on the output goroutine for most packets):
// classifyHops's cases that give Delivered (byProgram and byNetfilter
// never change the kind, byXDP only that of an unknown outcome;
// TestFoldDelivered compares).
func (p *openPacket) foldDelivered() bool {
	if !p.HasMeta || len(p.Hops) == 0 {
		return false
	}
	if p.fold.deliveredAt > 0 {
		return true
	}
	at := p.fold.freedAt
	if at == 0 {
		at = p.fold.memFreedAt
	}
	if at == 0 {
		return false
	}
	m := p.Hops[at-1].Meta
	return m.Hook != kmeta.HookDrop && !m.HasDrop && deliveredFreeFunctions[LocationFunction(m.Location)]
}

// finish is Packet.Finish, without looking at the hops' order again when
// they came in order; without marking the changes unless changes is set.
func (p *openPacket) finish(changes bool) {
	if p.disordered {
		p.Packet.finish(changes)
		return
	}
	if changes {
		p.markChanges()
	}
	p.Outcome = withClones(classifyFolded(&p.Packet, &p.fold), p.Clones)
}

// inTimeOrder reports whether hops are ordered by time.
func inTimeOrder(hops []Hop) bool {
	for i := 1; i < len(hops); i++ {
		if hops[i].Time < hops[i-1].Time {
			return false
		}
	}
	return true
}

// sweep completes the packets that are done; all of them when final.
func (a *Analyzer) sweep(final bool) error {
	a.lastSweep = a.now
	a.batch = a.batch[:0]
	for _, s := range a.open.slots {
		if s.p != nil && (final || a.done(s.p)) {
			if !s.p.freed && s.p.why == "" {
				if final && s.p.last > a.now-int64(a.opts.Grace) {
					s.p.why = "the recording ended while it was in flight"
				} else if final {
					s.p.why = "no hook saw it after its last hop until the recording ended"
				} else {
					s.p.why = "no hook saw it for the analysis window after its last hop"
				}
			}
			a.batch = append(a.batch, s.p)
		}
	}
	return a.emitBatch()
}

// evictOldest completes the oldest eighth of the open packets.
func (a *Analyzer) evictOldest() error {
	a.batch = a.batch[:0]
	a.batch = a.open.appendAll(a.batch)
	slices.SortFunc(a.batch, func(x, y *openPacket) int { return cmp.Compare(x.last, y.last) })
	a.batch = a.batch[:max(1, len(a.batch)/8)]
	for _, p := range a.batch {
		if p.why == "" {
			p.why = "completed early: too many packets in flight (Options.MaxOpen)"
		}
	}
	return a.emitBatch()
}

func (a *Analyzer) emitBatch() error {
	// Clones before the packets waiting for them (a packet then hands
	// its clones over right after itself), else by start.
	slices.SortFunc(a.batch, func(x, y *openPacket) int {
		if c := cmp.Compare(b2i(x.waits()), b2i(y.waits())); c != 0 {
			return c
		}
		if c := cmp.Compare(x.Start(), y.Start()); c != 0 {
			return c
		}
		return cmp.Compare(x.ID, y.ID)
	})
	for i, p := range a.batch {
		// Removed one at a time: a clone emitted first still finds its
		// packet open.
		a.open.remove(p.key)
		if err := a.emitOne(p); err != nil {
			for _, q := range a.batch[i+1:] {
				a.open.remove(q.key)
				q.gen++
				a.free = append(a.free, q)
			}
			return err
		}
	}
	return nil
}

// Close completes every packet still open.
func (a *Analyzer) Close() error {
	err := a.completeFreed(true)
	if err == nil {
		err = a.sweep(true)
	}
	if e := a.stopOutput(); err == nil {
		err = e
	}
	return err
}

// emitAsync makes a run emit on a goroutine of its own, overlapping with
// the analysis; Close (or stopOutput) waits for it.
func (a *Analyzer) emitAsync() { a.out = newHandoff(a.emit, !a.opts.NoChanges) }

// stopOutput waits until every packet handed over was emitted and ends
// the output goroutine, if there is one; it returns the output's error.
func (a *Analyzer) stopOutput() error {
	if a.out == nil {
		return nil
	}
	err := a.out.close(a)
	a.out = nil
	return err
}

// Open returns the number of packets currently open.
func (a *Analyzer) Open() int { return a.open.len() }

// Finish orders the hops by time, marks what changed from hop to hop and
// classifies the outcome: what the Analyzer does to every packet before
// handing it over, for packets built by hand (tests, other tools).
func (p *Packet) Finish() { p.finish(true) }

// finish is Finish, marking the changes only when changes is set.
func (p *Packet) finish(changes bool) {
	// Hops nearly always arrive in order: check before sorting (the
	// check looks at times only; hops are large to move around).
	if !inTimeOrder(p.Hops) {
		slices.SortStableFunc(p.Hops, func(x, y Hop) int { return cmp.Compare(x.Time, y.Time) })
	}
	if changes {
		p.markChanges()
	}
	p.Outcome = classify(p)
	p.Outcome = withClones(p.Outcome, p.Clones)
}

// markChanges sets each hop's Changed from the hop before it.
func (p *Packet) markChanges() {
	for i := 1; i < len(p.Hops); i++ {
		p.Hops[i].Changed = diff(&p.Hops[i-1], &p.Hops[i])
	}
}

// withClones returns the outcome of a packet whose own skb ended as own
// and whose clones ended as clones: the best known fate among them, in
// the order delivered, transmitted, dropped, consumed, unknown. A clone
// delivered to a packet socket (a tap's copy) does not count. So a ping
// reply whose own skb is dropped (NO_SOCKET) while a clone reaches ping's
// raw socket was delivered; a TCP segment whose transmitted clone is
// dropped at the receiver was dropped, though its own skb, kept for
// retransmission, is freed normally.
func withClones(own Outcome, clones []CloneOutcome) Outcome {
	best := -1
	for i := range clones {
		o := &clones[i].Outcome
		if !o.decides() {
			continue
		}
		if best < 0 || fateRank(o.Kind) > fateRank(clones[best].Outcome.Kind) {
			best = i
		}
	}
	if best < 0 || fateRank(clones[best].Outcome.Kind) <= fateRank(own.Kind) {
		return own
	}
	out := clones[best].Outcome
	out.Clone = clones[best].ID
	out.OwnKind, out.OwnReason, out.OwnLocation = own.Kind, own.Reason, own.Location
	out.Why = ""
	return out
}

// fateRank orders outcomes by how far they tell the packet went.
func fateRank(k OutcomeKind) int {
	switch k {
	case Delivered:
		return 4
	case Transmitted:
		return 3
	case Dropped:
		return 2
	case Consumed:
		return 1
	}
	return 0
}

// diff says what changed from hop a to hop b.
func diff(a, b *Hop) Change {
	var c Change
	if b.Meta.Kind == kmeta.KindFexit && b.Meta.Len == 0 && b.Meta.Proto == 0 {
		// The exit of a function that freed the skb (record pairs it
		// with its entry): it carries no packet (len 0, no protocol;
		// its bytes are only the synthesized Ethernet header), nothing
		// to compare.
		return 0
	}
	if a.Meta.Dev != b.Meta.Dev || a.Meta.Ifindex != b.Meta.Ifindex {
		c |= ChangedDev
	}
	if a.Meta.NetNS != b.Meta.NetNS {
		c |= ChangedNetNS
	}
	if a.Meta.Len != b.Meta.Len || a.OrigLen != b.OrigLen && a.Meta.Hook == "" {
		c |= ChangedLen
	}
	if a.Meta.Mark != b.Meta.Mark {
		c |= ChangedMark
	}
	fa, fb := &a.Flow, &b.Flow
	if !fa.Src.IsValid() || !fb.Src.IsValid() {
		return c
	}
	if fa.EtherType != fb.EtherType || fa.Proto != fb.Proto {
		return c | ChangedProto
	}
	if fa.Src != fb.Src || fa.Dst != fb.Dst {
		c |= ChangedAddr
	}
	if fa.HasPorts && fb.HasPorts && (fa.SrcPort != fb.SrcPort || fa.DstPort != fb.DstPort) {
		c |= ChangedPort
	}
	return c
}

// Hooks that show the packet's data reached a process.
func isDeliveryHook(hook string) bool {
	return hook == "skb_copy_datagram_iovec"
}

// Functions whose free of an skb follows its delivery to a socket. A
// receive function's free is at the function itself when the helper that
// frees was inlined or tail-called (skb_consume_udp from udp_recvmsg).
// skb_defer_free_flush frees what sockets' receive paths deferred
// (skb_attempt_defer_free).
var deliveredFreeFunctions = map[string]bool{
	"skb_consume_udp":          true,
	"udp_recvmsg":              true,
	"udpv6_recvmsg":            true,
	"raw_recvmsg":              true,
	"rawv6_recvmsg":            true,
	"ping_recvmsg":             true,
	"skb_free_datagram":        true,
	"packet_recvmsg":           true,
	"tcp_recvmsg":              true,
	"tcp_recvmsg_locked":       true,
	"tcp_eat_recv_skb":         true,
	"skb_defer_free_flush":     true,
	"unix_stream_read_generic": true,
	"unix_dgram_recvmsg":       true,
	"netlink_recvmsg":          true,
}

// isDeliveryFunction reports whether a function hook (function backends)
// shows the packet reached a socket's reader: its free by a receive path,
// seen as a hop. (A switch: classify asks for every hop.)
func isDeliveryFunction(hook string) bool {
	switch hook {
	case "skb_consume_udp", "skb_free_datagram", "tcp_eat_recv_skb", "skb_attempt_defer_free":
		return true
	}
	return false
}

// socketFunctions name the kind of socket by a function that frees an
// skb after its delivery, or that queues it to a socket.
var socketFunctions = map[string]string{
	"raw_recvmsg":              "raw",
	"raw_rcv":                  "raw",
	"raw_rcv_skb":              "raw",
	"rawv6_recvmsg":            "raw",
	"skb_consume_udp":          "UDP",
	"udp_recvmsg":              "UDP",
	"udpv6_recvmsg":            "UDP",
	"__udp_queue_rcv_skb":      "UDP",
	"udp_queue_rcv_one_skb":    "UDP",
	"ping_recvmsg":             "ICMP",
	"ping_queue_rcv_skb":       "ICMP",
	"tcp_recvmsg":              "TCP",
	"tcp_recvmsg_locked":       "TCP",
	"tcp_data_queue":           "TCP",
	"tcp_queue_rcv":            "TCP",
	"kfree_skb_partial":        "TCP",
	"tcp_eat_recv_skb":         "TCP",
	"packet_recvmsg":           "packet",
	"packet_rcv":               "packet",
	"tpacket_rcv":              "packet",
	"unix_stream_read_generic": "unix",
	"unix_dgram_recvmsg":       "unix",
	"netlink_recvmsg":          "netlink",
}

// socketKind names the socket a delivered packet reached, from where it
// was freed (loc) or else from the last hop whose function names one.
func socketKind(p *Packet, loc string) string {
	if k := socketFunctions[LocationFunction(loc)]; k != "" {
		return k
	}
	for i := len(p.Hops) - 1; i >= 0; i-- {
		if k := socketFunctions[p.Hops[i].Meta.Hook]; k != "" {
			return k
		}
	}
	return ""
}

// classify decides how the packet's path ended.
func classify(p *Packet) Outcome {
	var f hookFold
	for i := range p.Hops {
		f.add(i, p.Hops[i].Meta, kmeta.ClassOf(p.Hops[i].Meta.Hook))
	}
	return classifyFolded(p, &f)
}

// classifyFolded is classify with what it learns from the hooks, f,
// folded over p.Hops in their order already.
func classifyFolded(p *Packet, f *hookFold) Outcome {
	o := classifyHops(p, f)
	byProgram(p, &o, int(f.lastProg)-1)
	byNetfilter(p, &o)
	return o
}

// hookFold is what classify learns from a packet's hooks, one hop after
// the other, as indexes plus one (0: none). The Analyzer folds each hop in
// as it arrives, while the hop is still in the cache, so that a packet
// whose hops came in time order is classified without reading them all
// again.
type hookFold struct {
	deliveredAt, freedAt, memFreedAt, lastTx, lastRx, tcpQueued int32
	// lastProg is the last exit of a traced BPF program with its
	// return value (byProgram).
	lastProg int32
}

// add folds in hop i, whose metadata is m and its hook's class
// kmeta.ClassOf(m.Hook).
func (f *hookFold) add(i int, m *kmeta.Event, class kmeta.HookClass) {
	at := int32(i) + 1
	if m.ProgType != "" && m.Kind == kmeta.KindFexit && m.HasRetVal {
		f.lastProg = at
	}
	h := m.Hook
	if isDeliveryHook(h) || isDeliveryFunction(h) {
		f.deliveredAt = at
		return
	}
	switch h {
	case "tcp_queue_rcv", "tcp_data_queue":
		f.tcpQueued = at
	case "kfree_skb_partial":
		// TCP merged the segment's data into the skb before it in
		// the socket's receive queue and frees what is left: its
		// data reached the socket.
		if f.tcpQueued > 0 {
			f.deliveredAt = at
			return
		}
	}
	switch class {
	case kmeta.ClassMemoryFree:
		// Says the memory went, not why: kfree_skb or consume_skb
		// before it decide, when they were recorded.
		f.memFreedAt = at
	case kmeta.ClassFree:
		f.freedAt = at
	case kmeta.ClassTransmit:
		f.lastTx = at
	case kmeta.ClassReceive:
		f.lastRx = at
	}
}

// netfilterReasons are the drop reasons kfree_skb gives an skb that a
// netfilter hook dropped: NETFILTER_DROP (Linux 6.0+), NOT_SPECIFIED (5.17
// to 5.19), none (before 5.17).
var netfilterReasons = map[string]bool{"": true, "NOT_SPECIFIED": true, "NETFILTER_DROP": true}

// byNetfilter names, in o, the netfilter hook and the nftables base chain
// that dropped a Dropped packet, from the hops around its free (kfree_skb):
//   - an exit of nft_do_chain after the free, paired with its entry before
//     it: the chain freed the skb itself (verdict drop, or stolen where
//     the kernel frees a dropped skb inside nft_do_chain, Linux 6.4+);
//   - else the last exit of nft_do_chain before the free, if its verdict
//     was drop (nf_hook_slow freed it); an accept there means someone
//     else dropped the packet: nothing is named;
//   - the hook from that exit, or from the last netfilter hop before the
//     free (nf_hook_slow's entry), named alone only with the reason
//     NETFILTER_DROP.
//
// The free's reason must be one a netfilter drop has. It never changes the
// outcome's kind: the kernel's free of the skb says dropped, the hops say
// who.
func byNetfilter(p *Packet, o *Outcome) {
	if o.Kind != Dropped || o.Clone != 0 || o.Program != "" || !netfilterReasons[o.Reason] {
		return
	}
	free := -1
	for i := len(p.Hops) - 1; i >= 0; i-- {
		if p.Hops[i].Meta.Hook == kmeta.HookDrop {
			free = i
			break
		}
	}
	if free < 0 {
		return
	}
	chain, place := -1, -1
	for i := free + 1; i < len(p.Hops); i++ {
		if v := p.Hops[i].Meta.NFVerdict; v == kmeta.NFDrop || v == kmeta.NFStolen {
			chain = i
			break
		}
	}
	for i := free - 1; i >= 0; i-- {
		m := p.Hops[i].Meta
		if m.NFVerdict != "" {
			if chain < 0 {
				if m.NFVerdict != kmeta.NFDrop {
					// The last chain accepted: something else dropped.
					return
				}
				chain = i
			}
			continue
		}
		if m.NFHook != "" {
			place = i
			break
		}
	}
	if chain >= 0 {
		m := p.Hops[chain].Meta
		o.NFTFamily, o.NFTTable, o.NFTChain = m.NFTFamily, m.NFTTable, m.NFTChain
		o.NFFamily, o.NFHook = m.NFFamily, m.NFHook
	}
	if place >= 0 && o.NFHook == "" && (chain >= 0 || o.Reason == "NETFILTER_DROP") {
		// Without a chain's verdict, a drop after entering a netfilter
		// hook is the hook's only where the kernel's reason says so.
		m := p.Hops[place].Meta
		o.NFFamily, o.NFHook = m.NFFamily, m.NFHook
	}
}

// tcShotReasons are the drop reasons kfree_skb gives an skb a tc program
// shot: TC_INGRESS and TC_EGRESS (Linux 6.0+), NOT_SPECIFIED (5.17 to
// 5.19), none (before 5.17).
var tcShotReasons = map[string]bool{"": true, "NOT_SPECIFIED": true, "TC_INGRESS": true, "TC_EGRESS": true}

// byProgram names, in o, the traced BPF program whose verdict decided o
// (record --trace-tc): a drop at kfree_skb after the last exit of a tc
// program returned TC_ACT_SHOT, with a reason a tc drop has; or a packet
// the last tc program redirected (TC_ACT_REDIRECT) that was not dropped.
// Other verdicts (TC_ACT_OK, TC_ACT_UNSPEC, ...) decide nothing: a packet
// is never called dropped by a program's verdict alone, only by the
// kernel's free of its skb.
//
// last is the index of the last hop that is a program's exit with its
// return value (hookFold.lastProg), -1 when none is.
func byProgram(p *Packet, o *Outcome, last int) {
	if o.Clone != 0 {
		return
	}
	if last < 0 {
		return
	}
	m := p.Hops[last].Meta
	if m.ProgType == kmeta.ProgXDP {
		byXDP(p, o, m, last)
		return
	}
	if m.ProgType != kmeta.ProgTC {
		return
	}
	switch {
	case m.RetVal == kmeta.TCActShot && o.Kind == Dropped && tcShotReasons[o.Reason]:
		freedAfter := false
		for i := last + 1; i < len(p.Hops); i++ {
			if kmeta.ClassOf(p.Hops[i].Meta.Hook) == kmeta.ClassFree {
				freedAfter = true
			}
		}
		if !freedAfter {
			return
		}
	case m.RetVal == kmeta.TCActRedirect && o.Kind != Dropped:
	default:
		return
	}
	o.Program, o.ProgType, o.Verdict = m.Prog, m.ProgType, kmeta.VerdictName(m.ProgType, m.RetVal)
}

// byXDP decides the outcome of a frame an XDP program saw (record
// --trace-xdp): a packet of its own, whose hops are the program's entry
// and exit (m, at index last), with no skb for the kernel to free. The
// action decides: XDP_DROP and XDP_ABORTED drop the frame (the driver
// recycles its buffer), XDP_TX sends it back out of its device,
// XDP_REDIRECT hands it to another device, CPU or socket; XDP_PASS hands
// it to the stack, where it becomes an skb, a packet of its own: its fate
// is not this one's, which stays unknown.
func byXDP(p *Packet, o *Outcome, m *kmeta.Event, last int) {
	if o.Kind != Unknown {
		// Hops other than the program's: not a frame of XDP alone.
		return
	}
	h := &p.Hops[last]
	v := kmeta.VerdictName(m.ProgType, m.RetVal)
	o.Hook, o.Dev, o.NetNS = h.Meta.Hook, h.Meta.Dev, h.Meta.NetNS
	o.Program, o.ProgType, o.Verdict = m.Prog, m.ProgType, v
	switch m.RetVal {
	case kmeta.XDPDrop, kmeta.XDPAborted:
		// Grouped by the action where drops are grouped by reason.
		o.Kind, o.Reason = Dropped, v
	case kmeta.XDPTx:
		o.Kind = Transmitted
	case kmeta.XDPRedirect:
	case kmeta.XDPPass:
		o.Program, o.ProgType, o.Verdict = "", "", ""
		o.Why = "passed to the network stack by XDP program " + m.Prog + " (XDP_PASS): its skb is recorded as a packet of its own"
	default:
		o.Program, o.ProgType, o.Verdict = "", "", ""
		o.Why = "XDP program " + m.Prog + " returned " + v
	}
}

// classifyHops classifies p's outcome by its hooks, folded into f.
func classifyHops(p *Packet, f *hookFold) Outcome {
	if !p.HasMeta || len(p.Hops) == 0 {
		return Outcome{Kind: Unknown}
	}
	deliveredAt, freedAt, memFreedAt := int(f.deliveredAt)-1, int(f.freedAt)-1, int(f.memFreedAt)-1
	lastTx, lastRx := int(f.lastTx)-1, int(f.lastRx)-1
	at := func(i int, kind OutcomeKind) Outcome {
		h := &p.Hops[i]
		return Outcome{Kind: kind, Hook: h.Meta.Hook, Dev: h.Meta.Dev, NetNS: h.Meta.NetNS, Location: h.Meta.Location,
			Stack: h.Stack, StackLost: h.Meta.StackLost}
	}
	delivered := func(o Outcome) Outcome {
		// The task is the reader only at hops in its recvmsg (not in the
		// softirq that queued the packet).
		if deliveredAt >= 0 {
			if h := p.Hops[deliveredAt].Meta; isDeliveryHook(h.Hook) || isDeliveryFunction(h.Hook) {
				o.Process = h.Comm
			}
		}
		o.Socket = socketKind(p, o.Location)
		return o
	}
	if freedAt < 0 {
		freedAt = memFreedAt
	}
	if freedAt >= 0 {
		f := &p.Hops[freedAt]
		switch {
		case deliveredAt >= 0:
			o := at(deliveredAt, Delivered)
			o.Location = f.Meta.Location
			return delivered(o)
		case f.Meta.Hook == kmeta.HookDrop || f.Meta.HasDrop:
			o := at(freedAt, Dropped)
			o.Reason = f.Meta.Reason
			return o
		case deliveredFreeFunctions[LocationFunction(f.Meta.Location)]:
			return delivered(at(freedAt, Delivered))
		case lastTx >= 0 && lastTx > lastRx:
			o := at(lastTx, Transmitted)
			o.Location = f.Meta.Location
			return o
		default:
			return at(freedAt, Consumed)
		}
	}
	if deliveredAt >= 0 {
		return delivered(at(deliveredAt, Delivered))
	}
	if lastTx >= 0 && lastTx == len(p.Hops)-1 {
		return at(lastTx, Transmitted)
	}
	return Outcome{Kind: Unknown, Hook: p.Hops[len(p.Hops)-1].Meta.Hook}
}

// ParseFlow reads addresses and ports from an Ethernet frame (a header
// synthesized by the recorder carries the right EtherType too): IPv4,
// IPv6 with its extension headers, VLAN tags.
func ParseFlow(b []byte) Flow {
	var f Flow
	if len(b) < 14 {
		return f
	}
	et := binary.BigEndian.Uint16(b[12:])
	off := 14
	for (et == 0x8100 || et == 0x88a8) && len(b) >= off+4 {
		et = binary.BigEndian.Uint16(b[off+2:])
		off += 4
	}
	f.EtherType = et
	b = b[off:]
	var l4 []byte
	switch et {
	case 0x0800:
		if len(b) < 20 || b[0]>>4 != 4 {
			return f
		}
		ihl := int(b[0]&0xf) * 4
		f.Proto = b[9]
		f.Src = netip.AddrFrom4([4]byte(b[12:16]))
		f.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		fragOff := binary.BigEndian.Uint16(b[6:]) & 0x1fff
		if ihl >= 20 && len(b) >= ihl && fragOff == 0 {
			l4 = b[ihl:]
		}
	case 0x86dd:
		if len(b) < 40 || b[0]>>4 != 6 {
			return f
		}
		f.Src = netip.AddrFrom16([16]byte(b[8:24]))
		f.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		next, rest := b[6], b[40:]
		for i := 0; i < 8; i++ {
			switch next {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if len(rest) < 8 {
					return f
				}
				n := (int(rest[1]) + 1) * 8
				if len(rest) < n {
					return f
				}
				next, rest = rest[0], rest[n:]
				continue
			case 44: // fragment
				if len(rest) < 8 {
					return f
				}
				if binary.BigEndian.Uint16(rest[2:])&0xfff8 != 0 {
					f.Proto = rest[0]
					return f
				}
				next, rest = rest[0], rest[8:]
				continue
			}
			break
		}
		f.Proto = next
		l4 = rest
	default:
		return f
	}
	switch f.Proto {
	case 6, 17, 132, 136: // TCP, UDP, SCTP, UDP-Lite
		if len(l4) >= 4 {
			f.SrcPort = binary.BigEndian.Uint16(l4)
			f.DstPort = binary.BigEndian.Uint16(l4[2:])
			f.HasPorts = true
		}
	}
	return f
}

// b2i is 1 for true.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// mayBeCopyOf reports whether a clone whose first bytes carry flow f can be
// a copy of packet p: f is unknown (no bytes recorded), or equals the flow
// of one of p's hops (addresses and ports may change from hop to hop:
// NAT). A clone linked by its buffer (the tracepoint backend) whose bytes
// are another flow's is a new packet that reused a freed buffer.
func mayBeCopyOf(f Flow, p *Packet) bool {
	if f.EtherType == 0 {
		return true
	}
	known := false
	for i := range p.Hops {
		h := &p.Hops[i].Flow
		if h.EtherType == 0 {
			continue
		}
		known = true
		if *h == f {
			return true
		}
	}
	return !known
}
