package paths

import (
	"math"
	"testing"
)

func TestHistogramBuckets(t *testing.T) {
	var h Histogram
	vals := []int64{0, 3, 3, 15, 16, 17, 100, 1000, 1001, 123456789, math.MaxInt64}
	for _, v := range vals {
		h.Add(v)
	}
	bs := h.Buckets()
	var n uint64
	for i, b := range bs {
		if b.Count == 0 || b.Low >= b.High {
			t.Errorf("bucket %d: %+v", i, b)
		}
		if i > 0 && b.Low < bs[i-1].High {
			t.Errorf("bucket %d overlaps the one before: %+v, %+v", i, bs[i-1], b)
		}
		n += b.Count
	}
	if n != h.Count() {
		t.Errorf("bucket counts add up to %d, want %d", n, h.Count())
	}
	for _, v := range vals {
		found := false
		for _, b := range bs {
			if v >= b.Low && (v < b.High || b.High == math.MaxInt64) {
				found = true
			}
		}
		if !found {
			t.Errorf("%d is in no bucket of %+v", v, bs)
		}
	}
	if (&Histogram{}).Buckets() != nil {
		t.Error("an empty histogram has buckets")
	}
}
