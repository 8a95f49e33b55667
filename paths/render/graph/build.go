package graph

import (
	"cmp"
	"slices"

	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/paths"
)

// Limits on what a Builder keeps, so that its memory does not grow with
// the input: past them, hops count under an "(other)" node and sinks
// under their kind's "(other)" location; transitions between nodes whose
// edge would be new are counted in Graph.EdgesNotKept.
const (
	maxNodes  = 4096
	maxSinks  = 256
	maxEdges  = 8192
	otherName = "(other)"
)

type nodeKey struct {
	kind, hook, dev string
	netns           uint32
}

type sinkKey struct {
	kind      paths.OutcomeKind
	forwarded bool
	reason    string
	location  string
	socket    string
}

type nodeAcc struct {
	node   Node
	posSum float64
}

type edgeKey struct{ from, to int32 }

type edgeAcc struct {
	count, clones, viaClone uint64
	lat                     *Latency
}

type cacheEntry struct {
	key  nodeKey
	node int32
	ok   bool
}

// Builder counts packets into a path graph. Its memory is bounded (see
// the limits above), whatever the number of packets. Its zero value is not
// ready: use NewBuilder.
type Builder struct {
	nodes   []nodeAcc
	byHop   map[nodeKey]int32
	bySink  map[sinkKey]int32
	edges   map[edgeKey]*edgeAcc
	lanes   map[Place]int
	laneAcc []Lane
	sinks   int
	cache   [64]cacheEntry
	packets uint64
	clones  uint64
	other   bool
	notKept uint64
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{
		byHop:  make(map[nodeKey]int32),
		bySink: make(map[sinkKey]int32),
		edges:  make(map[edgeKey]*edgeAcc),
		lanes:  make(map[Place]int),
	}
}

// Add counts one packet's path: its hops, the transitions between them and
// its outcome (an attached clone's own outcome: statistics count clones
// apart from packets, and so does the graph).
func (b *Builder) Add(p *paths.Packet) {
	if len(p.Hops) == 0 {
		return
	}
	if p.Attached {
		b.clones++
	} else {
		b.packets++
	}
	prev := int32(-1)
	for i := range p.Hops {
		h := &p.Hops[i]
		n := b.hopNode(h)
		acc := &b.nodes[n]
		acc.node.Hits++
		acc.posSum += float64(i)
		b.laneAcc[acc.node.Lane].Events++
		if prev < 0 {
			acc.node.Starts++
		} else if e := b.edge(prev, n, true); e != nil {
			e.count++
			if p.Attached {
				e.clones++
			}
			e.lat.Add(h.Time - p.Hops[i-1].Time)
		}
		prev = n
	}
	s := b.sinkNode(p)
	sink := &b.nodes[s].node
	sink.Hits++
	if p.Attached {
		sink.Clones++
	} else {
		sink.Packets++
	}
	if e := b.edge(prev, s, false); e != nil {
		e.count++
		if p.Attached {
			e.clones++
		}
		if p.Outcome.Clone != 0 {
			e.viaClone++
		}
	}
}

// hopNode returns the node of a hop, made on first sight.
func (b *Builder) hopNode(h *paths.Hop) int32 {
	k := nodeKey{kind: h.Meta.Kind, hook: h.HookName(), dev: h.Meta.Dev, netns: h.Meta.NetNS}
	if h.Meta.Hook == "" {
		k.kind = kmeta.KindCapture
	}
	c := &b.cache[(len(k.hook)*31+int(k.hook[len(k.hook)-1])*7+len(k.dev)*3+int(k.netns))&(len(b.cache)-1)]
	if c.ok && c.key == k {
		return c.node
	}
	n, ok := b.byHop[k]
	if !ok {
		pl := Place{Dev: k.dev, NetNS: k.netns, NSName: h.NSName}
		label := kmeta.HookLabel(k.kind, k.hook)
		if k.kind == kmeta.KindCapture {
			label = kmeta.KindCapture
		}
		if len(b.byHop) >= maxNodes {
			b.other = true
			k = nodeKey{hook: otherName}
			pl = Place{Dev: otherName}
			label = otherName
			n, ok = b.byHop[k]
		}
		if !ok {
			n = int32(len(b.nodes))
			b.nodes = append(b.nodes, nodeAcc{node: Node{Kind: Hop, Hooks: []string{label}, Lane: b.lane(pl)}})
			b.byHop[k] = n
		}
	}
	*c = cacheEntry{key: k, node: n, ok: true}
	return n
}

// lane returns the index of a place's lane.
func (b *Builder) lane(pl Place) int {
	key := Place{Dev: pl.Dev, NetNS: pl.NetNS}
	if i, ok := b.lanes[key]; ok {
		if b.laneAcc[i].NSName == "" {
			b.laneAcc[i].NSName = pl.NSName
		}
		return i
	}
	i := len(b.laneAcc)
	b.lanes[key] = i
	b.laneAcc = append(b.laneAcc, Lane{Place: pl})
	return i
}

// sinkNode returns the node of a packet's outcome.
func (b *Builder) sinkNode(p *paths.Packet) int32 {
	o := &p.Outcome
	k := sinkKey{kind: o.Kind}
	switch o.Kind {
	case paths.Dropped:
		k.reason, k.location = o.Reason, o.Location
	case paths.Delivered:
		k.socket = o.Socket
	case paths.Transmitted:
		k.forwarded = forwarded(p)
	}
	n, ok := b.bySink[k]
	if ok {
		return n
	}
	if b.sinks >= maxSinks {
		b.other = true
		k = sinkKey{kind: k.kind, forwarded: k.forwarded, reason: otherName, location: otherName}
		if k.kind == paths.Delivered {
			k = sinkKey{kind: k.kind, socket: otherName}
		}
		if n, ok = b.bySink[k]; ok {
			return n
		}
	}
	n = int32(len(b.nodes))
	b.nodes = append(b.nodes, nodeAcc{node: Node{Kind: Sink, Lane: -1, Outcome: k.kind, Forwarded: k.forwarded,
		Reason: k.reason, Location: k.location, Socket: k.socket}})
	b.bySink[k] = n
	b.sinks++
	return n
}

// forwarded reports whether a packet came in on a device before it was
// queued to leave: its first receive hop is before its first queue or
// transmit hop.
func forwarded(p *paths.Packet) bool {
	for i := range p.Hops {
		switch kmeta.ClassOf(p.Hops[i].Meta.Hook) {
		case kmeta.ClassReceive:
			return true
		case kmeta.ClassQueue, kmeta.ClassTransmit:
			return false
		}
	}
	return false
}

// edge returns the edge from a to b, made on first sight (with a latency
// histogram when timed), or nil past the limit.
func (b *Builder) edge(from, to int32, timed bool) *edgeAcc {
	k := edgeKey{from, to}
	e := b.edges[k]
	if e == nil {
		if len(b.edges) >= maxEdges {
			b.notKept++
			return nil
		}
		e = &edgeAcc{}
		if timed {
			e.lat = &Latency{}
		}
		b.edges[k] = e
	}
	return e
}

// Graph returns the graph counted so far: hop nodes in the order they were
// first seen, then sinks by outcome kind; edges from the most taken. The
// graph shares nothing that later calls to Add change.
func (b *Builder) Graph() *Graph {
	g := &Graph{Packets: b.packets, Clones: b.clones, Other: b.other, EdgesNotKept: b.notKept}
	g.Lanes = slices.Clone(b.laneAcc)
	// Hop nodes keep their order; sinks go last, sorted.
	idx := make([]int, 0, len(b.nodes))
	for i := range b.nodes {
		idx = append(idx, i)
	}
	slices.SortStableFunc(idx, func(x, y int) int {
		a, c := &b.nodes[x].node, &b.nodes[y].node
		if a.Kind != c.Kind {
			return cmp.Compare(a.Kind, c.Kind)
		}
		if a.Kind == Hop {
			return 0
		}
		return compareSinks(a, c)
	})
	newIdx := make([]int, len(b.nodes))
	g.Nodes = make([]Node, len(idx))
	for i, old := range idx {
		newIdx[old] = i
		acc := &b.nodes[old]
		n := acc.node
		n.Hooks = slices.Clone(n.Hooks)
		if n.Hits > 0 && n.Kind == Hop {
			n.Pos = acc.posSum / float64(n.Hits)
		}
		g.Nodes[i] = n
	}
	g.Edges = make([]Edge, 0, len(b.edges))
	for k, e := range b.edges {
		ed := Edge{From: newIdx[k.from], To: newIdx[k.to], Count: e.count, Clones: e.clones, ViaClone: e.viaClone}
		if e.lat != nil {
			l := *e.lat
			ed.Latency = &l
		}
		g.Edges = append(g.Edges, ed)
	}
	sortEdges(g.Edges)
	return g
}

// compareSinks orders sinks: delivered, transmitted, forwarded, consumed,
// dropped, unknown; then by name.
func compareSinks(a, b *Node) int {
	if c := cmp.Compare(sinkRank(a), sinkRank(b)); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Reason, b.Reason); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Location, b.Location); c != 0 {
		return c
	}
	return cmp.Compare(a.Socket, b.Socket)
}

func sinkRank(n *Node) int {
	switch n.Outcome {
	case paths.Delivered:
		return 0
	case paths.Transmitted:
		if n.Forwarded {
			return 2
		}
		return 1
	case paths.Consumed:
		return 3
	case paths.Dropped:
		return 4
	}
	return 5
}

// sortEdges orders edges from the most taken, then by their nodes.
func sortEdges(es []Edge) {
	slices.SortFunc(es, func(a, b Edge) int {
		if a.Count != b.Count {
			return cmp.Compare(b.Count, a.Count)
		}
		if a.From != b.From {
			return cmp.Compare(a.From, b.From)
		}
		return cmp.Compare(a.To, b.To)
	})
}
