package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathcap/pathcap/capture"
)

// lockedBuffer is a bytes.Buffer safe for the reporter's goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStartProgress: nothing is printed for a start-up under a second;
// after a second the step and count are, as a line in a log and as a
// rewritten line on a terminal that is erased when start-up ends.
func TestStartProgress(t *testing.T) {
	t.Parallel()
	var quick lockedBuffer
	p := newStartProgress(&quick, false)
	p.update(capture.Progress{Step: "tracepoint programs", Done: 3, Total: 30})
	p.stop()
	if quick.String() != "" {
		t.Errorf("a start-up under a second printed %q", quick.String())
	}

	for _, terminal := range []bool{false, true} {
		var out lockedBuffer
		p := newStartProgress(&out, terminal)
		p.update(capture.Progress{Step: "tracepoint programs", Done: 12, Total: 30})
		time.Sleep(1300 * time.Millisecond)
		p.update(capture.Progress{Step: "kprobe-multi link", Done: 0, Total: 1})
		p.stop()
		got := out.String()
		want := "record: starting (1s): tracepoint programs 12 of 30"
		if terminal {
			want = "\r" + want + "\x1b[K\r\x1b[K"
		} else {
			want += "\n"
		}
		if got != want {
			t.Errorf("terminal %v: printed %q, want %q", terminal, got, want)
		}
		if strings.Contains(got, "kprobe") {
			t.Errorf("terminal %v: a report after stop: %q", terminal, got)
		}
	}
}
