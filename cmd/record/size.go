package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// sizeValue is a flag value in bytes: a number with an optional binary
// suffix, K, M, G or T (also KiB, MB, ...; any case): 100M is 100 MiB.
type sizeValue struct{ n int64 }

// Set implements flag.Value.
func (s *sizeValue) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	s.n = n
	return nil
}

// String implements flag.Value.
func (s *sizeValue) String() string {
	if s == nil || s.n == 0 {
		return ""
	}
	return strconv.FormatInt(s.n, 10)
}

// parseSize parses a size such as 100M, 1G, 64k or 4096.
func parseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.ToUpper(strings.TrimSpace(s[len(num):]))
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "I")
	shift := 0
	switch unit {
	case "":
	case "K":
		shift = 10
	case "M":
		shift = 20
	case "G":
		shift = 30
	case "T":
		shift = 40
	default:
		return 0, fmt.Errorf("size %q: unknown unit (want bytes, or a number with K, M, G or T)", v)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || num == "" || n < 0 {
		return 0, fmt.Errorf("size %q: want bytes, or a number with K, M, G or T (e.g. 100M)", v)
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("size %q is too large", v)
	}
	return n << shift, nil
}

// intervalValue is a flag value for -G: a duration (90s, 10m, 1h) or a
// number of seconds.
type intervalValue struct{ d time.Duration }

// Set implements flag.Value.
func (iv *intervalValue) Set(v string) error {
	s := strings.TrimSpace(v)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > math.MaxInt64/int64(time.Second) {
			return fmt.Errorf("interval %q out of range", v)
		}
		iv.d = time.Duration(n) * time.Second
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("interval %q: want a duration such as 30s, 10m or 1h, or seconds", v)
	}
	iv.d = d
	return nil
}

// String implements flag.Value.
func (iv *intervalValue) String() string {
	if iv == nil || iv.d == 0 {
		return ""
	}
	return iv.d.String()
}

// formatSize writes a byte count for people: 100 MiB (104857600 bytes).
func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
