package render

import (
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/paths"
)

// TextWriter writes packets as aligned text, reusing one buffer for all of
// them: the report of a large recording formats millions of hops.
type TextWriter struct {
	w    io.Writer
	o    TextOptions
	buf  []byte // the packet's text
	line int    // where the current line starts in buf
	// flow and flowText are the last flow written in a packet's header
	// line, and its text: packets of one flow follow each other.
	flow     paths.Flow
	flowText []byte
}

// NewTextWriter returns a TextWriter that writes to w.
func NewTextWriter(w io.Writer, o TextOptions) *TextWriter {
	return &TextWriter{w: w, o: o, buf: make([]byte, 0, 4096)}
}

// WritePacketText writes one packet's path, aligned.
func WritePacketText(w io.Writer, p *paths.Packet, o TextOptions) error {
	return NewTextWriter(w, o).WritePacket(p)
}

func (t *TextWriter) paintStart(color string) {
	if t.o.Color {
		t.buf = append(t.buf, color...)
	}
}

func (t *TextWriter) paintEnd() {
	if t.o.Color {
		t.buf = append(t.buf, ansiReset...)
	}
}

// endLine ends the current line: trailing spaces go, and a line wider than
// the terminal (plain output only) is cut with an ellipsis.
func (t *TextWriter) endLine() {
	l := t.buf[t.line:]
	n := len(l)
	for n > 0 && l[n-1] == ' ' {
		n--
	}
	t.buf = t.buf[:t.line+n]
	if w := t.o.Width; w > 0 && !t.o.Color && n > w && utf8.RuneCount(t.buf[t.line:]) > w {
		// Keep w-1 runes and add "…".
		cut, runes := t.line, 0
		for runes < w-1 {
			_, size := utf8.DecodeRune(t.buf[cut:])
			cut += size
			runes++
		}
		t.buf = append(t.buf[:cut], "…"...)
	}
	t.buf = append(t.buf, '\n')
	t.line = len(t.buf)
}

const spaces = "                                                                "

func (t *TextWriter) pad(n int) {
	for n > len(spaces) {
		t.buf = append(t.buf, spaces...)
		n -= len(spaces)
	}
	if n > 0 {
		t.buf = append(t.buf, spaces[:n]...)
	}
}

// appendDuration appends FormatDuration(ns): strconv's float formatting,
// computed in integers where that gives the same.
func appendDuration(b []byte, ns int64) []byte {
	a := uint64(ns)
	if ns < 0 {
		a = -a
	}
	// Rounded in integers where that gives what strconv.AppendFloat
	// gives for the float64 quotient: away from a tie (half a unit of
	// the last digit), the quotient's rounding error (far below a
	// nanosecond for these magnitudes) cannot move it across one.
	switch {
	case ns < 1000:
	case a < 999_950:
		if a%100 != 50 {
			q := (a + 50) / 100 // tenths of µs
			b = strconv.AppendUint(b, q/10, 10)
			return append(b, '.', byte('0'+q%10), 0xc2, 0xb5, 's') // "µs"
		}
	case a < 999_995_000:
		if a%10_000 != 5_000 {
			q := (a + 5_000) / 10_000 // hundredths of ms
			b = strconv.AppendUint(b, q/100, 10)
			return append(b, '.', digitPairs[2*(q%100)], digitPairs[2*(q%100)+1], 'm', 's')
		}
	}
	switch {
	case a < 1000:
		return append(strconv.AppendInt(b, ns, 10), "ns"...)
	case a < 999_950:
		return append(strconv.AppendFloat(b, float64(ns)/1e3, 'f', 1, 64), "µs"...)
	case a < 999_995_000:
		return append(strconv.AppendFloat(b, float64(ns)/1e6, 'f', 2, 64), "ms"...)
	}
	return append(strconv.AppendFloat(b, float64(ns)/1e9, 'f', 2, 64), 's')
}

func hookLabelLen(h *paths.Hop) int {
	if h.Meta.Hook == "" {
		return len(kmeta.KindCapture)
	}
	return len(h.Meta.Kind) + 1 + len(h.Meta.Hook)
}

func appendNSLabel(b []byte, h *paths.Hop) []byte {
	if h.Meta.NetNS == 0 {
		return b
	}
	b = append(b, "netns "...)
	if h.NSName != "" {
		return append(b, h.NSName...)
	}
	return strconv.AppendUint(b, uint64(h.Meta.NetNS), 10)
}

func nsLabelLen(h *paths.Hop) int {
	switch {
	case h.Meta.NetNS == 0:
		return 0
	case h.NSName != "":
		return len("netns ") + len(h.NSName)
	}
	return len("netns ") + decimalLen(uint64(h.Meta.NetNS))
}

// runeCount is utf8.RuneCount for valid UTF-8 (durations, with their
// "µ"): the bytes that do not continue a character.
func runeCount(b []byte) int {
	n := len(b)
	for _, c := range b {
		if c&0xc0 == 0x80 {
			n--
		}
	}
	return n
}

func decimalLen(v uint64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

// WritePacket writes one packet's path, aligned: a header line, then one
// line per hop (with its derived functions and, with TextOptions.Stacks,
// its call chain), then an empty line.
func (t *TextWriter) WritePacket(p *paths.Packet) error {
	t.buf, t.line = t.buf[:0], 0
	t.paintStart(ansiBold)
	t.buf = append(t.buf, "packet "...)
	t.buf = strconv.AppendUint(t.buf, p.ID, 10)
	t.paintEnd()
	t.buf = append(t.buf, "  "...)
	t.paintStart(outcomeColor(p.Outcome.Kind))
	t.buf = appendOutcomeText(t.buf, &p.Outcome)
	t.paintEnd()
	t.buf = append(t.buf, "  ("...)
	t.buf = strconv.AppendInt(t.buf, int64(len(p.Hops)+p.DroppedHops), 10)
	t.buf = append(t.buf, " hops, "...)
	t.buf = appendDuration(t.buf, p.Duration())
	t.buf = append(t.buf, ')')
	if len(p.Hops) > 0 {
		if f := &p.Hops[0].Flow; f.Src.IsValid() || f.EtherType != 0 {
			t.buf = append(t.buf, "  "...)
			if t.flowText == nil || *f != t.flow {
				t.flow, t.flowText = *f, appendFlowText(t.flowText[:0], f)
			}
			t.buf = append(t.buf, t.flowText...)
		}
	}
	if p.Parent != 0 {
		t.buf = append(t.buf, "  clone of "...)
		t.buf = strconv.AppendUint(t.buf, p.Parent, 10)
	}
	if len(p.Children) > 0 {
		t.buf = append(t.buf, "  clones: ["...)
		for i, c := range p.Children {
			if i > 0 {
				t.buf = append(t.buf, ' ')
			}
			t.buf = strconv.AppendUint(t.buf, c, 10)
		}
		t.buf = append(t.buf, ']')
	}
	t.endLine()

	hookW, devW, nsW := 4, 3, 5
	for i := range p.Hops {
		h := &p.Hops[i]
		hookW = max(hookW, hookLabelLen(h))
		devW = max(devW, len(h.Meta.Dev))
		nsW = max(nsW, nsLabelLen(h))
	}
	t0 := p.Start()
	for i := range p.Hops {
		h := &p.Hops[i]
		// "  %9s  %-*s  %-*s  %-*s  len %-5d"
		t.buf = append(t.buf, "  "...)
		// Right-aligned in 9 columns.
		var db [24]byte
		d := appendDuration(append(db[:0], '+'), h.Time-t0)
		t.pad(9 - runeCount(d))
		t.buf = append(t.buf, d...)
		t.buf = append(t.buf, "  "...)
		t.buf = h.AppendLabel(t.buf)
		t.pad(hookW - hookLabelLen(h))
		t.buf = append(t.buf, "  "...)
		t.buf = append(t.buf, h.Meta.Dev...)
		t.pad(devW - len(h.Meta.Dev))
		t.buf = append(t.buf, "  "...)
		t.buf = appendNSLabel(t.buf, h)
		t.pad(nsW - nsLabelLen(h))
		t.buf = append(t.buf, "  len "...)
		l := uint64(h.Len())
		t.buf = strconv.AppendUint(t.buf, l, 10)
		t.pad(5 - decimalLen(l))
		first := true
		extra := func() {
			t.buf = append(t.buf, "  "...)
			first = false
		}
		if h.Meta.HasDrop {
			extra()
			t.paintStart(ansiRed)
			t.buf = append(t.buf, "drop "...)
			t.buf = append(t.buf, h.Meta.Reason...)
			t.paintEnd()
		}
		if h.Meta.ProgType != "" && h.Meta.HasRetVal {
			// The exit of a traced BPF program: its verdict.
			extra()
			t.buf = append(t.buf, "verdict "...)
			t.buf = append(t.buf, kmeta.VerdictName(h.Meta.ProgType, h.Meta.RetVal)...)
		}
		if m := h.Meta; m.NFVerdict != "" {
			// The exit of nft_do_chain: the base chain's verdict.
			extra()
			t.buf = append(t.buf, "verdict "...)
			t.buf = append(t.buf, m.NFVerdict...)
			if m.NFTChain != "" || m.NFTTable != "" {
				t.buf = append(t.buf, " by chain "...)
				t.buf = append(t.buf, joinNonEmpty(m.NFTFamily, m.NFTTable, m.NFTChain)...)
			}
		} else if m.NFHook != "" {
			// A netfilter hook's entry (nf_hook_slow, nft_do_chain).
			extra()
			t.buf = append(t.buf, "hook "...)
			t.buf = append(t.buf, joinNonEmpty(m.NFFamily, m.NFHook)...)
		}
		if h.Meta.Location != "" {
			extra()
			t.buf = append(t.buf, "at "...)
			t.buf = append(t.buf, h.Meta.Location...)
		}
		if h.Changed != 0 {
			extra()
			t.paintStart(ansiYell)
			t.buf = append(t.buf, "changed "...)
			t.buf = h.Changed.AppendNames(t.buf, ",")
			if h.Changed&(paths.ChangedAddr|paths.ChangedPort|paths.ChangedProto) != 0 {
				t.buf = append(t.buf, ": "...)
				t.buf = appendFlowText(t.buf, &h.Flow)
			}
			t.paintEnd()
		}
		_ = first
		t.endLine()
		if h.Stack != nil || h.Meta.StackLost || h.Meta.Stack != 0 {
			t.writeHopStack(p, i)
		}
	}
	if p.Truncated {
		t.buf = append(t.buf, "  ... "...)
		t.buf = strconv.AppendInt(t.buf, int64(p.DroppedHops), 10)
		t.buf = append(t.buf, " more hops not kept\n"...)
		t.line = len(t.buf)
	}
	t.buf = append(t.buf, '\n')
	_, err := t.w.Write(t.buf)
	return err
}

// writeHopStack writes the derived functions of hop i and, with
// TextOptions.Stacks, its call chain.
func (t *TextWriter) writeHopStack(p *paths.Packet, i int) {
	h := &p.Hops[i]
	if d := p.Derived(i); len(d) > 0 {
		t.buf = append(t.buf, stackIndent...)
		t.paintStart(ansiDim)
		t.buf = append(t.buf, "derived: "...)
		for j, fn := range d {
			if j > 0 {
				t.buf = append(t.buf, " > "...)
			}
			t.buf = append(t.buf, fn...)
		}
		t.paintEnd()
		t.endLine()
	}
	if !t.o.Stacks {
		return
	}
	switch {
	case h.Meta.StackLost:
		t.buf = append(t.buf, stackIndent+"stack lost"...)
		if h.Meta.StackErr != 0 {
			t.buf = append(t.buf, " (error "...)
			t.buf = strconv.AppendInt(t.buf, int64(h.Meta.StackErr), 10)
			t.buf = append(t.buf, ')')
		}
		t.endLine()
	case h.Stack == nil:
		t.buf = append(t.buf, stackIndent+"stack "...)
		t.buf = strconv.AppendUint(t.buf, uint64(h.Meta.Stack), 10)
		t.buf = append(t.buf, ": frames not in the input"...)
		t.endLine()
	default:
		t.buf = append(t.buf, stackIndent+"stack "...)
		t.buf = strconv.AppendUint(t.buf, uint64(h.Stack.ID), 10)
		t.buf = append(t.buf, ':')
		if !h.Stack.Offsets {
			t.buf = append(t.buf, " (functions only: its definition is not in the input)"...)
		}
		t.endLine()
		for _, f := range h.Stack.Frames {
			t.buf = append(t.buf, stackIndent+"  "...)
			t.buf = append(t.buf, f...)
			t.endLine()
		}
	}
}
