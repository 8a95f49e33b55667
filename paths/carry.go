package paths

import "github.com/pathcap/pathcap/kmeta"

// carryGeneration is how many tracking ids byteCarry keeps before it starts
// a new generation: an id not seen for two generations is forgotten (its
// free was not recorded). 65,536 ids of at most a snap length of bytes each.
const carryGeneration = 1 << 16

// carryKey is a tracking id within its recording.
type carryKey struct {
	recording int
	id        uint64
}

// byteCarry carries packet bytes forward in recordings made with record
// --bytes changed (docs/FORMAT.md, "Bytes recorded where they change"): an
// event with the key bytes=same has no bytes of its own (captured length
// 0); its bytes are those of the previous event of the same tracking id
// that had any, which the reader keeps. Everything that reads bytes after
// Input (flows, the filter, the path view, exports) then sees what a
// recording with every event's bytes shows. The zero value is ready to use.
type byteCarry struct {
	cur, old map[carryKey][]byte
}

// apply gives ev the bytes it stands for, and remembers its own: ev is the
// next event of a --bytes changed recording, in the order of the merged
// input. An event of a freed skb (a free hook) ends its id's bytes.
func (c *byteCarry) apply(ev *Event) {
	k := carryKey{ev.Recording, ev.ID}
	switch {
	case ev.HasMeta && ev.metadata().BytesSame && len(ev.Data) == 0:
		b, ok := c.cur[k]
		if !ok {
			if b, ok = c.old[k]; ok {
				c.keep(k, b)
			}
		}
		if ok {
			ev.Data = b
			// The block's original length is at least its captured
			// length: what the block with the bytes would have said.
			if ev.OrigLen < uint32(len(b)) {
				ev.OrigLen = uint32(len(b))
			}
		}
	case len(ev.Data) > 0:
		b := c.cur[k]
		if b == nil {
			b = c.old[k]
		}
		c.keep(k, append(b[:0], ev.Data...))
	}
	if ev.HasMeta && kmeta.ClassOf(ev.metadata().Hook).EndsTracking() {
		// Its skb is gone: the id is not used again. The bytes stay
		// valid for this event (delete keeps the slice).
		delete(c.cur, k)
		delete(c.old, k)
	}
}

// keep stores b as k's bytes in the current generation.
func (c *byteCarry) keep(k carryKey, b []byte) {
	if c.cur == nil || len(c.cur) >= carryGeneration {
		c.old, c.cur = c.cur, make(map[carryKey][]byte)
	}
	delete(c.old, k)
	c.cur[k] = b
}
