package main

import (
	"fmt"
	"io"
	"runtime"

	"golang.org/x/sys/unix"
)

// defaultReaderBoost is --reader-boost's default: none. A boost of 5
// levels gives the thread that reads the ring buffer and formats the output
// about three times the CPU share of a task at record's own level (the
// kernel's weights grow by 1.25x per level); it lost no fewer events than
// no boost in floods with a CPU-bound job beside (bench/loss.sh), and it
// took CPU time from the flood itself (docs/BENCHMARKS.md, Loss).
const defaultReaderBoost = 0

// boostReader locks the calling goroutine to its OS thread and runs that
// thread boost nice levels above its current level (at most at -20), for
// the reader: record's event loop runs in this goroutine. The returned
// function puts the thread's level back and unlocks it. Without the
// privilege to raise a priority (CAP_SYS_NICE, or RLIMIT_NICE), it says
// so on stderr and records at the current level.
func boostReader(boost int, stderr io.Writer) (restore func()) {
	if boost == 0 {
		return func() {}
	}
	runtime.LockOSThread()
	tid := unix.Gettid()
	// The system call returns 20 - nice.
	raw, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		runtime.UnlockOSThread()
		fmt.Fprintf(stderr, "record: the reader runs at record's own priority: read it: %v\n", err)
		return func() {}
	}
	old := 20 - raw
	nice := max(old-boost, -20)
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil {
		runtime.UnlockOSThread()
		fmt.Fprintf(stderr, "record: the reader runs at record's own priority (--reader-boost %d needs CAP_SYS_NICE): %v\n", boost, err)
		return func() {}
	}
	return func() {
		// Lowering a priority needs no privilege.
		_ = unix.Setpriority(unix.PRIO_PROCESS, tid, old)
		runtime.UnlockOSThread()
	}
}
