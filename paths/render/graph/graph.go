// Package graph draws the path graph of packets: the hooks and kernel
// functions they passed as nodes, grouped by device and network namespace
// (lanes), edges weighted by how many packets took them, and their
// outcomes as sinks. A Builder counts the packets that package paths
// rebuilds (in constant memory); Collapse merges chains of functions that
// every packet passes in one piece, Prune drops rare edges; WriteDOT writes
// the graph for Graphviz, and Layout with WriteSVG draws it without any
// external tool (a layered layout, one lane per device and namespace).
package graph

import (
	"math"
	"math/bits"
	"strconv"

	"github.com/pathcap/pathcap/paths"
)

// NodeKind says what a node stands for.
type NodeKind uint8

// Node kinds.
const (
	// Hop is a hook (tracepoint or kernel function) at a device in a
	// network namespace, or a chain of them (Collapse).
	Hop NodeKind = iota
	// Sink is an outcome: where packets' paths ended.
	Sink
)

// Place is a device in a network namespace.
type Place struct {
	// Dev is the device name ("" for hooks that saw no device).
	Dev string
	// NetNS is the namespace inode (0 unknown), NSName its name when the
	// recording knows it.
	NetNS  uint32
	NSName string
}

// Lane is a place of the graph with the events seen there.
type Lane struct {
	Place
	Events uint64
}

// Sink kinds beyond paths.OutcomeKind: a transmitted packet that was first
// seen at a receive hook was forwarded (it came in on a device before it
// was queued to leave); the graph shows it apart, statistics count it as
// transmitted.

// Node is a node of the graph.
type Node struct {
	Kind NodeKind
	// Hooks are the hook labels ("tp:net_dev_queue", "kprobe:ip_rcv") of
	// a Hop node: one, or the chain Collapse merged, in path order.
	// Steps are the edges inside such a chain (len(Hooks)-1 of them).
	Hooks []string
	Steps []Step
	// Lane is the index of the node's place in Graph.Lanes (-1 for
	// sinks).
	Lane int
	// Outcome of a Sink node, and what distinguishes sinks of one kind:
	// Forwarded (transmitted only), Reason and Location (dropped), Socket
	// (delivered).
	Outcome   paths.OutcomeKind
	Forwarded bool
	Reason    string
	Location  string
	Socket    string
	// Hits counts the times paths reached the node (a path that loops
	// reaches it more than once); Starts the paths that begin there.
	Hits   uint64
	Starts uint64
	// Packets and Clones count, for a sink, the packets and the attached
	// clones whose paths ended there.
	Packets, Clones uint64
	// Pos is the mean index of the node's hops in their paths: the order
	// in which packets reach nodes.
	Pos float64
}

// Step is an edge inside a collapsed chain.
type Step struct {
	From, To string
	Count    uint64
	Latency  *Latency
}

// Label returns the node's name: the hook's name for a hop (without its
// kind), "first … last" for a chain, the outcome for a sink
// ("dropped: NO_SOCKET").
func (n *Node) Label() string {
	if n.Kind == Sink {
		return n.SinkName()
	}
	first := hookName(n.Hooks[0])
	if len(n.Hooks) == 1 {
		return first
	}
	return first + " … " + hookName(n.Hooks[len(n.Hooks)-1])
}

// SinkName returns a sink's outcome in words: "dropped: NO_SOCKET",
// "delivered to raw socket", "transmitted", "forwarded", "consumed",
// "unknown".
func (n *Node) SinkName() string {
	switch {
	case n.Outcome == paths.Dropped && n.Reason != "":
		return "dropped: " + n.Reason
	case n.Outcome == paths.Dropped:
		return "dropped (no reason)"
	case n.Outcome == paths.Transmitted && n.Forwarded:
		return "forwarded"
	case n.Outcome == paths.Delivered && n.Socket != "":
		return "delivered to " + n.Socket + " socket"
	}
	return n.Outcome.String()
}

// ClassName returns the CSS class of a sink's kind ("dropped",
// "delivered", "transmitted", "forwarded", "consumed", "unknown"), or
// "hop".
func (n *Node) ClassName() string {
	switch {
	case n.Kind == Hop:
		return "hop"
	case n.Outcome == paths.Transmitted && n.Forwarded:
		return "forwarded"
	}
	return n.Outcome.String()
}

// hookName returns the name part of a "KIND:NAME" label.
func hookName(label string) string {
	for i := 0; i < len(label); i++ {
		if label[i] == ':' {
			return label[i+1:]
		}
	}
	return label
}

// Edge is a transition between two nodes, or from a path's last hop to
// its outcome.
type Edge struct {
	From, To int
	// Count is the number of times paths took the edge; Clones those of
	// attached clones; ViaClone, for an edge to a sink, the packets whose
	// outcome a clone decided.
	Count, Clones, ViaClone uint64
	// Latency is the time between the two hops (nil for edges to sinks).
	Latency *Latency
}

// Graph is the path graph: its nodes (hops, then sinks), edges and lanes.
type Graph struct {
	Nodes []Node
	Edges []Edge
	Lanes []Lane
	// Packets and Clones count the packets and attached clones drawn.
	Packets, Clones uint64
	// Other reports that the limits on distinct nodes or edges were
	// reached: the hops past them are drawn as "(other)" nodes,
	// EdgesNotKept counts transitions between nodes whose edges were not
	// kept.
	Other        bool
	EdgesNotKept uint64
	// Collapsed counts the hop nodes Collapse merged into chains,
	// Pruned the edges Prune left out.
	Collapsed, Pruned int
}

// HopNodes returns the number of hop nodes.
func (g *Graph) HopNodes() int {
	n := 0
	for i := range g.Nodes {
		if g.Nodes[i].Kind == Hop {
			n++
		}
	}
	return n
}

// Latency counts durations in log-linear buckets (8 per power of two), so
// that its quantiles are within about 12% of the true value in 2 KB.
type Latency struct {
	counts [61 * 8]uint32
	n      uint64
	sum    float64
	max    int64
}

func latBucket(v int64) int {
	if v < 8 {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 4 // v >> e is in [8, 16)
	return (e+1)*8 + int(uint64(v)>>e) - 8
}

func latLow(b int) int64 {
	if b < 8 {
		return int64(b)
	}
	e := b/8 - 1
	return int64(b%8+8) << e
}

// Add counts a duration in ns.
func (l *Latency) Add(v int64) {
	b := &l.counts[latBucket(v)]
	if *b != math.MaxUint32 {
		*b++
	}
	l.n++
	l.sum += float64(v)
	if v > l.max {
		l.max = v
	}
}

// merge adds the counts of o.
func (l *Latency) merge(o *Latency) {
	for i, c := range o.counts {
		l.counts[i] = uint32(min(uint64(l.counts[i])+uint64(c), math.MaxUint32))
	}
	l.n += o.n
	l.sum += o.sum
	l.max = max(l.max, o.max)
}

// Count returns the number of durations.
func (l *Latency) Count() uint64 { return l.n }

// Max returns the longest duration.
func (l *Latency) Max() int64 { return l.max }

// Mean returns the mean duration.
func (l *Latency) Mean() float64 {
	if l.n == 0 {
		return 0
	}
	return l.sum / float64(l.n)
}

// Quantile returns the q-quantile (0..1): the lower bound of its bucket,
// never above Max.
func (l *Latency) Quantile(q float64) int64 {
	var total uint64
	for _, c := range l.counts {
		total += uint64(c)
	}
	if total == 0 {
		return 0
	}
	rank := max(uint64(math.Ceil(q*float64(total))), 1)
	var seen uint64
	for b, c := range l.counts {
		seen += uint64(c)
		if seen >= rank {
			return min(latLow(b), l.max)
		}
	}
	return l.max
}

// placeTitle returns a place's device ("(no device)" when none) and its
// namespace ("netns NAME (INODE)").
func placeTitle(p Place) (dev, ns string) {
	dev = p.Dev
	if dev == "" {
		dev = "(no device)"
	}
	switch {
	case p.NetNS == 0 && p.NSName == "":
		ns = "netns unknown"
	case p.NSName != "":
		ns = "netns " + p.NSName + " (" + strconv.FormatUint(uint64(p.NetNS), 10) + ")"
	default:
		ns = "netns " + strconv.FormatUint(uint64(p.NetNS), 10)
	}
	return dev, ns
}
