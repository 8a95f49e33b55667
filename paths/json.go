package paths

import (
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends p as one line of JSON (see docs/FORMAT.md, "analyze
// paths --json") followed by a newline.
func AppendJSON(b []byte, p *Packet) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, p.ID, 10)
	if p.Parent != 0 {
		b = append(b, `,"parent":`...)
		b = strconv.AppendUint(b, p.Parent, 10)
	}
	if len(p.Children) > 0 {
		b = append(b, `,"children":[`...)
		for i, c := range p.Children {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, c, 10)
		}
		b = append(b, ']')
	}
	b = append(b, `,"start":`...)
	b = strconv.AppendInt(b, p.Start(), 10)
	b = append(b, `,"duration_ns":`...)
	b = strconv.AppendInt(b, p.Duration(), 10)
	b = append(b, `,"outcome":{"kind":`...)
	b = appendJSONString(b, p.Outcome.Kind.String())
	if p.Outcome.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, p.Outcome.Reason)
	}
	if p.Outcome.Location != "" {
		b = append(b, `,"location":`...)
		b = appendJSONString(b, p.Outcome.Function())
		b = append(b, `,"location_offset":`...)
		b = appendJSONString(b, p.Outcome.Location)
	}
	if p.Outcome.Hook != "" {
		b = append(b, `,"hook":`...)
		b = appendJSONString(b, p.Outcome.Hook)
	}
	if p.Outcome.Dev != "" {
		b = append(b, `,"dev":`...)
		b = appendJSONString(b, p.Outcome.Dev)
	}
	if p.Outcome.NetNS != 0 {
		b = append(b, `,"netns":`...)
		b = strconv.AppendUint(b, uint64(p.Outcome.NetNS), 10)
	}
	b = append(b, '}')
	if p.Truncated {
		b = append(b, `,"hops_not_kept":`...)
		b = strconv.AppendInt(b, int64(p.DroppedHops), 10)
	}
	b = append(b, `,"hops":[`...)
	t0 := p.Start()
	for i := range p.Hops {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendHopJSON(b, p, i, t0)
	}
	return append(b, "]}\n"...)
}

func appendHopJSON(b []byte, p *Packet, i int, t0 int64) []byte {
	h := &p.Hops[i]
	m := &h.Meta
	b = append(b, `{"hook":`...)
	b = appendJSONString(b, hopName(h))
	b = append(b, `,"kind":`...)
	if m.Kind == "" {
		b = appendJSONString(b, "capture")
	} else {
		b = appendJSONString(b, m.Kind)
	}
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, h.Time, 10)
	b = append(b, `,"dt_ns":`...)
	b = strconv.AppendInt(b, h.Time-t0, 10)
	b = append(b, `,"dev":`...)
	b = appendJSONString(b, m.Dev)
	b = append(b, `,"netns":`...)
	b = strconv.AppendUint(b, uint64(m.NetNS), 10)
	if h.NSName != "" {
		b = append(b, `,"netns_name":`...)
		b = appendJSONString(b, h.NSName)
	}
	b = append(b, `,"ifindex":`...)
	b = strconv.AppendUint(b, uint64(m.Ifindex), 10)
	b = append(b, `,"len":`...)
	if m.Hook == "" {
		b = strconv.AppendUint(b, uint64(h.OrigLen), 10)
	} else {
		b = strconv.AppendUint(b, uint64(m.Len), 10)
	}
	b = append(b, `,"caplen":`...)
	b = strconv.AppendUint(b, uint64(h.CapLen), 10)
	if m.Hook != "" {
		b = append(b, `,"skb":"0x`...)
		b = strconv.AppendUint(b, m.SKB, 16)
		b = append(b, `","cpu":`...)
		b = strconv.AppendUint(b, uint64(m.CPU), 10)
		b = append(b, `,"pid":`...)
		b = strconv.AppendUint(b, uint64(m.PID), 10)
		b = append(b, `,"comm":`...)
		b = appendJSONString(b, m.Comm)
	}
	if m.Mark != 0 {
		b = append(b, `,"mark":`...)
		b = strconv.AppendUint(b, uint64(m.Mark), 10)
	}
	if m.HasDrop {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, m.Reason)
	}
	if m.Location != "" {
		b = append(b, `,"location":`...)
		b = appendJSONString(b, m.Location)
	}
	if f := &h.Flow; f.Src.IsValid() {
		b = append(b, `,"src":"`...)
		b = f.Src.AppendTo(b)
		b = append(b, `","dst":"`...)
		b = f.Dst.AppendTo(b)
		b = append(b, `","proto":`...)
		b = strconv.AppendUint(b, uint64(f.Proto), 10)
		if f.HasPorts {
			b = append(b, `,"sport":`...)
			b = strconv.AppendUint(b, uint64(f.SrcPort), 10)
			b = append(b, `,"dport":`...)
			b = strconv.AppendUint(b, uint64(f.DstPort), 10)
		}
	}
	if h.Changed != 0 {
		b = append(b, `,"changed":[`...)
		first := true
		for i, n := range changeNames {
			if h.Changed&(1<<i) != 0 {
				if !first {
					b = append(b, ',')
				}
				first = false
				b = appendJSONString(b, n)
			}
		}
		b = append(b, ']')
	}
	switch {
	case m.StackLost:
		b = append(b, `,"stack_lost":true`...)
		if m.StackErr != 0 {
			b = append(b, `,"stack_err":`...)
			b = strconv.AppendInt(b, int64(m.StackErr), 10)
		}
	case m.Stack != 0:
		b = append(b, `,"stack_id":`...)
		b = strconv.AppendUint(b, m.Stack, 10)
	}
	if h.Stack != nil {
		b = append(b, `,"stack":`...)
		b = h.Stack.appendJSON(b)
		n := len(b)
		b = append(b, `,"derived":[`...)
		first := true
		p.eachDerived(i, func(fn string) {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONString(b, fn)
		})
		if first {
			b = b[:n]
		} else {
			b = append(b, ']')
		}
	}
	return append(b, '}')
}

func appendJSONStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\t':
				b = append(b, '\\', 't')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
