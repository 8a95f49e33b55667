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
			if s.Hook.MatchString(hopName(h)) || s.Hook.MatchString(hookLabel(h)) {
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
// Reading (pcap-ng blocks, metadata comments, addresses) runs in its own
// goroutine and hands events over in batches, so that it overlaps with the
// analysis and output on another core.
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
	needData := opts.KeepData || opts.Filter != nil

	const batchSize, batches = 512, 4
	type batch struct {
		evs  []Event
		data []byte
	}
	full := make(chan *batch, batches)
	empty := make(chan *batch, batches+1)
	for i := 0; i < batches+1; i++ {
		empty <- &batch{evs: make([]Event, 0, batchSize)}
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
			b.evs, b.data = b.evs[:0], b.data[:0]
			var err error
			for len(b.evs) < batchSize {
				var ev *Event
				ev, err = in.Next()
				if err != nil {
					break
				}
				b.evs = append(b.evs, *ev)
				e := &b.evs[len(b.evs)-1]
				e.staged = true
				e.flow = parseFlow(ev.Data)
				e.capLen = len(ev.Data)
				if ev.Interface != nil {
					e.ifName, e.ifDesc = ev.Interface.Name, ev.Interface.Description
				}
				e.Interface = nil
				e.Data = nil
				if needData {
					e.dataOff = len(b.data)
					b.data = append(b.data, ev.Data...)
				}
			}
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
				if needData {
					e.Data = b.data[e.dataOff : e.dataOff+e.capLen]
				}
				if addErr = a.Add(e); addErr != nil {
					close(stop)
					break
				}
			}
		}
		empty <- b
	}
	if err := <-readErr; err != nil {
		return err
	}
	if addErr != nil {
		return addErr
	}
	return a.Close()
}
