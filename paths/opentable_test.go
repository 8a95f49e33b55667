package paths

import (
	"math/rand/v2"
	"testing"
)

// TestOpenTable checks the table against a map through a long churn of
// inserts and deletes, with ids of several shapes: random small ones that
// collide, a counter, and strides that crowd the low bits (which must make
// the table hash them), over several recordings.
func TestOpenTable(t *testing.T) {
	shapes := map[string]func(n uint64, r *rand.Rand) uint64{
		"random":     func(_ uint64, r *rand.Rand) uint64 { return uint64(r.IntN(5000)) },
		"counter":    func(n uint64, _ *rand.Rand) uint64 { return n },
		"stride1k":   func(n uint64, _ *rand.Rand) uint64 { return n << 10 },
		"stride2^20": func(n uint64, _ *rand.Rand) uint64 { return n << 20 },
		"stride2^40": func(n uint64, _ *rand.Rand) uint64 { return n<<40 | 7 },
		"high":       func(n uint64, _ *rand.Rand) uint64 { return n<<54 ^ n<<27 ^ n },
	}
	for name, id := range shapes {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			tab := newOpenTable()
			ref := map[packetKey]*openPacket{}
			var live []packetKey
			var n uint64
			for step := 0; step < 100_000; step++ {
				switch {
				case r.IntN(5) > 1 || len(live) == 0:
					n++
					k := packetKey{recording: r.IntN(3) - 1, id: id(n, r)}
					if ref[k] != nil {
						continue
					}
					p := &openPacket{key: k}
					tab.put(p)
					ref[k] = p
					live = append(live, k)
				default:
					// Mostly the oldest, as packets complete.
					i := 0
					if r.IntN(4) == 0 {
						i = r.IntN(len(live))
					}
					k := live[i]
					live = append(live[:i], live[i+1:]...)
					tab.remove(k)
					delete(ref, k)
				}
				if step%997 == 0 {
					if tab.len() != len(ref) {
						t.Fatalf("step %d: %d packets, want %d", step, tab.len(), len(ref))
					}
					for k, p := range ref {
						if got := tab.get(k); got != p {
							t.Fatalf("step %d: get(%v) = %p, want %p", step, k, got, p)
						}
					}
					for m := 0; m < 100; m++ {
						k := packetKey{recording: 5, id: id(uint64(r.IntN(int(n+1))), r)}
						if tab.get(k) != nil {
							t.Fatalf("step %d: get(%v) found a packet never put", step, k)
						}
					}
					if all := tab.appendAll(nil); len(all) != len(ref) {
						t.Fatalf("step %d: appendAll gave %d packets, want %d", step, len(all), len(ref))
					}
				}
			}
			tab.remove(packetKey{recording: 9, id: 9}) // absent: no effect
			if tab.len() != len(ref) {
				t.Fatalf("removing an absent key changed the count")
			}
			t.Logf("%d slots for %d packets, hashed: %v", len(tab.slots), tab.len(), tab.mixed)
		})
	}
}

// TestOpenTableCounter checks that ids from per-CPU counters, completed in
// about the order they started, stay placed by their low bits.
func TestOpenTableCounter(t *testing.T) {
	const cpus, window = 4, 20_000
	tab := newOpenTable()
	var live []packetKey
	for c := uint64(0); c < 200_000; c++ {
		k := packetKey{id: c*cpus + c%3%cpus + 1}
		if tab.get(k) != nil {
			continue
		}
		tab.put(&openPacket{key: k})
		live = append(live, k)
		if len(live) > window {
			tab.remove(live[0])
			live = live[1:]
		}
	}
	if tab.mixed {
		t.Errorf("ids of a counter made the table hash them")
	}
	for _, k := range live {
		if tab.get(k) == nil {
			t.Fatalf("packet %v lost", k)
		}
	}
}
