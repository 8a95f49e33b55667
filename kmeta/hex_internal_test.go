package kmeta

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestAppendHex checks appendHex against strconv.AppendUint in base 16.
func TestAppendHex(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	vals := []uint64{0, 1, 0xf, 0x10, 0xff, 0x100, 1<<63 - 1, 1 << 63, ^uint64(0)}
	for range 100000 {
		vals = append(vals, rng.Uint64()>>rng.UintN(64))
	}
	for _, v := range vals {
		got := appendHex([]byte("0x"), v)
		if want := strconv.AppendUint([]byte("0x"), v, 16); string(got) != string(want) {
			t.Fatalf("appendHex(%#x) = %s, want %s", v, got, want)
		}
	}
}
