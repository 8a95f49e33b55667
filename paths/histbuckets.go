package paths

import "math"

// Bucket is one bucket of a Histogram: Count durations in [Low, High) ns.
type Bucket struct {
	Low, High int64
	Count     uint64
}

// Buckets returns the histogram's non-empty buckets, shortest durations
// first. Their counts add up to Count().
func (h *Histogram) Buckets() []Bucket {
	var out []Bucket
	for b, c := range h.counts {
		if c == 0 {
			continue
		}
		low, high := bucketLow(b), int64(math.MaxInt64)
		if b+1 < len(h.counts) && bucketLow(b+1) > low {
			high = bucketLow(b + 1)
		}
		out = append(out, Bucket{Low: low, High: high, Count: c})
	}
	return out
}
