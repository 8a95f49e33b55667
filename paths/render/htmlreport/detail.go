package htmlreport

import (
	"encoding/json"
	"strings"

	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/paths"
	"github.com/pathcap/pathcap/paths/render"
)

// detail is what the page shows of one packet in the explorer: a copy of
// what it needs, since a paths.Packet is reused once handed over.
type detail struct {
	id, parent    uint64
	children      []uint64
	start, dur    int64
	outcome       paths.Outcome
	text          string // render.OutcomeText
	flow          paths.Flow
	hops          []hopDetail
	hopsNotKept   int
	clones        []*detail
	clonesNotKept int
}

type hopDetail struct {
	time     int64
	kind     string
	hook     string
	dev      string
	netns    uint32
	nsName   string
	length   uint32
	changed  paths.Change
	reason   string
	location string
	comm     string
	cpu      uint32
	flow     paths.Flow // when addresses, ports or protocol changed
	stack    *paths.Stack
	lost     bool
	derived  []string
}

// maxDetailHops is the most hops a packet's detail keeps; maxClones the
// most clones.
const (
	maxDetailHops = 256
	maxClones     = 16
)

// newDetail copies what the page shows of p.
func newDetail(p *paths.Packet) *detail {
	d := &detail{id: p.ID, parent: p.Parent, start: p.Start(), dur: p.Duration(), outcome: p.Outcome, hopsNotKept: p.DroppedHops}
	d.outcome.Stack = nil
	if len(p.Children) > 0 {
		d.children = append([]uint64(nil), p.Children...)
	}
	n := min(len(p.Hops), maxDetailHops)
	d.hopsNotKept += len(p.Hops) - n
	d.hops = make([]hopDetail, n)
	for i := range n {
		h := &p.Hops[i]
		if !d.flow.Src.IsValid() && h.Flow.Src.IsValid() {
			d.flow = h.Flow
		}
		hd := &d.hops[i]
		*hd = hopDetail{time: h.Time, kind: h.Meta.Kind, hook: h.Meta.Hook, dev: h.Meta.Dev, netns: h.Meta.NetNS, nsName: h.NSName,
			length: h.Len(), changed: h.Changed, reason: h.Meta.Reason, location: h.Meta.Location, comm: h.Meta.Comm,
			cpu: h.Meta.CPU, stack: h.Stack, lost: h.Meta.StackLost}
		if h.Changed&(paths.ChangedAddr|paths.ChangedPort|paths.ChangedProto) != 0 {
			hd.flow = h.Flow
		}
		if h.Stack != nil {
			hd.derived = p.Derived(i)
		}
	}
	return d
}

// label returns the hop's hook as "KIND:NAME" (paths.Hop.Label).
func (h *hopDetail) label() string {
	if h.hook == "" {
		return kmeta.KindCapture
	}
	return kmeta.HookLabel(h.kind, h.hook)
}

// size estimates the bytes the detail takes in the page.
func (d *detail) size() int {
	n := 400
	for i := range d.hops {
		h := &d.hops[i]
		n += 90 + len(h.kind) + len(h.hook) + len(h.dev) + len(h.nsName) + len(h.reason) + len(h.location) + len(h.comm)
		for _, f := range h.derived {
			n += len(f) + 3
		}
	}
	for _, c := range d.clones {
		n += c.size()
	}
	return n
}

// packetJSON is a packet of the page's explorer data (docs/FORMAT.md,
// "analyze html").
type packetJSON struct {
	ID       uint64        `json:"id"`
	Parent   uint64        `json:"parent,omitempty"`
	Children []uint64      `json:"children,omitempty"`
	T        int64         `json:"t"`
	Dur      int64         `json:"dur"`
	Kind     string        `json:"kind"`
	Reason   string        `json:"reason,omitempty"`
	Loc      string        `json:"loc,omitempty"`
	Text     string        `json:"text"`
	Flow     string        `json:"flow,omitempty"`
	Src      string        `json:"src,omitempty"`
	Dst      string        `json:"dst,omitempty"`
	SPort    uint16        `json:"sport,omitempty"`
	DPort    uint16        `json:"dport,omitempty"`
	Proto    string        `json:"proto,omitempty"`
	Class    string        `json:"class,omitempty"`
	Slow     bool          `json:"slow,omitempty"`
	More     int           `json:"more,omitempty"`
	Hops     []any         `json:"hops"`
	Clones   []*packetJSON `json:"clones,omitempty"`
	MoreCl   int           `json:"more_clones,omitempty"`
}

// stackTable numbers the stacks of the details that are written.
type stackTable struct {
	num    map[*paths.Stack]int
	stacks []*paths.Stack
}

func (t *stackTable) id(s *paths.Stack) int {
	if s == nil {
		return 0
	}
	if n, ok := t.num[s]; ok {
		return n
	}
	if t.num == nil {
		t.num = make(map[*paths.Stack]int)
	}
	t.stacks = append(t.stacks, s)
	t.num[s] = len(t.stacks)
	return len(t.stacks)
}

// frames returns the stacks' frames, by number (from 1).
func (t *stackTable) frames() map[int][]string {
	out := make(map[int][]string, len(t.stacks))
	for i, s := range t.stacks {
		out[i+1] = s.Frames
	}
	return out
}

// json returns the packet's explorer object; first is the time its start
// is counted from.
func (d *detail) json(first int64, st *stackTable) *packetJSON {
	o := &d.outcome
	pj := &packetJSON{ID: d.id, Parent: d.parent, Children: d.children, T: d.start - first, Dur: d.dur,
		Kind: o.Kind.String(), Reason: o.Reason, Loc: o.Location, Text: render.OutcomeText(o), More: d.hopsNotKept, MoreCl: d.clonesNotKept}
	if o.Kind != paths.Dropped {
		pj.Reason = ""
	}
	if d.flow.Src.IsValid() {
		pj.Flow = render.FlowText(&d.flow)
		pj.Src, pj.Dst = d.flow.Src.String(), d.flow.Dst.String()
		if d.flow.HasPorts {
			pj.SPort, pj.DPort = d.flow.SrcPort, d.flow.DstPort
		}
		pj.Proto = protoName(&d.flow)
	}
	t0 := int64(0)
	if len(d.hops) > 0 {
		t0 = d.hops[0].time
	}
	pj.Hops = make([]any, len(d.hops))
	for i := range d.hops {
		h := &d.hops[i]
		flow := ""
		if h.flow.Src.IsValid() || h.flow.EtherType != 0 {
			flow = render.FlowText(&h.flow)
		}
		lost := 0
		if h.lost {
			lost = 1
		}
		derived := h.derived
		if derived == nil {
			derived = []string{}
		}
		// [dt, hook, dev, netns, netns name, len, changed, reason,
		// location, stack, stack lost, comm, cpu, flow, derived]
		pj.Hops[i] = []any{h.time - t0, h.label(), h.dev, h.netns, h.nsName, h.length, h.changed.String(), h.reason,
			h.location, st.id(h.stack), lost, h.comm, h.cpu, flow, derived}
	}
	for _, c := range d.clones {
		pj.Clones = append(pj.Clones, c.json(first, st))
	}
	return pj
}

// protoName returns the transport protocol's name ("UDP"), from the
// flow's text.
func protoName(f *paths.Flow) string {
	t := render.FlowText(f)
	if i := strings.LastIndexByte(t, ' '); i >= 0 && !strings.HasPrefix(t[i+1:], "0x") {
		if strings.HasSuffix(t[:i], " proto") {
			return "proto " + t[i+1:]
		}
		return t[i+1:]
	}
	return ""
}

// marshal encodes v as JSON safe to put inside a <script> element: <, >
// and & are escaped (encoding/json does it), and so are U+2028 and U+2029.
func marshal(v any) ([]byte, error) {
	return json.Marshal(v)
}
