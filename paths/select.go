package paths

import (
	"errors"
	"io"
	"regexp"
)

// Selector chooses packets; its zero value selects every packet. All the
// criteria that are set must hold.
type Selector struct {
	// IDs selects packets with these tracking ids.
	IDs map[uint64]bool
	// Outcomes selects packets with these outcomes.
	Outcomes map[OutcomeKind]bool
	// Reasons selects dropped packets with these drop reasons.
	Reasons map[string]bool
	// Hook selects packets with a hop whose hook ("KIND:NAME" or NAME)
	// matches.
	Hook *regexp.Regexp
	// Since and Until select packets first seen in [Since, Until) (ns
	// since the epoch; 0: unbounded).
	Since, Until int64
	// Filter, when set, selects packets with at least one hop whose bytes
	// it accepts (evaluated while reading; see Options.Filter).
	Filter func(data []byte) bool
}

// Selects reports whether p is selected.
func (s *Selector) Selects(p *Packet) bool {
	if s == nil {
		return true
	}
	if s.IDs != nil && !s.IDs[p.ID] {
		return false
	}
	if s.Outcomes != nil && !s.Outcomes[p.Outcome.Kind] {
		return false
	}
	if s.Reasons != nil && !(p.Outcome.Kind == Dropped && s.Reasons[p.Outcome.Reason]) {
		return false
	}
	if s.Since != 0 && p.Start() < s.Since {
		return false
	}
	if s.Until != 0 && p.Start() >= s.Until {
		return false
	}
	if s.Filter != nil && !p.FilterMatched {
		return false
	}
	if s.Hook != nil {
		found := false
		for i := range p.Hops {
			h := &p.Hops[i]
			if s.Hook.MatchString(h.HookName()) || s.Hook.MatchString(h.Label()) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Process reads every event of in, rebuilds the paths and calls fn for
// each selected packet. The Packet passed to fn is reused after it returns.
//
// Three stages overlap, on as many cores as there are: reading (pcap-ng
// blocks and metadata comments) runs in its own goroutine and hands events
// over in batches, with a copy of their bytes, to the analysis (addresses,
// paths), which hands completed packets in batches to fn, called on a
// goroutine of its own (one at a time, in the order the packets complete).
// With a single input file, events are decoded straight into the batches.
func Process(in *Input, opts Options, sel *Selector, fn func(*Packet) error) error {
	if sel != nil && sel.Filter != nil {
		opts.Filter = sel.Filter
	}
	a := NewAnalyzer(opts, func(p *Packet) error {
		if !sel.Selects(p) {
			return nil
		}
		return fn(p)
	})
	// The output runs beside the analysis, as the reading does.
	a.emitAsync()
	// Events keep their metadata shared: a hop holds a pointer to it.
	in.shareMeta = true

	// A batch holds events and a copy of their bytes: event i's are
	// data[off[i]:off[i+1]].
	const batchSize, batches = 512, 4
	type batch struct {
		evs   []Event
		flows []Flow // ParseFlow of each event's bytes
		off   []int
		data  []byte
	}
	full := make(chan *batch, batches)
	empty := make(chan *batch, batches+1)
	for i := 0; i < batches+1; i++ {
		empty <- &batch{evs: make([]Event, batchSize), flows: make([]Flow, batchSize), off: make([]int, 0, batchSize+1)}
	}
	stop := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		defer close(full)
		for {
			select {
			case <-stop:
				readErr <- nil
				return
			default:
			}
			var b *batch
			select {
			case b = <-empty:
			case <-stop:
				readErr <- nil
				return
			}
			slots := b.evs[:batchSize]
			b.evs, b.off, b.data = b.evs[:0], b.off[:0], b.data[:0]
			var err error
			for n := range slots {
				// With one input file, the event is decoded in
				// place: e is ev.
				e := &slots[n]
				var ev *Event
				ev, err = in.nextInto(e)
				if err != nil {
					break
				}
				if ev != e {
					*e = *ev
				}
				// The bytes go along, and their addresses, parsed
				// here: on real recordings the analyzing side has
				// more to do.
				b.flows[n] = ParseFlow(ev.Data)
				b.off = append(b.off, len(b.data))
				b.data = append(b.data, ev.Data...)
				e.Interface = nil
				e.Data = nil
				b.evs = slots[:n+1]
			}
			b.off = append(b.off, len(b.data))
			if len(b.evs) > 0 {
				full <- b
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				readErr <- err
				return
			}
		}
	}()

	var addErr error
	for b := range full {
		if addErr == nil {
			for i := range b.evs {
				e := &b.evs[i]
				e.Data = b.data[b.off[i]:b.off[i+1]:b.off[i+1]]
				if addErr = a.add(e, b.flows[i]); addErr != nil {
					close(stop)
					break
				}
			}
		}
		empty <- b
	}
	if err := <-readErr; err != nil {
		a.stopOutput()
		return err
	}
	if addErr != nil {
		a.stopOutput()
		return addErr
	}
	return a.Close()
}
