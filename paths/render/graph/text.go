package graph

import (
	"strings"
	"unicode/utf8"

	"github.com/pathcap/pathcap/paths/render"
)

// Names in a graph come from recordings and are untrusted: every writer
// escapes them for its format, and replaces what the format cannot hold
// (invalid UTF-8, control characters) with U+FFFD.

// appendXML appends s escaped for XML character data and attribute values.
func appendXML(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '&':
				b = append(b, "&amp;"...)
			case c == '<':
				b = append(b, "&lt;"...)
			case c == '>':
				b = append(b, "&gt;"...)
			case c == '"':
				b = append(b, "&quot;"...)
			case c == '\'':
				b = append(b, "&#39;"...)
			case c == '\n':
				b = append(b, "&#10;"...)
			case c < 0x20 || c == 0x7f:
				b = append(b, "\uFFFD"...)
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF || (r >= 0x80 && r < 0xA0) {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

// appendDOT appends s as a DOT double-quoted string.
func appendDOT(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c < 0x20 || c == 0x7f:
				b = append(b, "\uFFFD"...)
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || (r >= 0x80 && r < 0xA0) {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// latencyText returns "p50 6.4µs · p90 18.4µs · max 19.3µs".
func latencyText(l *Latency) string {
	if l == nil || l.Count() == 0 {
		return ""
	}
	return "p50 " + render.FormatDuration(l.Quantile(0.5)) + " · p90 " + render.FormatDuration(l.Quantile(0.9)) +
		" · max " + render.FormatDuration(l.Max())
}

// NodeTitle returns the description of a node shown when pointing at it:
// its hooks (with the latency between them in a chain), place and counts.
func (g *Graph) NodeTitle(i int) string {
	n := &g.Nodes[i]
	var s strings.Builder
	if n.Kind == Sink {
		s.WriteString(n.SinkName())
		if n.Location != "" {
			s.WriteString(" at " + n.Location)
		}
		s.WriteString("\n" + sinkCounts(n))
		var via uint64
		for _, e := range g.Edges {
			if e.To == i {
				via += e.ViaClone
			}
		}
		if via > 0 {
			s.WriteString("\n" + GroupDigits(via) + " decided by a clone")
		}
		if n.Forwarded {
			s.WriteString("\ntransmitted after coming in on a device")
		}
		return s.String()
	}
	if len(n.Hooks) == 1 {
		s.WriteString(n.Hooks[0])
	} else {
		s.WriteString(GroupDigits(uint64(len(n.Hooks))) + " hooks passed in one piece:")
		for j, h := range n.Hooks {
			s.WriteString("\n  " + h)
			if j < len(n.Steps) {
				if lt := latencyText(n.Steps[j].Latency); lt != "" {
					s.WriteString("\n      ↓ " + lt)
				}
			}
		}
	}
	if n.Lane >= 0 && n.Lane < len(g.Lanes) {
		dev, ns := placeTitle(g.Lanes[n.Lane].Place)
		s.WriteString("\n" + dev + " · " + ns)
	}
	s.WriteString("\n" + countText(n.Hits, "hit", "hits"))
	if n.Starts > 0 {
		s.WriteString(", " + countText(n.Starts, "path starts here", "paths start here"))
	}
	return s.String()
}

// EdgeTitle returns the description of an edge shown when pointing at it:
// its nodes, count and latency.
func (g *Graph) EdgeTitle(i int) string {
	e := &g.Edges[i]
	s := g.Nodes[e.From].Label() + " → " + g.Nodes[e.To].Label() + "\n" + countText(e.Count, "time", "times")
	if e.Clones > 0 {
		s += " (" + countText(e.Clones, "by a clone", "by clones") + ")"
	}
	if e.ViaClone > 0 {
		s += "\n" + GroupDigits(e.ViaClone) + " decided by a clone"
	}
	if lt := latencyText(e.Latency); lt != "" {
		s += "\nlatency " + lt
	}
	return s
}

// kindColors are the stroke and fill of each class of node.
var kindColors = map[string][2]string{
	"hop":         {"#475569", "#ffffff"},
	"fn":          {"#94a3b8", "#f8fafc"},
	"chain":       {"#6366f1", "#eef2ff"},
	"delivered":   {"#15803d", "#dcfce7"},
	"transmitted": {"#1d4ed8", "#dbeafe"},
	"forwarded":   {"#7e22ce", "#f3e8ff"},
	"consumed":    {"#0f766e", "#ccfbf1"},
	"dropped":     {"#dc2626", "#fee2e2"},
	"unknown":     {"#b45309", "#fef3c7"},
}

const edgeColor = "#94a3b8"

// hopClass returns "hop" for tracepoints (and plain captures), "fn" for
// kernel functions, "chain" for collapsed chains.
func hopClass(n *Node) string {
	switch {
	case len(n.Hooks) > 1:
		return "chain"
	case strings.HasPrefix(n.Hooks[0], "tp:") || !strings.Contains(n.Hooks[0], ":"):
		return "hop"
	}
	return "fn"
}

// edgeClass returns the class of an edge: that of the sink it leads to,
// or "hop".
func (g *Graph) edgeClass(e *Edge) string {
	if to := &g.Nodes[e.To]; to.Kind == Sink {
		return to.ClassName()
	}
	return "hop"
}

// outcomeKinds lists the sink classes.
var outcomeKinds = []string{"delivered", "transmitted", "forwarded", "consumed", "dropped", "unknown"}
