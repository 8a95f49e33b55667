package render

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/paths"
)

// TextOptions controls the text report.
type TextOptions struct {
	// Color adds ANSI colours (for terminals).
	Color bool
	// Width is the terminal width; long lines are cut to it (0: no limit).
	Width int
	// TopPaths is how many of the most common paths the summary lists.
	TopPaths int
	// Stacks shows each hop's kernel call chain under it.
	Stacks bool
}

const (
	ansiReset = "\x1b[0m"
	ansiBold  = "\x1b[1m"
	ansiRed   = "\x1b[31m"
	ansiGreen = "\x1b[32m"
	ansiYell  = "\x1b[33m"
	ansiBlue  = "\x1b[34m"
	ansiDim   = "\x1b[2m"
)

func (o TextOptions) paint(color, s string) string {
	if !o.Color || s == "" {
		return s
	}
	return color + s + ansiReset
}

func outcomeColor(k paths.OutcomeKind) string {
	switch k {
	case paths.Dropped:
		return ansiRed
	case paths.Delivered, paths.Transmitted:
		return ansiGreen
	case paths.Consumed:
		return ansiBlue
	}
	return ansiYell
}

// FormatDuration formats ns compactly: "850ns", "12.3µs", "4.56ms", "1.20s".
// The unit is chosen after rounding, so 999,999 ns is "1.00ms", not
// "1000.0µs".
func FormatDuration(ns int64) string { return string(appendDuration(nil, ns)) }

// OutcomeText describes an outcome in words: "dropped: NO_SOCKET at
// ping_rcv+0xab", "dropped (no reason on this kernel) at
// __udp4_lib_rcv+0x4bc" (Linux before 5.17), "transmitted on veth0", ...
func OutcomeText(o *paths.Outcome) string {
	return string(appendOutcomeText(nil, o))
}

// appendOutcomeText appends OutcomeText(o).
func appendOutcomeText(b []byte, o *paths.Outcome) []byte {
	b = append(b, o.Kind.String()...)
	b = appendVia(b, o)
	switch o.Kind {
	case paths.Dropped:
		switch {
		case o.ProgType == kmeta.ProgXDP:
			// "dropped by XDP program NAME (XDP_DROP)"
			b = append(b, " by "...)
			b = appendProgram(b, o)
			b = append(b, " ("...)
			b = append(b, o.Verdict...)
			b = append(b, ')')
		case o.Program != "" && o.Reason != "":
			// "dropped (TC_INGRESS) by tc program NAME"
			b = append(b, " ("...)
			b = append(b, o.Reason...)
			b = append(b, ") by "...)
			b = appendProgram(b, o)
		case o.Program != "":
			// "dropped by tc program NAME (TC_ACT_SHOT)"
			b = append(b, " by "...)
			b = appendProgram(b, o)
			b = append(b, " ("...)
			b = append(b, o.Verdict...)
			b = append(b, ')')
		case o.NFTChain != "" || o.NFTTable != "" || o.NFHook != "":
			// "dropped (NETFILTER_DROP) by nftables table inet T chain C
			// (hook ip input)"
			if o.Reason != "" {
				b = append(b, " ("...)
				b = append(b, o.Reason...)
				b = append(b, ')')
			}
			b = appendNetfilter(b, o)
		case o.Reason == "":
			// kfree_skb before Linux 5.17 passes no reason.
			b = append(b, " (no reason on this kernel)"...)
		default:
			b = append(b, ": "...)
			b = append(b, o.Reason...)
		}
		if o.Location != "" {
			b = append(b, " at "...)
			b = append(b, o.Location...)
		}
	case paths.Transmitted:
		if o.Dev != "" {
			b = append(b, " on "...)
			b = append(b, o.Dev...)
		}
	case paths.Delivered:
		if o.Socket != "" {
			b = append(b, " to "...)
			b = append(b, o.Socket...)
			b = append(b, " socket"...)
		}
		if o.Process != "" {
			if o.Socket == "" {
				b = append(b, " to a socket"...)
			}
			b = append(b, " of "...)
			b = append(b, o.Process...)
		}
		if o.Location != "" && o.Clone == 0 {
			b = append(b, " (freed at "...)
			b = append(b, o.Location...)
			b = append(b, ')')
		}
	case paths.Consumed:
		if o.Location != "" {
			b = append(b, " at "...)
			b = append(b, o.Location...)
		}
	case paths.Unknown:
		if o.Hook != "" || o.Why != "" {
			b = append(b, " ("...)
			if o.Hook != "" {
				b = append(b, "last seen at "...)
				b = append(b, o.Hook...)
				if o.Why != "" {
					b = append(b, ": "...)
				}
			}
			b = append(b, o.Why...)
			b = append(b, ')')
		}
	}
	if o.Program != "" && o.Kind != paths.Dropped {
		// ", redirected by tc program NAME (TC_ACT_REDIRECT)", ", sent
		// back by XDP program NAME (XDP_TX)"
		if o.Verdict == "XDP_TX" {
			b = append(b, ", sent back by "...)
		} else {
			b = append(b, ", redirected by "...)
		}
		b = appendProgram(b, o)
		b = append(b, " ("...)
		b = append(b, o.Verdict...)
		b = append(b, ')')
	}
	return appendOwn(b, o)
}

// appendNetfilter appends " by nftables table FAMILY TABLE chain CHAIN
// (hook FAMILY HOOK)" for the netfilter place that dropped o, or " in
// netfilter hook FAMILY HOOK" where no chain is known.
func appendNetfilter(b []byte, o *paths.Outcome) []byte {
	if o.NFTChain == "" && o.NFTTable == "" {
		b = append(b, " in netfilter hook "...)
		return appendNFHook(b, o)
	}
	b = append(b, " by nftables"...)
	if o.NFTTable != "" {
		b = append(b, " table "...)
		if o.NFTFamily != "" {
			b = append(b, o.NFTFamily...)
			b = append(b, ' ')
		}
		b = append(b, o.NFTTable...)
	}
	if o.NFTChain != "" {
		b = append(b, " chain "...)
		b = append(b, o.NFTChain...)
	}
	if o.NFHook != "" {
		b = append(b, " (hook "...)
		b = appendNFHook(b, o)
		b = append(b, ')')
	}
	return b
}

// appendNFHook appends "FAMILY HOOK" ("ip input").
func appendNFHook(b []byte, o *paths.Outcome) []byte {
	if o.NFFamily != "" {
		b = append(b, o.NFFamily...)
		b = append(b, ' ')
	}
	return append(b, o.NFHook...)
}

// appendProgram appends "tc program NAME" for the program that decided o.
func appendProgram(b []byte, o *paths.Outcome) []byte {
	b = append(b, kmeta.ProgLabel(o.ProgType)...)
	b = append(b, " program "...)
	return append(b, o.Program...)
}

// appendVia appends " via clone N" when a clone decided o.
func appendVia(b []byte, o *paths.Outcome) []byte {
	if o.Clone == 0 {
		return b
	}
	b = append(b, " via clone "...)
	return strconv.AppendUint(b, o.Clone, 10)
}

// appendOwn appends what became of the packet's own skb when a clone
// decided o: " (own skb dropped: NO_SOCKET at ping_rcv+0xab)".
func appendOwn(b []byte, o *paths.Outcome) []byte {
	if o.Clone == 0 {
		return b
	}
	b = append(b, " (own skb "...)
	b = append(b, o.OwnKind.String()...)
	if o.OwnReason != "" {
		b = append(b, ": "...)
		b = append(b, o.OwnReason...)
	}
	if o.OwnLocation != "" {
		b = append(b, " at "...)
		b = append(b, o.OwnLocation...)
	}
	return append(b, ')')
}

// FlowText describes a hop's flow: "10.0.0.1 > 10.0.0.2 ICMP",
// "10.0.0.1:5353 > 10.0.0.2:53 UDP".
func FlowText(f *paths.Flow) string {
	return string(appendFlowText(nil, f))
}

// appendFlowText appends FlowText(f).
func appendFlowText(b []byte, f *paths.Flow) []byte {
	if !f.Src.IsValid() {
		if f.EtherType != 0 {
			b = append(b, "ethertype 0x"...)
			b = appendHex4(b, f.EtherType)
		}
		return b
	}
	b = appendHostPort(b, f.Src, f.SrcPort, f.HasPorts)
	b = append(b, " > "...)
	b = appendHostPort(b, f.Dst, f.DstPort, f.HasPorts)
	b = append(b, ' ')
	return appendProtoName(b, f.Proto)
}

func appendHex4(b []byte, v uint16) []byte {
	return append(b, hexDigits[v>>12], hexDigits[v>>8&0xf], hexDigits[v>>4&0xf], hexDigits[v&0xf])
}

// appendHostPort appends an address, with the port when withPort
// ("[addr]:port" for IPv6).
func appendHostPort(b []byte, a netip.Addr, port uint16, withPort bool) []byte {
	if !withPort {
		return a.AppendTo(b)
	}
	start := len(b)
	b = a.AppendTo(b)
	if bytes.IndexByte(b[start:], ':') >= 0 {
		b = append(b, 0)
		copy(b[start+1:], b[start:])
		b[start] = '['
		b = append(b, ']')
	}
	b = append(b, ':')
	return strconv.AppendUint(b, uint64(port), 10)
}

func appendProtoName(b []byte, p uint8) []byte {
	switch p {
	case 1:
		return append(b, "ICMP"...)
	case 2:
		return append(b, "IGMP"...)
	case 6:
		return append(b, "TCP"...)
	case 17:
		return append(b, "UDP"...)
	case 47:
		return append(b, "GRE"...)
	case 50:
		return append(b, "ESP"...)
	case 58:
		return append(b, "ICMPv6"...)
	case 132:
		return append(b, "SCTP"...)
	}
	b = append(b, "proto "...)
	return strconv.AppendUint(b, uint64(p), 10)
}

// stackIndent lines up a hop's stack lines under its hook.
const stackIndent = "             "

func hopLen(h *paths.Hop) uint32 {
	if h.Meta.Hook == "" {
		return h.OrigLen
	}
	return h.Meta.Len
}

// line writes b as one line, cut to the width (counting runes, ignoring
// colour codes only roughly: cut lines lose their colour reset, so one is
// added).
func line(b *strings.Builder, w io.Writer, o TextOptions) {
	s := strings.TrimRight(b.String(), " ")
	if o.Width > 0 && !o.Color && len(s) > o.Width {
		r := []rune(s)
		if len(r) > o.Width {
			s = string(r[:o.Width-1]) + "…"
		}
	}
	io.WriteString(w, s+"\n")
	b.Reset()
}

// WriteSummaryText writes the summary: outcomes, drop reasons and
// locations, the most common paths, per-hop latency and devices.
func WriteSummaryText(w io.Writer, s *paths.Summary, o TextOptions) error {
	var b strings.Builder
	span := ""
	if s.Last > s.First {
		span = ", " + FormatDuration(s.Last-s.First)
	}
	clones := ""
	switch {
	case s.Clones == 1:
		clones = " (and 1 clone)"
	case s.Clones > 1:
		clones = fmt.Sprintf(" (and %d clones)", s.Clones)
	}
	fmt.Fprintf(&b, "%s %d packets%s, %d events%s", o.paint(ansiBold, "Summary:"), s.Packets, clones, s.Events, span)
	line(&b, w, o)
	if s.LostEvents > 0 || s.SkippedEvents > 0 {
		fmt.Fprintf(&b, "  not recorded: %d events lost (ring buffer full), %d hits skipped (--max-rate)", s.LostEvents, s.SkippedEvents)
		line(&b, w, o)
	}

	b.WriteString(o.paint(ansiBold, "Outcomes:"))
	line(&b, w, o)
	for _, c := range s.Outcomes() {
		k, _ := paths.ParseOutcome(c.Name)
		fmt.Fprintf(&b, "  %-12s %9d  %5.1f%%", o.paint(outcomeColor(k), c.Name), c.Count, pct(c.Count, s.Packets))
		if o.Color {
			// The colour codes take no room on screen.
			b.Reset()
			fmt.Fprintf(&b, "  %s%s %9d  %5.1f%%", o.paint(outcomeColor(k), c.Name), strings.Repeat(" ", max(0, 12-len(c.Name))), c.Count, pct(c.Count, s.Packets))
		}
		line(&b, w, o)
	}
	for _, c := range s.ViaClone() {
		fmt.Fprintf(&b, "  of which %s through a clone: %d", c.Name, c.Count)
		line(&b, w, o)
	}
	if s.Clones > 0 {
		var parts []string
		for _, c := range s.CloneOutcomes() {
			parts = append(parts, fmt.Sprintf("%d %s", c.Count, c.Name))
		}
		fmt.Fprintf(&b, "  clones: %d (%s), part of their packets' outcomes", s.Clones, strings.Join(parts, ", "))
		line(&b, w, o)
	}

	if drops := s.Drops(); len(drops) > 0 {
		b.WriteString(o.paint(ansiBold, "Drop reasons:"))
		line(&b, w, o)
		rw := 6
		for _, d := range drops {
			rw = max(rw, len(d.Reason))
		}
		for _, d := range drops {
			fmt.Fprintf(&b, "  %-*s %9d", rw, d.Reason, d.Count)
			line(&b, w, o)
			for i, l := range d.Locations {
				if i == 5 {
					fmt.Fprintf(&b, "  %*s   ... %d more locations", rw, "", len(d.Locations)-5)
					line(&b, w, o)
					break
				}
				loc := l.Name
				if loc == "" {
					loc = "(location unknown)"
				}
				fmt.Fprintf(&b, "  %*s   %9d  at %s", rw, "", l.Count, loc)
				line(&b, w, o)
			}
			for _, pc := range d.Programs {
				fmt.Fprintf(&b, "  %*s   %9d  by %s", rw, "", pc.Count, pc.Name)
				line(&b, w, o)
			}
			for _, c := range d.Chains {
				fmt.Fprintf(&b, "  %*s   %9d  by %s", rw, "", c.Count, c.Name)
				line(&b, w, o)
			}
		}
	}

	if s.DropStacks > 0 {
		writeDropStacks(&b, w, s, o)
	}

	top := o.TopPaths
	if top <= 0 {
		top = 10
	}
	if paths := s.Paths(top); len(paths) > 0 {
		b.WriteString(o.paint(ansiBold, "Most common paths:"))
		line(&b, w, o)
		for _, c := range paths {
			fmt.Fprintf(&b, "  %9d  %s", c.Count, strings.ReplaceAll(c.Name, ">", " > "))
			line(&b, w, o)
		}
	}

	if lat := s.Latencies(); len(lat) > 0 {
		// The title stands over the "FROM > TO" column of the rows
		// ("  %-*s"), so that the headings end where their numbers do.
		const title = "Per-hop latency:"
		pw := len(title) - 2
		for _, l := range lat {
			pw = max(pw, len(l.From)+3+len(l.To))
		}
		fmt.Fprintf(&b, "%s%s %9s %9s %9s %9s %9s", o.paint(ansiBold, title), strings.Repeat(" ", 2+pw-len(title)), "count", "p50", "p90", "p99", "max")
		line(&b, w, o)
		for _, l := range lat {
			h := l.Hist
			fmt.Fprintf(&b, "  %-*s %9d %9s %9s %9s %9s", pw, l.From+" > "+l.To, h.Count(),
				FormatDuration(h.Quantile(0.5)), FormatDuration(h.Quantile(0.9)), FormatDuration(h.Quantile(0.99)), FormatDuration(h.Max()))
			line(&b, w, o)
		}
	}

	if places := s.Places(); len(places) > 0 {
		b.WriteString(o.paint(ansiBold, "Devices and namespaces:"))
		line(&b, w, o)
		dw := 5
		for _, p := range places {
			dw = max(dw, len(p.Dev))
		}
		for _, p := range places {
			dev := p.Dev
			if dev == "" {
				dev = "(none)"
			}
			ns := strconv.FormatUint(uint64(p.NetNS), 10)
			if p.NSName != "" {
				ns += " (" + p.NSName + ")"
			}
			fmt.Fprintf(&b, "  %-*s  netns %-28s %9d events", dw, dev, ns, p.Events)
			line(&b, w, o)
		}
	}
	return nil
}

// writeDropStacks writes the most frequent kernel stacks of each drop
// reason.
func writeDropStacks(b *strings.Builder, w io.Writer, s *paths.Summary, o TextOptions) {
	drops := s.Drops()
	if len(drops) == 0 {
		return
	}
	fmt.Fprintf(b, "%s", o.paint(ansiBold, fmt.Sprintf("Drop stacks (top %d per reason):", s.DropStacks)))
	line(b, w, o)
	for _, d := range drops {
		fmt.Fprintf(b, "  %s  (%d drops)", d.Reason, d.Count)
		line(b, w, o)
		for _, st := range d.Stacks {
			for i, f := range st.Frames {
				if i == 0 {
					fmt.Fprintf(b, "    %9d  %s", st.Count, f)
				} else {
					fmt.Fprintf(b, "    %9s  %s", "", f)
				}
				line(b, w, o)
			}
		}
		if d.StackLost > 0 {
			fmt.Fprintf(b, "    %9d  (stack lost)", d.StackLost)
			line(b, w, o)
		}
		if len(d.Stacks) == 0 && d.StackLost == 0 {
			fmt.Fprintf(b, "    %9s  (no stacks recorded)", "")
			line(b, w, o)
		}
	}
}

func pct(n, of uint64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}
