package paths

// handoff runs an Analyzer's emit callback on a goroutine of its own, so
// that the output (rendering, statistics) overlaps with the analysis on
// another core. Completed packets go to it in batches, in the order the
// Analyzer completes them; their structs come back to the Analyzer's pool
// once the callback has seen them, so that the packets in flight stay
// bounded and none is reused while the callback may still read it.
//
// After the callback's first error it is not called again; the error
// reaches the Analyzer with the next batch that comes back, or at close.
type handoff struct {
	emit    func(*Packet) error
	changes bool               // mark the hops' changes (complete)
	touched int64              // touch's sum, kept so that its loads stay
	cur     []*openPacket      // the batch being filled
	full    chan []*openPacket // to the output goroutine
	back    chan handoffReturn // batches emitted, back to the Analyzer
	done    chan error         // the output goroutine's first error, at its end
	out     int                // batches sent and not back yet
	spare   [][]*openPacket    // batches back, to fill again
	err     error              // the first error the Analyzer has seen
}

type handoffReturn struct {
	batch []*openPacket
	err   error
}

const (
	handoffBatch    = 256 // packets per batch
	handoffInFlight = 4   // batches queued for or held by the output goroutine
)

func newHandoff(emit func(*Packet) error, changes bool) *handoff {
	h := &handoff{
		emit:    emit,
		changes: changes,
		full:    make(chan []*openPacket, handoffInFlight),
		back:    make(chan handoffReturn, handoffInFlight+2),
		done:    make(chan error, 1),
	}
	go h.run()
	return h
}

// run is the output goroutine: it emits the packets of each batch, then
// sends the batch back.
func (h *handoff) run() {
	var err error
	for b := range h.full {
		if err == nil {
			h.touch(b)
			for _, p := range b {
				if p.unfinished {
					// Its clones' outcomes first: its own
					// depends on them.
					for i, c := range p.deferred {
						c.complete(h.changes)
						c.unfinished = false
						p.Clones[i].Outcome = c.Outcome
					}
					p.complete(h.changes)
				}
				if err = h.emit(&p.Packet); err != nil {
					break
				}
				// What the hops point to (metadata shared in
				// blocks, stacks) is not kept alive by the pool.
				clear(p.Hops)
			}
		}
		h.back <- handoffReturn{b, err}
	}
	h.done <- err
}

// put queues a completed packet: a must not touch its Packet until it
// comes back to a's pool. It returns the output's error once known.
func (h *handoff) put(a *Analyzer, p *openPacket) error {
	if h.cur == nil {
		if n := len(h.spare); n > 0 {
			h.cur = h.spare[n-1]
			h.spare = h.spare[:n-1]
		} else {
			h.cur = make([]*openPacket, 0, handoffBatch)
		}
	}
	h.cur = append(h.cur, p)
	if len(h.cur) < handoffBatch {
		return h.err
	}
	return h.flush(a)
}

// flush sends the batch being filled, taking back the batches emitted
// meanwhile (and waiting for one while the queue is full).
func (h *handoff) flush(a *Analyzer) error {
	if len(h.cur) > 0 {
		for sent := false; !sent; {
			select {
			case h.full <- h.cur:
				sent = true
			case r := <-h.back:
				h.take(a, r)
			}
		}
		h.cur = nil
		h.out++
	}
	for {
		select {
		case r := <-h.back:
			h.take(a, r)
		default:
			return h.err
		}
	}
}

func (h *handoff) take(a *Analyzer, r handoffReturn) {
	h.out--
	if r.err != nil && h.err == nil {
		h.err = r.err
	}
	a.free = append(a.free, r.batch...)
	clear(r.batch)
	h.spare = append(h.spare, r.batch[:0])
}

// close sends what is left, waits until everything was emitted and ends
// the output goroutine; it returns the output's first error.
func (h *handoff) close(a *Analyzer) error {
	h.flush(a)
	close(h.full)
	for h.out > 0 {
		h.take(a, <-h.back)
	}
	if err := <-h.done; err != nil && h.err == nil {
		h.err = err
	}
	return h.err
}

// touch reads a word of every cache line of the hops of a batch's packets
// before they are finished and emitted: written 50 ms before or more, the
// hops are out of the cache, and independent loads in a loop fetch many
// lines at once, where the finish and the output, reading one hop after
// the other, would wait for each in turn.
func (h *handoff) touch(b []*openPacket) {
	var sum int64
	for _, p := range b {
		for i := range p.Hops {
			x := &p.Hops[i]
			sum += x.Time + int64(x.Meta.Len) + int64(len(x.Meta.Comm)) + int64(len(x.Meta.ProgType)) +
				int64(x.Meta.StackErr) + int64(x.OrigLen) + int64(x.Flow.SrcPort) + x.Frame
		}
	}
	h.touched += sum
}
