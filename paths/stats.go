package paths

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"strings"

	"github.com/pathcap/pathcap/kmeta"
)

// Histogram counts durations in log-linear buckets (16 per power of two),
// so quantiles are within about 6% of the true value in constant memory.
type Histogram struct {
	counts [64 * 16]uint64
	n      uint64
	max    int64
	sum    float64
}

func bucketOf(v int64) int {
	if v < 16 {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 5 // v >> e is in [16, 32)
	return (e+1)*16 + int(uint64(v)>>e) - 16
}

func bucketLow(b int) int64 {
	if b < 16 {
		return int64(b)
	}
	e := b/16 - 1
	return int64(b%16+16) << e
}

// Add counts one duration in ns.
func (h *Histogram) Add(v int64) {
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	if v > h.max {
		h.max = v
	}
}

// Count returns the number of durations added.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest duration added.
func (h *Histogram) Max() int64 { return h.max }

// Mean returns the average duration.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns the q-quantile (0..1): the lower bound of the bucket
// holding it, never above Max.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketLow(b), h.max)
		}
	}
	return h.max
}

// Count is a name with a count.
type Count struct {
	Name  string
	Count uint64
}

// DropStat is one drop reason's count and where it happened.
type DropStat struct {
	Reason    string
	Count     uint64
	Locations []Count // most frequent first
	// Programs are the traced BPF programs that shot these drops
	// ("tc program NAME", record --trace-tc), most frequent first; drops
	// no program decided are not counted here.
	Programs []Count
	// Chains are the netfilter places that dropped these packets:
	// "nftables table inet T chain C" (the base chain whose verdict was
	// drop) or "netfilter hook ip input" where no chain is known, most
	// frequent first; drops no netfilter place decided are not counted.
	Chains []Count
	// Stacks are the most frequent kernel stacks of the drops, at most
	// Summary.DropStacks of them, most frequent first; StackLost counts
	// the drops whose stack the kernel could not capture. Both only when
	// Summary.DropStacks is set.
	Stacks    []StackCount
	StackLost uint64
}

// StackCount is a kernel stack (its frames, innermost first) with a count.
// Stacks past the limit of distinct stacks are counted under one entry
// whose only frame is "(other)".
type StackCount struct {
	Frames []string
	Count  uint64
}

// HopLatency is the latency between two consecutive hooks.
type HopLatency struct {
	From, To string
	Hist     *Histogram
}

// Place is a device in a network namespace, with its event count.
type Place struct {
	Dev    string
	NetNS  uint32
	NSName string
	Events uint64
}

// limits on the distinct values a Summary keeps, so that its memory does
// not grow with the input.
const (
	maxDistinctPaths     = 1 << 14
	maxDistinctPairs     = 1 << 12
	maxDistinctLocations = 1 << 12
	maxDistinctPlaces    = 1 << 14
	maxDistinctStacks    = 1 << 12
	otherName            = "(other)"
)

// Summary accumulates statistics over packets.
type Summary struct {
	// Packets counts packets; Clones the clones attached to one of them
	// (Packet.Attached), whose fates are part of their packets' outcomes.
	Packets uint64
	Clones  uint64
	Events  uint64
	// LostEvents and SkippedEvents are the recording's events lost to a
	// full ring buffer and hits left out by the in-kernel rate limit
	// (Input.LostEvents, Input.SkippedEvents): set by the caller.
	LostEvents    uint64
	SkippedEvents uint64
	First         int64 // earliest hop time
	Last          int64 // latest hop time
	outcomes      [len(outcomeNames)]uint64
	viaClone      [len(outcomeNames)]uint64
	cloneOut      [len(outcomeNames)]uint64
	drops         map[string]*dropAcc
	paths         map[string]*uint64
	pairs         map[[2]string]*Histogram
	places        map[placeKey]*Place
	// pathBuf builds a packet's path; pairCache and placeCache are small
	// caches in front of pairs and places, looked up for every hop.
	pathBuf    []byte
	pairCache  [64]pairEntry
	placeCache [16]placeEntry
	locations  int
	stacks     int
	// DropStacks, when set, counts the kernel stacks of drops: the
	// DropStacks most frequent per drop reason are listed
	// (DropStat.Stacks).
	DropStacks int
}

type dropAcc struct {
	count     uint64
	locs      map[string]uint64
	progs     map[string]uint64 // "tc program NAME": drops it shot
	chains    map[string]uint64 // "nftables table F T chain C": drops it decided
	stacks    map[string]*stackAcc
	stackLost uint64
}

type stackAcc struct {
	frames []string
	count  uint64
}

var otherStack = []string{otherName}

type placeKey struct {
	dev   string
	netns uint32
}

// NewSummary returns an empty Summary.
func NewSummary() *Summary {
	return &Summary{
		drops:  make(map[string]*dropAcc),
		paths:  make(map[string]*uint64),
		pairs:  make(map[[2]string]*Histogram),
		places: make(map[placeKey]*Place),
	}
}

// Add counts one packet.
func (s *Summary) Add(p *Packet) {
	if p.Attached {
		s.Clones++
		s.cloneOut[p.Outcome.Kind]++
	} else {
		s.Packets++
		s.addOutcome(p)
	}
	s.Events += uint64(len(p.Hops) + p.DroppedHops)
	if len(p.Hops) > 0 {
		if s.First == 0 || p.Hops[0].Time < s.First {
			s.First = p.Hops[0].Time
		}
		if t := p.Hops[len(p.Hops)-1].Time; t > s.Last {
			s.Last = t
		}
	}
	s.pathBuf = p.AppendPath(s.pathBuf[:0])
	c := s.paths[string(s.pathBuf)]
	if c == nil {
		path := string(s.pathBuf)
		if len(s.paths) >= maxDistinctPaths {
			path = otherName
			c = s.paths[path]
		}
		if c == nil {
			c = new(uint64)
			s.paths[path] = c
		}
	}
	*c++
	for i := range p.Hops {
		h := &p.Hops[i]
		s.place(h).Events++
		if i == 0 {
			continue
		}
		s.pair(p.Hops[i-1].HookName(), h.HookName()).Add(h.Time - p.Hops[i-1].Time)
	}
}

type pairEntry struct {
	from, to string
	hist     *Histogram
}

type placeEntry struct {
	dev   string
	netns uint32
	place *Place
}

// pair returns the latency histogram from hook a to hook b (names are
// never empty).
func (s *Summary) pair(a, b string) *Histogram {
	e := &s.pairCache[(len(a)*7+len(b)*13+int(a[len(a)-1])+int(b[len(b)-1])*3)&(len(s.pairCache)-1)]
	if e.hist != nil && e.from == a && e.to == b {
		return e.hist
	}
	pk := [2]string{a, b}
	hist := s.pairs[pk]
	if hist == nil {
		if len(s.pairs) >= maxDistinctPairs {
			pk = [2]string{otherName, otherName}
			hist = s.pairs[pk]
		}
		if hist == nil {
			hist = &Histogram{}
			s.pairs[pk] = hist
		}
	}
	*e = pairEntry{a, b, hist}
	return hist
}

// place returns the Place of a hop.
func (s *Summary) place(h *Hop) *Place {
	e := &s.placeCache[(int(h.Meta.NetNS)^len(h.Meta.Dev)*5)&(len(s.placeCache)-1)]
	if e.place != nil && e.netns == h.Meta.NetNS && e.dev == h.Meta.Dev {
		return e.place
	}
	k := placeKey{h.Meta.Dev, h.Meta.NetNS}
	pl := s.places[k]
	if pl == nil {
		if len(s.places) >= maxDistinctPlaces {
			k = placeKey{otherName, 0}
			pl = s.places[k]
		}
		if pl == nil {
			pl = &Place{Dev: k.dev, NetNS: k.netns, NSName: h.NSName}
			s.places[k] = pl
		}
	}
	*e = placeEntry{h.Meta.Dev, h.Meta.NetNS, pl}
	return pl
}

// addDropStack counts the stack of a drop.
func (s *Summary) addDropStack(d *dropAcc, o *Outcome) {
	switch {
	case o.StackLost:
		d.stackLost++
		return
	case o.Stack == nil:
		return
	}
	if d.stacks == nil {
		d.stacks = make(map[string]*stackAcc)
	}
	key := o.Stack.text
	a := d.stacks[key]
	if a == nil {
		if s.stacks >= maxDistinctStacks {
			key = otherName
			a = d.stacks[key]
		}
		if a == nil {
			a = &stackAcc{frames: o.Stack.Frames}
			if key == otherName {
				a.frames = otherStack
			} else {
				s.stacks++
			}
			d.stacks[key] = a
		}
	}
	a.count++
}

// Outcomes returns the count of each outcome kind, most frequent first
// (kinds with no packet left out).
func (s *Summary) Outcomes() []Count { return kindCounts(&s.outcomes) }

// kindCounts returns the non-zero counts of a per-kind array, most
// frequent first.
func kindCounts(counts *[len(outcomeNames)]uint64) []Count {
	var out []Count
	for k, n := range counts {
		if n > 0 {
			out = append(out, Count{OutcomeKind(k).String(), n})
		}
	}
	sortCounts(out)
	return out
}

// addOutcome counts the outcome of a packet (not of an attached clone).
func (s *Summary) addOutcome(p *Packet) {
	s.outcomes[p.Outcome.Kind]++
	if p.Outcome.Clone != 0 {
		s.viaClone[p.Outcome.Kind]++
	}
	if p.Outcome.Kind == Dropped {
		d := s.drops[p.Outcome.Reason]
		if d == nil {
			d = &dropAcc{locs: make(map[string]uint64)}
			s.drops[p.Outcome.Reason] = d
		}
		d.count++
		loc := p.Outcome.Location
		if _, ok := d.locs[loc]; !ok && s.locations >= maxDistinctLocations {
			loc = otherName
		} else if !ok {
			s.locations++
		}
		d.locs[loc]++
		if o := &p.Outcome; o.Program != "" {
			name := kmeta.ProgLabel(o.ProgType) + " program " + o.Program
			if _, ok := d.progs[name]; !ok && s.locations >= maxDistinctLocations {
				name = otherName
			} else if !ok {
				s.locations++
			}
			if d.progs == nil {
				d.progs = make(map[string]uint64)
			}
			d.progs[name]++
		}
		if name := netfilterName(&p.Outcome); name != "" {
			if _, ok := d.chains[name]; !ok && s.locations >= maxDistinctLocations {
				name = otherName
			} else if !ok {
				s.locations++
			}
			if d.chains == nil {
				d.chains = make(map[string]uint64)
			}
			d.chains[name]++
		}
		if s.DropStacks > 0 {
			s.addDropStack(d, &p.Outcome)
		}
	}
}

// ViaClone returns, by outcome kind, the number of packets whose outcome
// one of their clones decided (delivered through a clone while their own
// skb was dropped or consumed), most frequent first.
func (s *Summary) ViaClone() []Count { return kindCounts(&s.viaClone) }

// CloneOutcomes returns the outcomes of the attached clones (see
// Packet.Attached) by kind, most frequent first.
func (s *Summary) CloneOutcomes() []Count { return kindCounts(&s.cloneOut) }

// Drops returns the drop reasons, most frequent first, with their
// locations.
func (s *Summary) Drops() []DropStat {
	var out []DropStat
	for reason, d := range s.drops {
		ds := DropStat{Reason: reason, Count: d.count}
		for loc, n := range d.locs {
			ds.Locations = append(ds.Locations, Count{loc, n})
		}
		sortCounts(ds.Locations)
		for prog, n := range d.progs {
			ds.Programs = append(ds.Programs, Count{prog, n})
		}
		sortCounts(ds.Programs)
		for chain, n := range d.chains {
			ds.Chains = append(ds.Chains, Count{chain, n})
		}
		sortCounts(ds.Chains)
		if s.DropStacks > 0 {
			ds.StackLost = d.stackLost
			keys := make([]string, 0, len(d.stacks))
			for k := range d.stacks {
				keys = append(keys, k)
			}
			slices.SortFunc(keys, func(a, b string) int {
				if x, y := d.stacks[a].count, d.stacks[b].count; x != y {
					return cmp.Compare(y, x)
				}
				return strings.Compare(a, b)
			})
			for _, k := range keys[:min(len(keys), s.DropStacks)] {
				a := d.stacks[k]
				ds.Stacks = append(ds.Stacks, StackCount{Frames: a.frames, Count: a.count})
			}
		}
		out = append(out, ds)
	}
	slices.SortFunc(out, func(a, b DropStat) int {
		if a.Count != b.Count {
			return cmp.Compare(b.Count, a.Count)
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	return out
}

// Paths returns the n most common hook sequences (all if n <= 0).
func (s *Summary) Paths(n int) []Count {
	out := make([]Count, 0, len(s.paths))
	for p, c := range s.paths {
		out = append(out, Count{p, *c})
	}
	sortCounts(out)
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// Latencies returns the latency between consecutive hooks, most frequent
// pairs first.
func (s *Summary) Latencies() []HopLatency {
	out := make([]HopLatency, 0, len(s.pairs))
	for k, h := range s.pairs {
		out = append(out, HopLatency{From: k[0], To: k[1], Hist: h})
	}
	slices.SortFunc(out, func(a, b HopLatency) int {
		if a.Hist.n != b.Hist.n {
			return cmp.Compare(b.Hist.n, a.Hist.n)
		}
		if c := strings.Compare(a.From, b.From); c != 0 {
			return c
		}
		return strings.Compare(a.To, b.To)
	})
	return out
}

// Places returns the devices and namespaces seen, most events first.
func (s *Summary) Places() []Place {
	out := make([]Place, 0, len(s.places))
	for _, p := range s.places {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Place) int {
		if a.Events != b.Events {
			return cmp.Compare(b.Events, a.Events)
		}
		if a.NetNS != b.NetNS {
			return cmp.Compare(uint64(a.NetNS), uint64(b.NetNS))
		}
		return strings.Compare(a.Dev, b.Dev)
	})
	return out
}

func sortCounts(c []Count) {
	slices.SortFunc(c, func(a, b Count) int {
		if a.Count != b.Count {
			return cmp.Compare(b.Count, a.Count)
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// netfilterName names the netfilter place that dropped o for Drops:
// "nftables table inet T chain C", "netfilter hook ip input", or "".
func netfilterName(o *Outcome) string {
	switch {
	case o.NFTChain != "" || o.NFTTable != "":
		name := "nftables table "
		if o.NFTFamily != "" {
			name += o.NFTFamily + " "
		}
		return name + o.NFTTable + " chain " + o.NFTChain
	case o.NFHook != "":
		name := "netfilter hook "
		if o.NFFamily != "" {
			name += o.NFFamily + " "
		}
		return name + o.NFHook
	}
	return ""
}
