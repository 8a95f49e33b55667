package pcapng

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"
)

// unitsPerSecond returns base^exp as a big integer.
func unitsPerSecond(r Resolution) *big.Int {
	r = r.effective()
	base := int64(10)
	if r.Base2 {
		base = 2
	}
	return new(big.Int).Exp(big.NewInt(base), big.NewInt(int64(r.Exp)), nil)
}

// bigSplit is split computed with arbitrary precision: whole seconds, and
// the remainder in nanoseconds rounded down.
func bigSplit(r Resolution, units uint64) (sec, nsec uint64) {
	den := unitsPerSecond(r)
	u := new(big.Int).SetUint64(units)
	s, rem := new(big.Int).QuoRem(u, den, new(big.Int))
	ns := new(big.Int).Mul(rem, big.NewInt(1e9))
	ns.Quo(ns, den)
	return s.Uint64(), ns.Uint64()
}

// bigUnits is fromTime computed with arbitrary precision: the fraction is
// truncated to whole units, unless the next unit reads back as exactly the
// time's nanosecond. ok is false when the value does not fit in 64 bits or
// the time is before the epoch.
func bigUnits(r Resolution, t time.Time, offset int64) (units uint64, ok bool) {
	secs := t.Unix() - offset
	if secs < 0 {
		return 0, false
	}
	den := unitsPerSecond(r)
	v := new(big.Int).Mul(big.NewInt(secs), den)
	ns := big.NewInt(int64(t.Nanosecond()))
	frac, rem := new(big.Int).QuoRem(new(big.Int).Mul(ns, den), big.NewInt(1e9), new(big.Int))
	if rem.Sign() != 0 {
		// The next unit, if it reads back as exactly this nanosecond.
		next := new(big.Int).Add(frac, big.NewInt(1))
		back := new(big.Int).Mul(next, big.NewInt(1e9))
		if back.Quo(back, den).Cmp(ns) == 0 {
			frac = next
		}
	}
	v.Add(v, frac)
	if !v.IsUint64() {
		return 0, false
	}
	return v.Uint64(), true
}

func allResolutions() []Resolution {
	var rs []Resolution
	for e := 0; e <= 127; e++ {
		rs = append(rs, NewResolution(false, uint8(e)), NewResolution(true, uint8(e)))
	}
	return append(rs, Resolution{}) // the default: microseconds
}

func TestSplitMatchesBigArithmetic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	units := []uint64{0, 1, 2, 999, 1e6 - 1, 1e6, 1e9 - 1, 1e9, 1e9 + 1, 1 << 20, 1<<20 - 1,
		1 << 32, 1<<32 - 1, 1 << 63, 1<<63 - 1, math.MaxUint64, math.MaxUint64 - 1,
		1709993251123456789, 1709993251123456, 1709993251}
	for range 40 {
		units = append(units, rng.Uint64(), rng.Uint64()>>rng.IntN(64))
	}
	for _, r := range allResolutions() {
		for _, u := range units {
			gotS, gotNS := r.split(u)
			wantS, wantNS := bigSplit(r, u)
			if gotS != wantS || gotNS != wantNS {
				t.Errorf("%v: split(%d) = %d s %d ns, want %d s %d ns", r, u, gotS, gotNS, wantS, wantNS)
			}
			if gotNS >= 1e9 {
				t.Errorf("%v: split(%d) gives %d ns, not below a second", r, u, gotNS)
			}
		}
	}
}

func TestFromTimeMatchesBigArithmetic(t *testing.T) {
	times := []time.Time{
		time.Unix(0, 0),
		time.Unix(0, 1),
		time.Unix(0, 999999999),
		time.Unix(1, 0),
		time.Unix(1709993251, 123456789),
		time.Unix(1709993251, 999999999),
		time.Unix(4294967295, 500000000),
		time.Unix(4294967296, 1),
		time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(1<<40, 7),
		time.Unix(math.MaxInt64/1000, 3),
	}
	offsets := []int64{0, 1709990000, -3600, 1 << 33}
	for _, r := range allResolutions() {
		for _, tm := range times {
			for _, off := range offsets {
				got, err := r.fromTime(tm, off)
				want, ok := bigUnits(r, tm, off)
				// The implementation refuses exponents whose unit count
				// for one second does not fit in 64 bits even when the
				// time is within the first second; that is the only
				// place it may refuse a value that would fit.
				limit := (!r.effective().Base2 && r.effective().Exp > 19) || (r.effective().Base2 && r.effective().Exp > 63)
				switch {
				case ok && err == nil:
					if got != want {
						t.Errorf("%v: fromTime(%v, %d) = %d, want %d", r, tm, off, got, want)
					}
				case ok && err != nil:
					if !limit || tm.Unix()-off != 0 {
						t.Errorf("%v: fromTime(%v, %d) failed (%v), want %d", r, tm, off, err, want)
					}
				case !ok && err == nil:
					t.Errorf("%v: fromTime(%v, %d) = %d, want an error (out of range)", r, tm, off, got)
				}
			}
		}
	}
}

// TestTimestampRoundTripBound checks that writing and reading back a time
// loses less than one unit of the resolution, and nothing when the time
// is a whole number of units.
func TestTimestampRoundTripBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, r := range allResolutions() {
		if _, err := r.fromTime(timeCheck, 0); err != nil {
			continue // refused by the Writer
		}
		den := unitsPerSecond(r)
		// Nanoseconds per unit, rounded up.
		unitNS := new(big.Int).Add(big.NewInt(1e9), new(big.Int).Sub(den, big.NewInt(1)))
		unitNS.Quo(unitNS, den)
		for range 200 {
			tm := time.Unix(rng.Int64N(7e9), rng.Int64N(1e9))
			u, err := r.fromTime(tm, 0)
			if err != nil {
				t.Fatalf("%v: fromTime(%v): %v", r, tm, err)
			}
			back := r.toTime(u, 0)
			lost := tm.Sub(back)
			if lost < 0 || lost.Nanoseconds() >= unitNS.Int64() {
				t.Errorf("%v: %v written and read back as %v (lost %v, unit %d ns)", r, tm, back, lost, unitNS)
			}
			// Times that are whole units survive exactly.
			if again := r.toTime(mustUnits(t, r, back), 0); !again.Equal(back) {
				t.Errorf("%v: %v is not stable: read back as %v", r, back, again)
			}
		}
	}
	// Decimal resolutions up to the nanosecond are exact for times that
	// are multiples of their unit.
	for e := uint8(0); e <= 9; e++ {
		r := NewResolution(false, e)
		step := int64(math.Pow10(9 - int(e)))
		tm := time.Unix(1709993251, (123456789/step)*step)
		u, err := r.fromTime(tm, 0)
		if err != nil {
			t.Fatal(err)
		}
		if back := r.toTime(u, 0); !back.Equal(tm) {
			t.Errorf("%v: %v read back as %v", r, tm, back)
		}
	}
}

func mustUnits(t *testing.T, r Resolution, tm time.Time) uint64 {
	t.Helper()
	u, err := r.fromTime(tm, 0)
	if err != nil {
		t.Fatalf("%v: fromTime(%v): %v", r, tm, err)
	}
	return u
}

func TestResolutionByteAndString(t *testing.T) {
	tests := []struct {
		r    Resolution
		b    byte
		s    string
		back Resolution
	}{
		{Resolution{}, 6, "10^-6 s", Microseconds},
		{Microseconds, 6, "10^-6 s", Microseconds},
		{Nanoseconds, 9, "10^-9 s", Nanoseconds},
		{NewResolution(true, 20), 0x94, "2^-20 s", NewResolution(true, 20)},
		{NewResolution(false, 0), 0, "10^-0 s", NewResolution(false, 0)},
		{NewResolution(true, 127), 0xff, "2^-127 s", NewResolution(true, 127)},
	}
	for _, tc := range tests {
		if got := tc.r.Byte(); got != tc.b {
			t.Errorf("%#v.Byte() = %#x, want %#x", tc.r, got, tc.b)
		}
		if got := tc.r.String(); got != tc.s {
			t.Errorf("%#v.String() = %q, want %q", tc.r, got, tc.s)
		}
		if got := resolutionFromByte(tc.b); got != tc.back {
			t.Errorf("resolutionFromByte(%#x) = %#v, want %#v", tc.b, got, tc.back)
		}
	}
}
