package capture

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cloudflare/cbpfc"
	"golang.org/x/net/bpf"

	"github.com/pathcap/pathcap/internal/pcapfilter"
)

// filterFunc is the BPF-to-BPF function in bpf/skb.c that decides whether a
// packet not yet followed is recorded. It is called with R1 pointing to the
// first copied byte, R2 just past the last, R3 holding where the bytes start
// (HEADER_* in bpf/skb.c, the values of [Header]) and R4 the packet's length
// from there; it keeps the packet if it returns non-zero in R0.
const filterFunc = "filter_packet"

// Registers of filterFunc's arguments and of the translated programs.
const (
	regData    = asm.R1 // first copied byte: a pointer into a filter_buf entry
	regDataEnd = asm.R2 // just past the last copied byte
	regHeader  = asm.R3 // where the bytes start, a Header
	regWireLen = asm.R4 // the packet's length from there
	regLen     = asm.R7 // regWireLen, moved out of the working registers
	// regIndirect is the register cbpfc computes X-relative packet
	// pointers in (the last of EBPFOpts.Working).
	regIndirect = asm.R6
	// regScratch is a register the translated programs leave alone.
	regScratch = asm.R8
)

// Labels of the assembled filter body.
const (
	labelL2   = "pathcap_filter_l2"
	labelL3   = "pathcap_filter_l3"
	labelExit = "pathcap_filter_exit"
)

// maxPacketOffset is the furthest packet offset cbpfc lets a load reach
// (its own bound, the verifier's limit for packet pointers).
const maxPacketOffset = 0xffff

// filterSnaplen is the snap length filter expressions are compiled with:
// libpcap's largest, so that its return values are plain "keep" values and
// its optimizer never assumes a short packet.
const filterSnaplen = 262144

// Filter is a compiled tcpdump filter expression, ready to be put into the
// kernel by [NewRecorder] (see [Config.Filter]). Create it with
// [CompileFilter]; it is read-only and may be shared.
//
// An expression is compiled twice: for bytes that start at the Ethernet
// header, and for bytes that start at the IPv4/IPv6 header (hooks where the
// skb has no usable link-layer header). An expression that only makes sense
// at one of the layers (arp, ether host, vlan) rejects every packet at the
// other.
type Filter struct {
	expr string
	l2   *layerProgram // nil: rejects every packet whose bytes start at the MAC header
	l3   *layerProgram // nil: rejects every packet whose bytes start at the network header
	// l2Err and l3Err say why a layer rejects everything.
	l2Err, l3Err error
}

// layerProgram is one layer's filter, translated to eBPF.
type layerProgram struct {
	cbpf  []bpf.Instruction // forward-only classic BPF, as translated
	ebpf  asm.Instructions  // the translation, labels prefixed per layer
	reach reach
}

// reach is how far into the packet a classic BPF program can load from.
type reach struct {
	// absolute is the end (exclusive) of the furthest load at a constant
	// offset: the filter buffer must be at least this large for the
	// verifier to accept those loads.
	absolute int
	// extent is the end of the furthest load the program can make at all,
	// constant or X-relative, if bounded is set. If not, X may take any
	// value loaded from the packet (protochain walks headers that way).
	extent  int
	bounded bool
}

// FilterError is a filter expression the recorder cannot use: libpcap
// cannot compile it, or it needs something the kernel hooks do not have. It
// answers [errors.Is] for [ErrFilter].
type FilterError struct {
	// Expr is the expression.
	Expr string
	// Msg says what is wrong (libpcap's own message where libpcap failed).
	Msg string
	// Hint suggests what to do instead, or is empty.
	Hint string
}

func (e *FilterError) Error() string {
	s := fmt.Sprintf("filter expression %q: %s", e.Expr, e.Msg)
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Is reports whether target is ErrFilter.
func (e *FilterError) Is(target error) bool { return target == ErrFilter }

// CompileFilter compiles a tcpdump filter expression (pcap-filter(7)) for
// the recorder, without loading anything into the kernel. It returns a
// *[FilterError] if the expression is invalid at both layers or uses a
// construct that cannot work in the kernel hooks (inbound, outbound,
// ifindex and other Linux socket filter extensions), and an error wrapping
// [pcapfilter.ErrUnavailable] if this build has no libpcap.
func CompileFilter(expr string) (*Filter, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return nil, &FilterError{Expr: expr, Msg: "empty expression", Hint: "leave it out to record every packet"}
	}
	if !pcapfilter.Available() {
		return nil, fmt.Errorf("compile filter %q: %w", expr, pcapfilter.ErrUnavailable)
	}
	f := &Filter{expr: expr}
	var err error
	f.l2, f.l2Err, err = compileLayer(expr, pcapfilter.LinkTypeEthernet, "l2")
	if err != nil {
		return nil, err
	}
	f.l3, f.l3Err, err = compileLayer(expr, pcapfilter.LinkTypeRaw, "l3")
	if err != nil {
		return nil, err
	}
	if f.l2 == nil && f.l3 == nil {
		msg := f.l2Err.Error()
		var pe *pcapfilter.Error
		if errors.As(f.l2Err, &pe) {
			msg = pe.Msg
		}
		return nil, &FilterError{Expr: expr, Msg: msg, Hint: "see pcap-filter(7) for the syntax"}
	}
	return f, nil
}

// String returns the expression.
func (f *Filter) String() string { return f.expr }

// compileLayer compiles expr for one link type and translates it to eBPF.
// A libpcap error is returned as layerErr (the layer then rejects every
// packet); err is for problems that make the whole expression unusable.
func compileLayer(expr string, linkType int, prefix string) (p *layerProgram, layerErr, err error) {
	raw, cerr := pcapfilter.CompileRaw(expr, linkType, filterSnaplen)
	if cerr != nil {
		return nil, cerr, nil
	}
	p, err = layerFromRaw(expr, raw, prefix)
	return p, nil, err
}

// layerFromRaw translates raw, libpcap's program for expr at one layer, to
// eBPF.
func layerFromRaw(expr string, raw []bpf.RawInstruction, prefix string) (*layerProgram, error) {
	if err := checkSupported(expr, raw); err != nil {
		return nil, err
	}
	fwd, err := pcapfilter.Unroll(raw, pcapfilter.UnrollDepth)
	if err != nil {
		return nil, &FilterError{Expr: expr, Msg: fmt.Sprintf("unroll loops: %v", err)}
	}
	insns, ok := bpf.Disassemble(fwd)
	if !ok {
		return nil, &FilterError{Expr: expr, Msg: "libpcap produced an instruction that cannot be translated"}
	}
	out, err := cbpfc.ToEBPF(insns, cbpfc.EBPFOpts{
		PacketStart: regData,
		PacketEnd:   regDataEnd,
		Result:      asm.R0,
		ResultLabel: labelExit,
		Working:     [4]asm.Register{asm.R3, asm.R4, asm.R5, regIndirect},
		LabelPrefix: "pathcap_" + prefix,
		StackOffset: 0,
	})
	if err != nil {
		return nil, &FilterError{Expr: expr, Msg: fmt.Sprintf("translate to eBPF: %v", err)}
	}
	if err := useWireLength(out); err != nil {
		return nil, &FilterError{Expr: expr, Msg: err.Error()}
	}
	return &layerProgram{cbpf: insns, ebpf: out, reach: reachOf(insns)}, nil
}

// filterFromRaw builds the Filter of expr from libpcap's programs for the
// two layers (nil for a layer that rejects every packet), as CompileFilter
// would, but without libpcap: for tests in builds without cgo.
func filterFromRaw(expr string, l2, l3 []bpf.RawInstruction) (*Filter, error) {
	f := &Filter{expr: expr}
	var err error
	if l2 != nil {
		if f.l2, err = layerFromRaw(expr, l2, "l2"); err != nil {
			return nil, err
		}
	}
	if l3 != nil {
		if f.l3, err = layerFromRaw(expr, l3, "l3"); err != nil {
			return nil, err
		}
	}
	if f.l2 == nil && f.l3 == nil {
		return nil, &FilterError{Expr: expr, Msg: "no layer"}
	}
	return f, nil
}

// extensions names the Linux socket filter extensions (SKF_AD_* offsets)
// that libpcap may use, with a hint for each that has an alternative.
var extensions = map[uint32]struct{ name, hint string }{
	0:  {"protocol", ""},
	4:  {"packet type (inbound/outbound)", "each event carries its direction (epb_flags); choose transmit or receive hooks with --hooks"},
	8:  {"interface index (ifindex)", "use --ifname (and --netns)"},
	20: {"mark", "use --mark"},
	44: {"VLAN tag from skb metadata", ""},
	48: {"VLAN tag presence from skb metadata", ""},
	60: {"VLAN protocol from skb metadata", ""},
}

// skfAdOff is SKF_AD_OFF: loads from here up read socket filter extensions
// rather than packet bytes. SKF_NET_OFF and SKF_LL_OFF lie below it; all
// are negative offsets.
const skfAdOff = 0xfffff000

// checkSupported rejects programs that load from the Linux socket filter
// ancillary area (negative offsets): the kernel hooks run no socket filter,
// so such loads would match all or nothing.
func checkSupported(expr string, raw []bpf.RawInstruction) error {
	const (
		classMask = 0x07
		classLD   = 0x00
		classLDX  = 0x01
		modeMask  = 0xe0
		modeABS   = 0x20
		modeIND   = 0x40
	)
	for _, in := range raw {
		class, mode := in.Op&classMask, in.Op&modeMask
		if (class != classLD && class != classLDX) || (mode != modeABS && mode != modeIND) || int32(in.K) >= 0 {
			continue
		}
		what, hint := "a Linux socket filter extension", ""
		if in.K >= skfAdOff {
			if e, ok := extensions[in.K-skfAdOff]; ok {
				what, hint = e.name, e.hint
			}
		}
		return &FilterError{
			Expr: expr,
			Msg:  fmt.Sprintf("%s is not available in kernel hooks (libpcap reads it from socket metadata at offset %#x)", what, in.K),
			Hint: hint,
		}
	}
	return nil
}

// useWireLength makes the program's "len" (cBPF ld #len) the packet's
// length from where its bytes start, which the seam receives in regWireLen,
// instead of the number of bytes copied. cbpfc translates ld #len into
// "A = PacketEnd; A -= PacketStart" (32-bit), and reads PacketEnd nowhere
// else but in bounds checks (as a comparison operand), so every move from
// regDataEnd is such a translation.
func useWireLength(insns asm.Instructions) error {
	for i := range insns {
		ins := &insns[i]
		if ins.OpCode != asm.Mov.Op(asm.RegSource) || ins.Src != regDataEnd {
			continue
		}
		if i+1 >= len(insns) {
			return errors.New("translate ld #len: unexpected instruction sequence")
		}
		next := &insns[i+1]
		if next.OpCode != asm.Sub.Op32(asm.RegSource) || next.Dst != ins.Dst || next.Src != regData {
			return errors.New("translate ld #len: unexpected instruction sequence")
		}
		ins.Src = regLen
		*next = asm.Mov.Reg32(ins.Dst, ins.Dst).WithMetadata(next.Metadata)
	}
	return nil
}

// reachOf finds how far into the packet insns can load from.
func reachOf(insns []bpf.Instruction) reach {
	r := reach{bounded: true}
	maxX, indirect := 0, 0
	for _, in := range insns {
		switch i := in.(type) {
		case bpf.LoadAbsolute:
			r.absolute = max(r.absolute, int(i.Off)+i.Size)
		case bpf.LoadMemShift:
			r.absolute = max(r.absolute, int(i.Off)+1)
			maxX = max(maxX, 4*0xf) // X = 4*(byte & 0xf)
		case bpf.LoadIndirect:
			indirect = max(indirect, int(int32(i.Off))+i.Size)
		case bpf.LoadConstant:
			if i.Dst == bpf.RegX {
				maxX = max(maxX, int(i.Val))
			}
		case bpf.TAX, bpf.LoadScratch:
			// X from A or scratch memory: a value computed from packet
			// bytes, such as an IPv6 extension header's length.
			if i, ok := in.(bpf.LoadScratch); !ok || i.Dst == bpf.RegX {
				r.bounded = false
			}
		}
	}
	r.extent = r.absolute
	if indirect > 0 {
		r.extent = max(r.extent, maxX+indirect)
	}
	if r.absolute > maxPacketOffset {
		// cbpfc turns such loads into "no match"; they never reach memory.
		r.absolute = maxPacketOffset
	}
	return r
}

// filterLayout is how the filter buffer is set up for one recorder.
type filterLayout struct {
	// window is the number of packet bytes copied for the filter: all that
	// it can load from, capped at the snap length.
	window int
	// bufSize is the size of a filter_buf entry: at least window and at
	// least what every constant-offset load needs, rounded up to a cache
	// line so that CPUs do not share lines.
	bufSize int
}

// layout computes the filter buffer layout for snap length snaplen.
func (f *Filter) layout(snaplen int) filterLayout {
	var l filterLayout
	for _, p := range []*layerProgram{f.l2, f.l3} {
		if p == nil {
			continue
		}
		w := snaplen
		if p.reach.bounded && p.reach.extent < w {
			w = p.reach.extent
		}
		l.window = max(l.window, w)
		l.bufSize = max(l.bufSize, w, p.reach.absolute)
	}
	l.bufSize = max(64, (l.bufSize+63)&^63)
	return l
}

// body assembles the body of filterFunc: dispatch on the header to the
// layer's program, with every X-relative load bounded by bufSize.
//
// Why the bounds are rewritten: cbpfc guards each load with a comparison
// against the end of the data (regDataEnd). For packet pointers (XDP, tc)
// such a comparison tells the verifier how many bytes are safe to read,
// but here the bytes are in a filter_buf entry, memory of fixed size, and
// the verifier ignores pointer comparisons for it: it accepts a load only
// if the offset is provably inside the entry whatever the data. The
// comparisons still decide at run time, exactly as in classic BPF, whether
// a load is past the copied bytes (no match). What the verifier needs is
// provided as follows:
//   - constant-offset loads: the entry is at least as large as the furthest
//     one (layout's bufSize), so each is inside it by its constant offset;
//   - X-relative loads: cbpfc first checks X + first offset against the
//     largest start that keeps the whole access within 0xffff bytes, an
//     unsigned comparison the verifier does track. That bound is lowered
//     here to keep the access within bufSize bytes instead. A packet for
//     which the lowered check fails would have failed the run-time
//     comparison against the end of the data anyway, since no more than
//     bufSize bytes are ever copied; so the result is unchanged.
func (f *Filter) body(bufSize int) asm.Instructions {
	b := asm.Instructions{
		asm.Mov.Reg(regLen, regWireLen),
	}
	if f.l2 != nil {
		b = append(b, asm.JEq.Imm(regHeader, int32(HeaderMAC), labelL2))
	}
	if f.l3 != nil {
		b = append(b, asm.JEq.Imm(regHeader, int32(HeaderNetwork), labelL3))
	}
	// Bytes from skb->data (no header known) or a layer that rejects all.
	b = append(b, asm.Mov.Imm(asm.R0, 0), asm.Return())
	for _, l := range []struct {
		p     *layerProgram
		label string
	}{{f.l2, labelL2}, {f.l3, labelL3}} {
		if l.p == nil {
			continue
		}
		prog := pointerFirst(boundIndirect(l.p.ebpf, bufSize))
		// Jump to the program through a label of our own on a no-op, so
		// that the program's first instruction keeps cbpfc's label.
		b = append(b, asm.Mov.Reg(regLen, regLen).WithSymbol(l.label))
		b = append(b, prog...)
	}
	return append(b, asm.Return().WithSymbol(labelExit))
}

// boundIndirect returns a copy of insns in which cbpfc's bound on X-relative
// start offsets (a JGE of regIndirect against a constant) keeps accesses
// within bufSize bytes instead of maxPacketOffset; see body.
func boundIndirect(insns asm.Instructions, bufSize int) asm.Instructions {
	insns = slices.Clone(insns)
	shrink := int64(maxPacketOffset - min(bufSize, maxPacketOffset))
	for i := range insns {
		ins := &insns[i]
		if ins.OpCode != asm.JGE.Op(asm.ImmSource) || ins.Dst != regIndirect {
			continue
		}
		// cbpfc's constant is 0xffff - length + 1 (0: never in bounds);
		// ours is bufSize - length + 1.
		ins.Constant = max(0, ins.Constant-shrink)
	}
	return insns
}

// pointerFirst returns a copy of insns in which cbpfc's "regIndirect +=
// regData" (an offset plus the data pointer, giving the pointer of an
// X-relative load) is computed as the data pointer plus the offset, through
// regScratch. The verifier keeps the pointer type of "pointer += scalar"
// for every kind of memory, but for the untrusted memory that loads through
// skb->head reach (read straight from the packet), "scalar += pointer"
// gives a number it refuses to load through.
func pointerFirst(insns asm.Instructions) asm.Instructions {
	add := asm.Add.Op(asm.RegSource)
	out := make(asm.Instructions, 0, len(insns)+8)
	for _, ins := range insns {
		if ins.OpCode != add || ins.Dst != regIndirect || ins.Src != regData {
			out = append(out, ins)
			continue
		}
		out = append(out,
			asm.Mov.Reg(regScratch, regData).WithMetadata(ins.Metadata),
			asm.Add.Reg(regScratch, regIndirect),
			asm.Mov.Reg(regIndirect, regScratch),
		)
	}
	return out
}

// hasFilter reports whether prog calls filterFunc (a program whose packets
// are never filtered has no copy of it).
func hasFilter(prog *ebpf.ProgramSpec) bool {
	return slices.ContainsFunc(prog.Instructions, func(ins asm.Instruction) bool { return ins.Symbol() == filterFunc })
}

// replaceFilter replaces the body of filterFunc in prog with body, keeping
// the function's symbol and BTF function info on its first instruction.
func replaceFilter(prog *ebpf.ProgramSpec, body asm.Instructions) error {
	if len(body) == 0 {
		return fmt.Errorf("replace %s: empty body", filterFunc)
	}
	insns := prog.Instructions
	start := slices.IndexFunc(insns, func(ins asm.Instruction) bool { return ins.Symbol() == filterFunc })
	if start < 0 {
		return fmt.Errorf("replace %s: function not in program %s", filterFunc, prog.Name)
	}
	end := len(insns)
	for i := start + 1; i < len(insns); i++ {
		if insns[i].Symbol() != "" {
			end = i
			break
		}
	}
	body = slices.Clone(body)
	body[0] = body[0].WithMetadata(insns[start].Metadata)
	prog.Instructions = slices.Concat(insns[:start], body, insns[end:])
	return nil
}
