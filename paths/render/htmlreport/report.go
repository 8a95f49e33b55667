// Package htmlreport writes the HTML report of packets that package paths
// rebuilds: one self-contained page (styles, script and drawings inline;
// no network, no server) with the path graph, drops by reason, location,
// time, device and namespace, per-hop latency distributions and the
// slowest packets, the most common paths, and a packet explorer with each
// packet's hops, what changed, its stacks and its clones.
//
// Its statistics are those of "analyze stats --json": the page embeds
// render.AppendSummaryJSON's output and draws its tables from it. The
// aggregates count every packet in constant memory; the explorer's
// packets are a bounded sample when the recording is large, which the page
// says.
package htmlreport

import (
	"github.com/pathcap/pathcap/paths"
	"github.com/pathcap/pathcap/paths/render/graph"
)

// Options controls a Report.
type Options struct {
	// TopPaths and DropStacks are those of "analyze stats --json --top N
	// --stacks M": the page's statistics are that command's output.
	TopPaths   int
	DropStacks int
	// MaxPackets bounds the packets the explorer holds (default 2,000);
	// MaxBytes the size of the page (default 9,500,000 bytes): past it,
	// the explorer holds fewer packets.
	MaxPackets int
	MaxBytes   int
	// Collapse says how the path graph is shaped: "auto" (chains merged
	// above graph.CollapseAbove hooks, the default), "yes" or "no";
	// MinCount leaves out the edges taken fewer times.
	Collapse string
	MinCount uint64
	// Inputs are the names of the files, shown in the title; Version is
	// the analyzer's version, shown at the bottom.
	Inputs  []string
	Version string
}

func (o Options) withDefaults() Options {
	if o.TopPaths <= 0 {
		o.TopPaths = 10
	}
	if o.MaxPackets <= 0 {
		o.MaxPackets = 2000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 9_500_000
	}
	if o.Collapse == "" {
		o.Collapse = "auto"
	}
	return o
}

// Limits on what the report keeps beside the summary and the graph.
const (
	maxPlaceDrops = 4096
	maxPathDurs   = 1 << 14
)

type placeDrop struct {
	reason, dev string
	netns       uint32
}

type durAcc struct {
	n        uint64
	sum, max int64
}

// Report collects what the page shows. Add every packet, then WriteHTML.
type Report struct {
	opts       Options
	sum        *paths.Summary
	graph      *graph.Builder
	outcomes   *series // packets by outcome kind, at their last hop
	drops      *series // drops by reason, at their last hop
	placeDrops map[placeDrop]uint64
	nsNames    map[uint32]string
	pathDurs   map[string]*durAcc
	sample     *sampler
	pathBuf    []byte
}

// outcomeOrder is the order in which the page lists outcome kinds.
var outcomeOrder = []paths.OutcomeKind{paths.Delivered, paths.Transmitted, paths.Consumed, paths.Dropped, paths.Unknown}

// New returns an empty Report.
func New(opts Options) *Report {
	opts = opts.withDefaults()
	r := &Report{
		opts:       opts,
		sum:        paths.NewSummary(),
		graph:      graph.NewBuilder(),
		drops:      newSeries(),
		placeDrops: make(map[placeDrop]uint64),
		nsNames:    make(map[uint32]string),
		pathDurs:   make(map[string]*durAcc),
		sample:     newSampler(opts.MaxPackets),
	}
	r.sum.DropStacks = opts.DropStacks
	var names []string
	for _, k := range outcomeOrder {
		names = append(names, k.String())
	}
	r.outcomes = newSeries(names...)
	return r
}

// Add counts one packet. The packet is not kept: what the page shows of it
// is copied.
func (r *Report) Add(p *paths.Packet) {
	r.sum.Add(p)
	r.graph.Add(p)
	r.sample.add(p)
	if len(p.Hops) == 0 {
		return
	}
	r.pathBuf = p.AppendPath(r.pathBuf[:0])
	d := r.pathDurs[string(r.pathBuf)]
	if d == nil && len(r.pathDurs) < maxPathDurs {
		d = &durAcc{}
		r.pathDurs[string(r.pathBuf)] = d
	}
	if d != nil {
		dur := p.Duration()
		d.n++
		d.sum += dur
		d.max = max(d.max, dur)
	}
	if p.Attached {
		return
	}
	end := p.Hops[len(p.Hops)-1].Time
	o := &p.Outcome
	r.outcomes.add(end, r.outcomes.row(o.Kind.String()))
	if o.Kind != paths.Dropped {
		return
	}
	reason := o.Reason
	if reason == "" {
		reason = "(no reason)"
	}
	r.drops.add(end, r.drops.row(reason))
	k := placeDrop{o.Reason, o.Dev, o.NetNS}
	if _, ok := r.placeDrops[k]; !ok && len(r.placeDrops) >= maxPlaceDrops {
		k = placeDrop{otherName, otherName, 0}
	}
	r.placeDrops[k]++
	if _, ok := r.nsNames[o.NetNS]; !ok && len(r.nsNames) < maxPlaceDrops {
		for i := len(p.Hops) - 1; i >= 0; i-- {
			if h := &p.Hops[i]; h.Meta.NetNS == o.NetNS && h.NSName != "" {
				r.nsNames[o.NetNS] = h.NSName
				break
			}
		}
	}
}

// Summary returns the statistics counted so far (those of "analyze stats").
func (r *Report) Summary() *paths.Summary { return r.sum }
