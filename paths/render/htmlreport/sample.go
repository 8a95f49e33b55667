package htmlreport

import (
	"cmp"
	"container/heap"
	"math/rand/v2"
	"slices"

	"github.com/pathcap/pathcap/paths"
)

// The explorer's packets are a sample when a recording is large: a
// uniform random sample (reservoir sampling) of each class of packets (an
// outcome, or a drop reason), so that rare outcomes are shown however
// common the others are, plus the slowest packets. Attached clones come
// with their packet. While reading, each class keeps at most twice its
// share of the page's packets, so memory is bounded by the page's size,
// not by the input's.

// maxClasses bounds the classes sampled apart; maxSlow is how many of the
// slowest packets are kept.
const (
	maxClasses   = 12
	maxClassKeys = 1024
	maxSlow      = 20
	otherName    = "(other)"
)

type unit struct {
	d       *detail
	class   int
	inClass bool
	inSlow  bool
}

type sampleClass struct {
	name  string
	seen  uint64
	units []*unit
}

type sampler struct {
	max      int
	rng      *rand.Rand
	classes  []*sampleClass
	classIdx map[string]int
	byKey    map[classKey]int
	byID     map[uint64]*unit
	slow     slowHeap
	seen     uint64
	clones   uint64
}

func newSampler(maxPackets int) *sampler {
	return &sampler{max: max(maxPackets, 1), rng: rand.New(rand.NewPCG(0x70617468, 0x636170)), classIdx: make(map[string]int), byKey: make(map[classKey]int), byID: make(map[uint64]*unit)}
}

// capacity is what each class may hold while reading.
func (s *sampler) capacity() int { return max(1, 2*s.max/max(len(s.classes), 1)) }

// className returns the sampling class of an outcome: its kind, and for
// drops the reason.
func className(o *paths.Outcome) string {
	if o.Kind != paths.Dropped {
		return o.Kind.String()
	}
	if o.Reason == "" {
		return "dropped (no reason)"
	}
	return "dropped: " + o.Reason
}

func (s *sampler) class(p *paths.Packet) int {
	key := classKey{p.Outcome.Kind, ""}
	if key.kind == paths.Dropped {
		key.reason = p.Outcome.Reason
	}
	if i, ok := s.byKey[key]; ok {
		return i
	}
	i := s.newClass(className(&p.Outcome))
	if len(s.byKey) < maxClassKeys {
		s.byKey[key] = i
	}
	return i
}

// classKey identifies a class without building its name.
type classKey struct {
	kind   paths.OutcomeKind
	reason string
}

// newClass returns the index of the named class, made on first use.
func (s *sampler) newClass(name string) int {
	if i, ok := s.classIdx[name]; ok {
		return i
	}
	if len(s.classes) >= maxClasses-1 && name != otherName {
		if i, ok := s.classIdx[otherName]; ok {
			return i
		}
		name = otherName
	}
	i := len(s.classes)
	s.classIdx[name] = i
	s.classes = append(s.classes, &sampleClass{name: name})
	// A new class: every class's share shrinks; a random part of a
	// uniform sample is a uniform sample.
	cp := s.capacity()
	for _, c := range s.classes {
		for len(c.units) > cp {
			j := s.rng.IntN(len(c.units))
			u := c.units[j]
			c.units[j] = c.units[len(c.units)-1]
			c.units = c.units[:len(c.units)-1]
			u.inClass = false
			s.release(u)
		}
	}
	return i
}

func (s *sampler) newUnit(p *paths.Packet, class int) *unit {
	u := &unit{d: newDetail(p), class: class}
	s.byID[p.ID] = u
	return u
}

// release forgets a unit that is in neither the sample nor the slowest.
func (s *sampler) release(u *unit) {
	if !u.inClass && !u.inSlow && s.byID[u.d.id] == u {
		delete(s.byID, u.d.id)
	}
}

// add offers a packet to the sample.
func (s *sampler) add(p *paths.Packet) {
	if p.Attached {
		s.clones++
		s.addClone(p)
		return
	}
	s.seen++
	ci := s.class(p)
	c := s.classes[ci]
	c.seen++
	var u *unit
	if cp := s.capacity(); len(c.units) < cp {
		u = s.newUnit(p, ci)
		u.inClass = true
		c.units = append(c.units, u)
	} else if j := s.rng.Uint64N(c.seen); j < uint64(len(c.units)) {
		old := c.units[j]
		old.inClass = false
		s.release(old)
		u = s.newUnit(p, ci)
		u.inClass = true
		c.units[j] = u
	}
	if len(s.slow) < maxSlow || p.Duration() > s.slow[0].d.dur {
		if u == nil {
			u = s.newUnit(p, ci)
		}
		u.inSlow = true
		if len(s.slow) < maxSlow {
			heap.Push(&s.slow, u)
		} else {
			old := s.slow[0]
			old.inSlow = false
			s.release(old)
			s.slow[0] = u
			heap.Fix(&s.slow, 0)
		}
	}
}

// addClone adds an attached clone to its packet's detail when that packet
// is kept.
func (s *sampler) addClone(p *paths.Packet) {
	u := s.byID[p.Parent]
	if u == nil || !slices.Contains(u.d.children, p.ID) {
		return
	}
	if len(u.d.clones) >= maxClones {
		u.d.clonesNotKept++
		return
	}
	u.d.clones = append(u.d.clones, newDetail(p))
}

// classCount is a class with the packets seen and shown.
type classCount struct {
	Name        string
	Seen, Shown uint64
}

// choose returns the packets the page shows, in the order they are to be
// kept when the page is short of room: the slowest first, then the classes
// in turn, each from its random order, each class getting an equal share
// of the max (what a small class leaves goes to the others).
func (s *sampler) choose() []*unit {
	var out []*unit
	slow := slices.Clone(s.slow)
	slices.SortFunc(slow, func(a, b *unit) int { return cmp.Compare(b.d.dur, a.d.dur) })
	taken := make(map[*unit]bool)
	for _, u := range slow {
		out = append(out, u)
		taken[u] = true
	}
	order := make([]int, len(s.classes))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(len(s.classes[a].units), len(s.classes[b].units)) })
	share := make([][]*unit, len(s.classes))
	left := s.max
	for k, ci := range order {
		c := s.classes[ci]
		n := min(len(c.units), left/(len(order)-k))
		left -= n
		us := slices.Clone(c.units)
		s.rng.Shuffle(len(us), func(i, j int) { us[i], us[j] = us[j], us[i] })
		share[ci] = us[:n]
	}
	for i := 0; ; i++ {
		more := false
		for _, us := range share {
			if i < len(us) {
				more = true
				if !taken[us[i]] {
					out = append(out, us[i])
					taken[us[i]] = true
				}
			}
		}
		if !more {
			break
		}
	}
	return out
}

// slowHeap is a min-heap of units by duration.
type slowHeap []*unit

func (h slowHeap) Len() int           { return len(h) }
func (h slowHeap) Less(i, j int) bool { return h[i].d.dur < h[j].d.dur }
func (h slowHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *slowHeap) Push(x any)        { *h = append(*h, x.(*unit)) }
func (h *slowHeap) Pop() any {
	old := *h
	u := old[len(old)-1]
	*h = old[:len(old)-1]
	return u
}
