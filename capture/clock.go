package capture

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// clock converts bpf_ktime_get_ns (CLOCK_MONOTONIC) to wall-clock time.
type clock struct {
	offset int64 // realtime - monotonic, in ns
}

// newClock measures the offset between the two clocks, taking the
// realtime reading with the smallest monotonic bracket of a few tries.
func newClock() (clock, error) {
	best := int64(-1)
	var c clock
	for range 5 {
		var m1, rt, m2 unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &m1); err != nil {
			return c, fmt.Errorf("read monotonic clock: %w", err)
		}
		if err := unix.ClockGettime(unix.CLOCK_REALTIME, &rt); err != nil {
			return c, fmt.Errorf("read realtime clock: %w", err)
		}
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &m2); err != nil {
			return c, fmt.Errorf("read monotonic clock: %w", err)
		}
		if d := m2.Nano() - m1.Nano(); best < 0 || d < best {
			best = d
			c.offset = rt.Nano() - (m1.Nano()+m2.Nano())/2
		}
	}
	return c, nil
}

// wall returns the wall-clock time of the monotonic time ns.
func (c clock) wall(ns uint64) time.Time {
	return time.Unix(0, c.offset+int64(ns))
}
