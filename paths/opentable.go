package paths

// openTable holds the open packets by key: a hash table with open
// addressing and linear probing in Robin Hood order (an entry never sits
// further from its home slot than one it passed), with deletion by
// backward shift. Every packet is inserted once and deleted once, millions
// of times over a recording: deleting by shifting leaves no tombstones
// behind, so probes stay short however long the churn goes on (Go's maps
// keep tombstones until they grow, which made every lookup of a new id
// walk long probe sequences).
//
// Tracking ids mostly grow one by one (a counter per CPU), and packets are
// completed roughly in the order they started, so the table first places
// ids by their low bits: the packets in flight then sit in runs of
// neighbouring slots that stay in the cache. Ids that crowd into some
// slots that way (a long probe) make the table switch to a multiplicative
// hash.
type openTable struct {
	slots []openSlot // a power of two long, at most half full
	n     int
	bits  uint // log2(len(slots))
	mixed bool // hash ids instead of using their low bits
}

type openSlot struct {
	key packetKey
	p   *openPacket // nil: empty
}

const (
	minOpenBits = 10
	// maxProbe is the probe length that makes the table switch to
	// hashing (with ids placed by their low bits) or grow (hashed).
	maxProbe = 64
)

func newOpenTable() openTable {
	return openTable{slots: make([]openSlot, 1<<minOpenBits), bits: minOpenBits}
}

func (t *openTable) len() int { return t.n }

// home is the slot where a key's probe starts.
func (t *openTable) home(k packetKey) int {
	if t.mixed {
		h := (k.id ^ uint64(k.recording)<<48) * 0x9e3779b97f4a7c15
		return int(h >> (64 - t.bits))
	}
	// Fold the higher bits in, so that ids that differ only there do
	// not all collide.
	h := k.id ^ k.id>>t.bits ^ k.id>>(2*t.bits) ^ uint64(k.recording)*0x9e3779b97f4a7c15
	return int(h & (1<<t.bits - 1))
}

// dist is how far slot i is from the home of the key in it.
func (t *openTable) dist(i int) int {
	return (i - t.home(t.slots[i].key)) & (len(t.slots) - 1)
}

// get returns the packet with key k, or nil.
func (t *openTable) get(k packetKey) *openPacket {
	mask := len(t.slots) - 1
	i := t.home(k)
	for d := 0; ; d++ {
		s := &t.slots[i]
		if s.p == nil {
			return nil
		}
		if s.key == k {
			return s.p
		}
		if d > t.dist(i) {
			// k would have taken this slot.
			return nil
		}
		i = (i + 1) & mask
	}
}

// put adds p, whose key must not be in the table.
func (t *openTable) put(p *openPacket) {
	if 2*(t.n+1) > len(t.slots) {
		t.rebuild(t.bits+1, t.mixed)
	}
	t.n++
	if t.insert(openSlot{p.key, p}) <= maxProbe {
		return
	}
	// Ids crowd together: hash them, or when they were hashed already,
	// make more room (within reason: memory must not grow with ids
	// made to collide).
	switch {
	case !t.mixed:
		t.rebuild(t.bits, true)
	case len(t.slots) < 16*t.n:
		t.rebuild(t.bits+1, true)
	}
}

// insert places s and returns the longest probe it took.
func (t *openTable) insert(s openSlot) int {
	mask := len(t.slots) - 1
	i := t.home(s.key)
	longest := 0
	for d := 0; ; d++ {
		cur := &t.slots[i]
		if cur.p == nil {
			*cur = s
			return max(longest, d)
		}
		if cd := t.dist(i); cd < d {
			// Robin Hood: s takes the slot of an entry closer to
			// its home, which moves on instead.
			*cur, s = s, *cur
			longest = max(longest, d)
			d = cd
		}
		i = (i + 1) & mask
	}
}

// rebuild places every packet again in a table of 1<<bits slots.
func (t *openTable) rebuild(bits uint, mixed bool) {
	old := t.slots
	t.slots, t.bits, t.mixed = make([]openSlot, 1<<bits), bits, mixed
	for _, s := range old {
		if s.p != nil {
			t.insert(s)
		}
	}
}

// remove deletes the packet with key k, if there is one.
func (t *openTable) remove(k packetKey) {
	mask := len(t.slots) - 1
	i := t.home(k)
	for d := 0; ; d++ {
		s := &t.slots[i]
		if s.p == nil || d > t.dist(i) {
			return
		}
		if s.key == k {
			break
		}
		i = (i + 1) & mask
	}
	// Shift back the entries after i that are not in their home slot.
	for {
		j := (i + 1) & mask
		if t.slots[j].p == nil || t.dist(j) == 0 {
			break
		}
		t.slots[i] = t.slots[j]
		i = j
	}
	t.slots[i] = openSlot{}
	t.n--
}

// appendAll appends every packet in the table to dst.
func (t *openTable) appendAll(dst []*openPacket) []*openPacket {
	for _, s := range t.slots {
		if s.p != nil {
			dst = append(dst, s.p)
		}
	}
	return dst
}
