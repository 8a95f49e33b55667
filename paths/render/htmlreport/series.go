package htmlreport

// series counts events over time in at most maxBuckets buckets per row.
// Buckets are 2^shift ns wide and aligned on multiples of their width;
// when the times seen span more buckets than that, the width doubles and
// neighbouring buckets merge. Memory is constant, whatever the input.
type series struct {
	shift uint
	lo    int64 // absolute index (time >> shift) of bucket 0
	n     int   // buckets in use
	rows  [][]uint64
	names []string
	index map[string]int
}

const (
	maxBuckets = 200
	maxRows    = 16
	firstShift = 10 // 1.024 µs
)

func newSeries(names ...string) *series {
	s := &series{shift: firstShift, index: make(map[string]int)}
	for _, n := range names {
		s.row(n)
	}
	return s
}

// row returns the index of the named row, made on first use; past
// maxRows, rows share the last one, named otherName.
func (s *series) row(name string) int {
	if i, ok := s.index[name]; ok {
		return i
	}
	if len(s.rows) >= maxRows-1 && name != otherName {
		return s.row(otherName)
	}
	i := len(s.rows)
	s.index[name] = i
	s.names = append(s.names, name)
	s.rows = append(s.rows, make([]uint64, s.n, maxBuckets))
	return i
}

// add counts one event at time t (ns) in row r.
func (s *series) add(t int64, r int) {
	if t < 0 {
		t = 0
	}
	b := t >> s.shift
	if s.n == 0 {
		s.lo, s.n = b, 1
		for i := range s.rows {
			s.rows[i] = append(s.rows[i][:0], 0)
		}
	} else if b < s.lo || b >= s.lo+int64(s.n) {
		s.grow(t)
		b = t >> s.shift
	}
	s.rows[r][b-s.lo]++
}

// grow makes the buckets cover t, doubling their width as often as needed.
func (s *series) grow(t int64) {
	lo, hi := min(s.lo<<s.shift, t), max((s.lo+int64(s.n))<<s.shift-1, t)
	shift := s.shift
	for hi>>shift-lo>>shift >= maxBuckets {
		shift++
	}
	nlo, nn := lo>>shift, int(hi>>shift-lo>>shift+1)
	for i, row := range s.rows {
		out := make([]uint64, nn, maxBuckets)
		for j, c := range row {
			out[((s.lo+int64(j))>>(shift-s.shift))-nlo] += c
		}
		s.rows[i] = out
	}
	s.shift, s.lo, s.n = shift, nlo, nn
}

// width returns the buckets' width in ns.
func (s *series) width() int64 { return 1 << s.shift }

// start returns the time at which bucket i starts.
func (s *series) start(i int) int64 { return (s.lo + int64(i)) << s.shift }

// total returns the sum of row r.
func (s *series) total(r int) uint64 {
	var n uint64
	for _, c := range s.rows[r] {
		n += c
	}
	return n
}
