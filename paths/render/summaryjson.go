package render

import (
	"strconv"

	"github.com/pathcap/pathcap/paths"
)

// AppendSummaryJSON appends the summary as one JSON object and a newline
// (schema in docs/FORMAT.md, "analyze stats --json").
func AppendSummaryJSON(b []byte, s *paths.Summary, topPaths int) []byte {
	b = append(b, `{"packets":`...)
	b = strconv.AppendUint(b, s.Packets, 10)
	b = append(b, `,"events":`...)
	b = strconv.AppendUint(b, s.Events, 10)
	if s.LostEvents > 0 {
		b = append(b, `,"lost_events":`...)
		b = strconv.AppendUint(b, s.LostEvents, 10)
	}
	if s.SkippedEvents > 0 {
		b = append(b, `,"skipped_events":`...)
		b = strconv.AppendUint(b, s.SkippedEvents, 10)
	}
	b = append(b, `,"first":`...)
	b = strconv.AppendInt(b, s.First, 10)
	b = append(b, `,"last":`...)
	b = strconv.AppendInt(b, s.Last, 10)
	b = append(b, `,"outcomes":{`...)
	for i, c := range s.Outcomes() {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, c.Name)
		b = append(b, ':')
		b = strconv.AppendUint(b, c.Count, 10)
	}
	b = append(b, '}')
	if via := s.ViaClone(); len(via) > 0 {
		b = appendCounts(append(b, `,"via_clone":`...), via)
	}
	if s.Clones > 0 {
		b = append(b, `,"clones":`...)
		b = strconv.AppendUint(b, s.Clones, 10)
		b = appendCounts(append(b, `,"clone_outcomes":`...), s.CloneOutcomes())
	}
	b = append(b, `,"drops":[`...)
	for i, d := range s.Drops() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"reason":`...)
		b = appendJSONString(b, d.Reason)
		b = append(b, `,"count":`...)
		b = strconv.AppendUint(b, d.Count, 10)
		b = append(b, `,"locations":[`...)
		for j, l := range d.Locations {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"location":`...)
			b = appendJSONString(b, l.Name)
			b = append(b, `,"count":`...)
			b = strconv.AppendUint(b, l.Count, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
		if len(d.Programs) > 0 {
			b = append(b, `,"programs":[`...)
			for j, c := range d.Programs {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"program":`...)
				b = appendJSONString(b, c.Name)
				b = append(b, `,"count":`...)
				b = strconv.AppendUint(b, c.Count, 10)
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		if len(d.Chains) > 0 {
			b = append(b, `,"chains":[`...)
			for j, c := range d.Chains {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"chain":`...)
				b = appendJSONString(b, c.Name)
				b = append(b, `,"count":`...)
				b = strconv.AppendUint(b, c.Count, 10)
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		if s.DropStacks > 0 {
			b = append(b, `,"stacks":[`...)
			for j, st := range d.Stacks {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"count":`...)
				b = strconv.AppendUint(b, st.Count, 10)
				b = append(b, `,"stack":`...)
				b = appendJSONStrings(b, st.Frames)
				b = append(b, '}')
			}
			b = append(b, `],"stack_lost":`...)
			b = strconv.AppendUint(b, d.StackLost, 10)
		}
		b = append(b, '}')
	}
	b = append(b, `],"paths":[`...)
	for i, c := range s.Paths(topPaths) {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"path":`...)
		b = appendJSONString(b, c.Name)
		b = append(b, `,"count":`...)
		b = strconv.AppendUint(b, c.Count, 10)
		b = append(b, '}')
	}
	b = append(b, `],"latency":[`...)
	for i, l := range s.Latencies() {
		if i > 0 {
			b = append(b, ',')
		}
		h := l.Hist
		b = append(b, `{"from":`...)
		b = appendJSONString(b, l.From)
		b = append(b, `,"to":`...)
		b = appendJSONString(b, l.To)
		b = append(b, `,"count":`...)
		b = strconv.AppendUint(b, h.Count(), 10)
		for _, q := range []struct {
			name string
			v    int64
		}{{"p50_ns", h.Quantile(0.5)}, {"p90_ns", h.Quantile(0.9)}, {"p99_ns", h.Quantile(0.99)}, {"max_ns", h.Max()}} {
			b = append(b, `,"`...)
			b = append(b, q.name...)
			b = append(b, `":`...)
			b = strconv.AppendInt(b, q.v, 10)
		}
		b = append(b, '}')
	}
	b = append(b, `],"devices":[`...)
	for i, p := range s.Places() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"dev":`...)
		b = appendJSONString(b, p.Dev)
		b = append(b, `,"netns":`...)
		b = strconv.AppendUint(b, uint64(p.NetNS), 10)
		if p.NSName != "" {
			b = append(b, `,"netns_name":`...)
			b = appendJSONString(b, p.NSName)
		}
		b = append(b, `,"events":`...)
		b = strconv.AppendUint(b, p.Events, 10)
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}

// appendCounts appends counts as a JSON object of name to count.
func appendCounts(b []byte, counts []paths.Count) []byte {
	b = append(b, '{')
	for i, c := range counts {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, c.Name)
		b = append(b, ':')
		b = strconv.AppendUint(b, c.Count, 10)
	}
	return append(b, '}')
}
