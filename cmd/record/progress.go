package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pathcap/pathcap/capture"
)

// startProgress tells the user what record is doing while it starts,
// once start-up has taken longer than a second (verifying the programs
// takes seconds on older kernels or with many kernel functions). On a
// terminal one line is rewritten every second and erased when start-up
// ends; elsewhere (a log) a line is written after a second and then every
// five seconds.
type startProgress struct {
	w        io.Writer
	terminal bool
	start    time.Time

	mu      sync.Mutex
	last    capture.Progress
	printed bool // on a terminal: a line is shown and must be erased
	done    chan struct{}
	stopped sync.WaitGroup
}

// newStartProgress starts reporting to w; call update from
// capture.Config.Progress and stop when the recorder is ready or failed.
func newStartProgress(w io.Writer, terminal bool) *startProgress {
	p := &startProgress{w: w, terminal: terminal, start: time.Now(), done: make(chan struct{})}
	p.stopped.Add(1)
	go p.loop()
	return p
}

// update records how far start-up has come.
func (p *startProgress) update(pr capture.Progress) {
	p.mu.Lock()
	p.last = pr
	p.mu.Unlock()
}

func (p *startProgress) loop() {
	defer p.stopped.Done()
	wait, every := time.Second, 5*time.Second
	if p.terminal {
		every = time.Second
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			p.print()
			t.Reset(every)
		}
	}
}

func (p *startProgress) print() {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := fmt.Sprintf("record: starting (%s)", time.Since(p.start).Round(time.Second))
	if p.last.Step != "" {
		line += fmt.Sprintf(": %s %d of %d", p.last.Step, p.last.Done, p.last.Total)
	}
	if p.terminal {
		// Carriage return, the line, erase to the end of the line.
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		p.printed = true
		return
	}
	fmt.Fprintln(p.w, line)
}

// stop ends the reports and erases the terminal line, if one is shown.
func (p *startProgress) stop() {
	close(p.done)
	p.stopped.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.printed {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.printed = false
	}
}
