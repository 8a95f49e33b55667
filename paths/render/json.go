package render

import (
	"strconv"
	"unicode/utf8"

	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/paths"
)

// AppendJSON appends p as one line of JSON (see docs/FORMAT.md, "analyze
// paths --json") followed by a newline.
func AppendJSON(b []byte, p *paths.Packet) []byte {
	return (*JSONEncoder)(nil).Append(b, p)
}

// JSONEncoder formats packets as JSON lines, as AppendJSON does. It
// remembers the parts of the output that repeat from packet to packet (a
// hop's hook and kind, an outcome), so that the millions of packets of a
// large recording format faster. Its zero value is ready to use; it is not
// safe for concurrent use.
type JSONEncoder struct {
	hooks    [64]jsonHookEntry
	outcomes [16]jsonOutcomeEntry
	stacks   [256]jsonStackEntry
}

// jsonStackEntry is the JSON array of a stack's frames. A Stack is never
// modified once made, and the entry keeps it alive, so the pointer
// identifies the frames.
type jsonStackEntry struct {
	stack *paths.Stack
	text  []byte
}

// appendStack appends the frames of s as a JSON array, made once per
// stack while it stays in the cache.
func (enc *JSONEncoder) appendStack(b []byte, s *paths.Stack) []byte {
	if enc == nil {
		return appendJSONStrings(b, s.Frames)
	}
	e := &enc.stacks[(s.ID*0x9e3779b97f4a7c15)>>56]
	if e.stack != s {
		e.stack, e.text = s, appendJSONStrings(e.text[:0], s.Frames)
	}
	return append(b, e.text...)
}

// jsonHookEntry is the start of a hop's JSON, up to its "ts", for a hook.
type jsonHookEntry struct {
	hook, kind string
	text       []byte
}

// jsonOutcomeEntry is the JSON of an outcome.
type jsonOutcomeEntry struct {
	key  jsonOutcomeKey
	ok   bool
	text []byte
}

// jsonOutcomeKey is what an outcome's JSON depends on.
type jsonOutcomeKey struct {
	kind                        paths.OutcomeKind
	reason, location, hook, dev string
	netns                       uint32
	socket, process, why        string
	clone                       uint64
	ownKind                     paths.OutcomeKind
	ownReason, ownLocation      string
	program, progType, verdict  string
	nftFamily, nftTable         string
	nftChain, nfFamily, nfHook  string
}

// Append appends p as one line of JSON followed by a newline. A nil
// JSONEncoder remembers nothing.
func (enc *JSONEncoder) Append(b []byte, p *paths.Packet) []byte {
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
	st := jsonState{enc: enc}
	b = append(b, `,"start":`...)
	b = st.appendTime(b, p.Start())
	b = append(b, `,"duration_ns":`...)
	b = strconv.AppendInt(b, p.Duration(), 10)
	b = enc.appendOutcome(b, &p.Outcome)
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
		b = st.appendHop(b, p, i, t0)
	}
	return append(b, "]}\n"...)
}

// appendOutcome appends the "outcome" member.
func (enc *JSONEncoder) appendOutcome(b []byte, o *paths.Outcome) []byte {
	k := jsonOutcomeKey{o.Kind, o.Reason, o.Location, o.Hook, o.Dev, o.NetNS, o.Socket, o.Process, o.Why, o.Clone, o.OwnKind, o.OwnReason, o.OwnLocation, o.Program, o.ProgType, o.Verdict,
		o.NFTFamily, o.NFTTable, o.NFTChain, o.NFFamily, o.NFHook}
	var e *jsonOutcomeEntry
	if enc != nil {
		e = &enc.outcomes[(int(k.kind)*7+len(k.hook)*3+len(k.location)+int(k.netns))&(len(enc.outcomes)-1)]
		if e.ok && e.key == k {
			return append(b, e.text...)
		}
	}
	start := len(b)
	b = append(b, `,"outcome":{"kind":`...)
	b = appendJSONString(b, o.Kind.String())
	if o.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, o.Reason)
	}
	if o.Location != "" {
		b = append(b, `,"location":`...)
		b = appendJSONString(b, o.Function())
		b = append(b, `,"location_offset":`...)
		b = appendJSONString(b, o.Location)
	}
	if o.Hook != "" {
		b = append(b, `,"hook":`...)
		b = appendJSONString(b, o.Hook)
	}
	if o.Dev != "" {
		b = append(b, `,"dev":`...)
		b = appendJSONString(b, o.Dev)
	}
	if o.NetNS != 0 {
		b = append(b, `,"netns":`...)
		b = strconv.AppendUint(b, uint64(o.NetNS), 10)
	}
	if o.Socket != "" {
		b = append(b, `,"socket":`...)
		b = appendJSONString(b, o.Socket)
	}
	if o.Process != "" {
		b = append(b, `,"process":`...)
		b = appendJSONString(b, o.Process)
	}
	if o.Clone != 0 {
		b = append(b, `,"clone":`...)
		b = strconv.AppendUint(b, o.Clone, 10)
		b = append(b, `,"own":{"kind":`...)
		b = appendJSONString(b, o.OwnKind.String())
		if o.OwnReason != "" {
			b = append(b, `,"reason":`...)
			b = appendJSONString(b, o.OwnReason)
		}
		if o.OwnLocation != "" {
			b = append(b, `,"location_offset":`...)
			b = appendJSONString(b, o.OwnLocation)
		}
		b = append(b, '}')
	}
	if o.Program != "" {
		b = append(b, `,"program":`...)
		b = appendJSONString(b, o.Program)
		b = append(b, `,"program_type":`...)
		b = appendJSONString(b, o.ProgType)
		b = append(b, `,"verdict":`...)
		b = appendJSONString(b, o.Verdict)
	}
	if o.NFHook != "" {
		b = append(b, `,"nf_family":`...)
		b = appendJSONString(b, o.NFFamily)
		b = append(b, `,"nf_hook":`...)
		b = appendJSONString(b, o.NFHook)
	}
	if o.NFTChain != "" || o.NFTTable != "" {
		b = append(b, `,"nft_family":`...)
		b = appendJSONString(b, o.NFTFamily)
		b = append(b, `,"nft_table":`...)
		b = appendJSONString(b, o.NFTTable)
		b = append(b, `,"nft_chain":`...)
		b = appendJSONString(b, o.NFTChain)
	}
	if o.Why != "" {
		b = append(b, `,"why":`...)
		b = appendJSONString(b, o.Why)
	}
	b = append(b, '}')
	if e != nil {
		e.key, e.ok, e.text = k, true, append(e.text[:0], b[start:]...)
	}
	return b
}

// appendHookStart appends the start of a hop's JSON: its hook and kind,
// and the "ts" key.
func (enc *JSONEncoder) appendHookStart(b []byte, h *paths.Hop) []byte {
	hook, kind := h.Meta.Hook, h.Meta.Kind
	var e *jsonHookEntry
	if enc != nil {
		e = &enc.hooks[(len(hook)*31+len(kind)*17+hookByte(hook, 0)*7+hookByte(hook, len(hook)/2)*13+hookByte(hook, len(hook)-1))&(len(enc.hooks)-1)]
		if e.text != nil && e.hook == hook && e.kind == kind {
			return append(b, e.text...)
		}
	}
	start := len(b)
	b = append(b, `{"hook":`...)
	b = appendJSONString(b, h.HookName())
	b = append(b, `,"kind":`...)
	if kind == "" {
		b = appendJSONString(b, kmeta.KindCapture)
	} else {
		b = appendJSONString(b, kind)
	}
	b = append(b, `,"ts":`...)
	if e != nil {
		e.hook, e.kind, e.text = hook, kind, append(e.text[:0], b[start:]...)
	}
	return b
}

func hookByte(s string, i int) int {
	if i < 0 || i >= len(s) {
		return 0
	}
	return int(s[i])
}

// hopPlace is what the part of a hop's JSON from "dev" to "comm" depends
// on: where the hop happened and the skb's fixed fields, which nearly
// always repeat from hop to hop of a packet.
type hopPlace struct {
	dev, nsName, comm      string
	netns, ifindex, hopLen uint32
	capLen, cpu, pid       uint32
	skb                    uint64
	meta                   bool
}

// jsonSpan is a part of the JSON written before, b[start:end] of the line
// being built.
type jsonSpan struct {
	start, end int
}

// jsonState remembers the parts of a packet's JSON that later hops may
// repeat, as spans of the line itself: a repeated part is copied instead
// of formatted again.
type jsonState struct {
	enc       *JSONEncoder
	places    [4]hopPlace
	placeSpan [4]jsonSpan
	nPlaces   int
	nextPlace int
	flow      paths.Flow
	flowSpan  jsonSpan
	hasFlow   bool
	time      int64 // the last "ts", at timeSpan (when not 0)
	timeSpan  jsonSpan
}

// appendTime appends t in decimal. The hops of a packet are close in
// time: when t is in the same millisecond as the last time written, only
// its last six digits are formatted.
func (st *jsonState) appendTime(b []byte, t int64) []byte {
	const milli = 1e6
	if st.time >= milli && t >= milli && t/milli == st.time/milli {
		b = append(b, b[st.timeSpan.start:st.timeSpan.end-6]...)
		return appendDigits6(b, uint32(t%milli))
	}
	start := len(b)
	b = strconv.AppendInt(b, t, 10)
	st.time, st.timeSpan = t, jsonSpan{start, len(b)}
	return b
}

// digitPairs holds "00" to "99".
const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// appendSmallInt appends v in decimal, without strconv's general loop
// when it is below 10,000 (as the time from a packet's first hop mostly
// is).
func appendSmallInt(b []byte, v int64) []byte {
	switch {
	case v < 0 || v >= 10_000:
		return strconv.AppendInt(b, v, 10)
	case v < 10:
		return append(b, byte('0'+v))
	case v < 100:
		return append(b, digitPairs[2*v], digitPairs[2*v+1])
	case v < 1000:
		lo := v % 100
		return append(b, byte('0'+v/100), digitPairs[2*lo], digitPairs[2*lo+1])
	}
	hi, lo := v/100, v%100
	return append(b, digitPairs[2*hi], digitPairs[2*hi+1], digitPairs[2*lo], digitPairs[2*lo+1])
}

// appendDigits6 appends v < 1,000,000 as six digits, with leading zeros.
func appendDigits6(b []byte, v uint32) []byte {
	hi, mid, lo := v/10000, v/100%100, v%100
	return append(b, digitPairs[2*hi], digitPairs[2*hi+1], digitPairs[2*mid], digitPairs[2*mid+1],
		digitPairs[2*lo], digitPairs[2*lo+1])
}

func (st *jsonState) appendHop(b []byte, p *paths.Packet, i int, t0 int64) []byte {
	h := &p.Hops[i]
	m := h.Meta
	b = st.enc.appendHookStart(b, h)
	b = st.appendTime(b, h.Time)
	b = append(b, `,"dt_ns":`...)
	b = appendSmallInt(b, h.Time-t0)

	place := hopPlace{dev: m.Dev, nsName: h.NSName, netns: m.NetNS, ifindex: m.Ifindex, hopLen: h.Len(),
		capLen: h.CapLen, meta: m.Hook != ""}
	if place.meta {
		place.skb, place.cpu, place.pid, place.comm = m.SKB, m.CPU, m.PID, m.Comm
	}
	b = st.appendPlace(b, &place)

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
	if m.ProgType != "" {
		b = append(b, `,"program":`...)
		b = appendJSONString(b, m.Prog)
		if m.HasRetVal {
			b = append(b, `,"verdict":`...)
			b = appendJSONString(b, kmeta.VerdictName(m.ProgType, m.RetVal))
		}
	}
	if m.NFHook != "" {
		b = append(b, `,"nf_family":`...)
		b = appendJSONString(b, m.NFFamily)
		b = append(b, `,"nf_hook":`...)
		b = appendJSONString(b, m.NFHook)
	}
	if m.NFTChain != "" || m.NFTTable != "" {
		b = append(b, `,"nft_family":`...)
		b = appendJSONString(b, m.NFTFamily)
		b = append(b, `,"nft_table":`...)
		b = appendJSONString(b, m.NFTTable)
		b = append(b, `,"nft_chain":`...)
		b = appendJSONString(b, m.NFTChain)
	}
	if m.NFVerdict != "" {
		b = append(b, `,"verdict":`...)
		b = appendJSONString(b, m.NFVerdict)
	}
	if f := &h.Flow; f.Src.IsValid() {
		b = st.appendFlow(b, f)
	}
	if h.Changed != 0 {
		b = append(b, `,"changed":["`...)
		b = h.Changed.AppendNames(b, `","`)
		b = append(b, `"]`...)
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
		b = st.enc.appendStack(b, h.Stack)
		n := len(b)
		b = append(b, `,"derived":[`...)
		first := true
		p.EachDerived(i, func(fn string) {
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

// appendPlace appends the fields from "dev" to "comm", copied from an
// earlier hop of the line when one had the same.
func (st *jsonState) appendPlace(b []byte, pl *hopPlace) []byte {
	for k := 0; k < st.nPlaces; k++ {
		if st.places[k] == *pl {
			sp := st.placeSpan[k]
			return append(b, b[sp.start:sp.end]...)
		}
	}
	start := len(b)
	b = append(b, `,"dev":`...)
	b = appendJSONString(b, pl.dev)
	b = append(b, `,"netns":`...)
	b = strconv.AppendUint(b, uint64(pl.netns), 10)
	if pl.nsName != "" {
		b = append(b, `,"netns_name":`...)
		b = appendJSONString(b, pl.nsName)
	}
	b = append(b, `,"ifindex":`...)
	b = strconv.AppendUint(b, uint64(pl.ifindex), 10)
	b = append(b, `,"len":`...)
	b = strconv.AppendUint(b, uint64(pl.hopLen), 10)
	b = append(b, `,"caplen":`...)
	b = strconv.AppendUint(b, uint64(pl.capLen), 10)
	if pl.meta {
		b = append(b, `,"skb":"0x`...)
		b = strconv.AppendUint(b, pl.skb, 16)
		b = append(b, `","cpu":`...)
		b = strconv.AppendUint(b, uint64(pl.cpu), 10)
		b = append(b, `,"pid":`...)
		b = strconv.AppendUint(b, uint64(pl.pid), 10)
		b = append(b, `,"comm":`...)
		b = appendJSONString(b, pl.comm)
	}
	k := st.nextPlace
	st.places[k], st.placeSpan[k] = *pl, jsonSpan{start, len(b)}
	st.nextPlace = (k + 1) % len(st.places)
	st.nPlaces = max(st.nPlaces, k+1)
	return b
}

// appendFlow appends the addresses, protocol and ports, copied from an
// earlier hop of the line when one had the same.
func (st *jsonState) appendFlow(b []byte, f *paths.Flow) []byte {
	if st.hasFlow && st.flow == *f {
		return append(b, b[st.flowSpan.start:st.flowSpan.end]...)
	}
	start := len(b)
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
	st.flow, st.flowSpan, st.hasFlow = *f, jsonSpan{start, len(b)}, true
	return b
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
	i := 0
	for i < len(s) && jsonPlain[s[i]] {
		i++
	}
	if i == len(s) {
		// Nearly every string: nothing to escape.
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	return appendJSONStringEscaped(b, s)
}

// jsonPlain marks the bytes a JSON string holds as they are: printable
// ASCII other than '"' and '\\'.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendJSONStringEscaped is appendJSONString for strings with bytes to
// escape or check.
func appendJSONStringEscaped(b []byte, s string) []byte {
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
