package pcapng

import (
	"errors"
	"fmt"
	"math/bits"
	"time"
)

// Resolution is the unit of an interface's timestamps (if_tsresol): 10^-Exp
// seconds, or 2^-Exp seconds when Base2 is set. The zero value stands for
// "not given", which the specification defines as microseconds.
type Resolution struct {
	Base2 bool
	Exp   uint8 // 0..127
	set   bool
}

// Common resolutions.
var (
	Microseconds = Resolution{Exp: 6, set: true}
	Nanoseconds  = Resolution{Exp: 9, set: true}
)

// NewResolution returns the resolution 10^-exp (or 2^-exp) seconds.
func NewResolution(base2 bool, exp uint8) Resolution {
	return Resolution{Base2: base2, Exp: exp & 0x7f, set: true}
}

// resolutionFromByte decodes the if_tsresol option byte.
func resolutionFromByte(b byte) Resolution {
	return Resolution{Base2: b&0x80 != 0, Exp: b & 0x7f, set: true}
}

// effective returns r with the default (microseconds) filled in.
func (r Resolution) effective() Resolution {
	if !r.set && !r.Base2 && r.Exp == 0 {
		return Microseconds
	}
	return r
}

// Byte returns the if_tsresol option byte for r.
func (r Resolution) Byte() byte {
	r = r.effective()
	b := r.Exp & 0x7f
	if r.Base2 {
		b |= 0x80
	}
	return b
}

// String returns a description such as "10^-9 s" or "2^-20 s".
func (r Resolution) String() string {
	r = r.effective()
	if r.Base2 {
		return fmt.Sprintf("2^-%d s", r.Exp)
	}
	return fmt.Sprintf("10^-%d s", r.Exp)
}

// pow10 holds 10^0 .. 10^19, every power of ten that fits in a uint64.
var pow10 = [20]uint64{
	1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13,
	1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
}

// split converts a raw timestamp into whole seconds and nanoseconds,
// exactly (sub-nanosecond digits are truncated).
func (r Resolution) split(units uint64) (sec uint64, nsec uint64) {
	r = r.effective()
	if r.Base2 {
		if r.Exp == 0 {
			return units, 0
		}
		if r.Exp >= 64 {
			// Every unit is below 2^-64 s: the value is under one second.
			hi, _ := bits.Mul64(units, 1e9)
			return 0, hi >> (r.Exp - 64)
		}
		sec = units >> r.Exp
		frac := units & (1<<r.Exp - 1)
		hi, lo := bits.Mul64(frac, 1e9)
		// (hi:lo) >> Exp, which fits in 64 bits because frac < 2^Exp.
		nsec = lo>>r.Exp | hi<<(64-r.Exp)
		return sec, nsec
	}
	// The common resolutions divide by a constant, which the compiler
	// turns into a multiplication.
	switch {
	case r.Exp == 9:
		return units / 1e9, units % 1e9
	case r.Exp == 6:
		return units / 1e6, units % 1e6 * 1e3
	}
	e := int(r.Exp)
	if e > 19 {
		// 10^e does not fit: the value is below 10^(20-e) seconds.
		if e-9 > 19 {
			return 0, 0
		}
		return 0, units / pow10[e-9]
	}
	div := pow10[e]
	sec, rem := units/div, units%div
	if e <= 9 {
		return sec, rem * pow10[9-e]
	}
	return sec, rem / pow10[e-9]
}

// toTime converts a raw timestamp and an if_tsoffset into a time.
func (r Resolution) toTime(units uint64, offset int64) time.Time {
	sec, nsec := r.split(units)
	return time.Unix(int64(sec)+offset, int64(nsec))
}

var errTimeRange = errors.New("timestamp cannot be represented")

// fromTime converts a time into raw units, subtracting offset seconds.
// The fraction of a second is truncated to a whole number of units, except
// that a time which split gives for some unit count converts back to that
// count: rewriting a timestamp that was read leaves it unchanged.
func (r Resolution) fromTime(t time.Time, offset int64) (uint64, error) {
	r = r.effective()
	secs := t.Unix() - offset
	if secs < 0 {
		return 0, fmt.Errorf("%w: %v is before the interface's epoch", errTimeRange, t)
	}
	s, ns := uint64(secs), uint64(t.Nanosecond())
	if r.Base2 {
		if r.Exp > 63 || bits.Len64(s)+int(r.Exp) > 64 {
			return 0, fmt.Errorf("%w at resolution %v", errTimeRange, r)
		}
		hi, lo := bits.Mul64(ns, 1<<r.Exp)
		frac, rem := bits.Div64(hi, lo, 1e9) // hi < 1e9 because ns < 1e9
		if rem != 0 {
			// ns is not a whole number of units. Truncating would
			// not give back the units of a time that split made
			// from them (split truncates to the nanosecond too):
			// take the next unit instead when it reads back as
			// exactly ns, so that reading and rewriting a
			// timestamp keeps it unchanged.
			c := frac + 1
			h, l := bits.Mul64(c, 1e9)
			if l>>r.Exp|h<<(64-r.Exp) == ns && h>>r.Exp == 0 {
				frac = c
			}
		}
		return s<<r.Exp | frac, nil
	}
	if r.Exp > 19 {
		return 0, fmt.Errorf("%w at resolution %v", errTimeRange, r)
	}
	hi, whole := bits.Mul64(s, pow10[r.Exp])
	if hi != 0 {
		return 0, fmt.Errorf("%w at resolution %v", errTimeRange, r)
	}
	var frac uint64
	switch {
	case r.Exp == 9: // nanoseconds, the common case: no division
		frac = ns
	case r.Exp < 9:
		frac = ns / pow10[9-r.Exp]
	default:
		frac = ns * pow10[r.Exp-9]
	}
	sum, carry := bits.Add64(whole, frac, 0)
	if carry != 0 {
		return 0, fmt.Errorf("%w at resolution %v", errTimeRange, r)
	}
	return sum, nil
}

// timeCheck is a time every interface resolution the Writer accepts must
// be able to express.
var timeCheck = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
