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
	for {
		ev, err := in.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := a.Add(ev); err != nil {
			return err
		}
	}
	return a.Close()
}
