package recording

import (
	"errors"
	"sync"
	"time"
)

// asyncBuffers is how many buffers an asyncWriter has in flight: the
// event loop fills one while the goroutine writes the others. With the
// record's 256 KiB blocks that is 1 MiB of slack against a slow write.
const asyncBuffers = 4

// errAsyncClosed is returned by an asyncWriter used after close.
var errAsyncClosed = errors.New("write after close")

// asyncWriter writes on a goroutine of its own: Write copies the bytes into
// a free buffer and returns, and the goroutine hands the buffers to write
// in order. The event loop, which must drain the kernel's ring buffer,
// then never waits in write(2) (the copy into the page cache was a third of
// its time under a flood) unless every buffer is still being written.
//
// The first error of write is sticky: Write returns it from then on, later
// buffers are dropped, and sync and close return it. Write and sync are
// called by one goroutine at a time (the recording's lock).
type asyncWriter struct {
	write func(p []byte) (int, error) // runs on the goroutine only
	// idle, when set, runs on the goroutine idleAfter after a write
	// (whether more came or not) and before sync acknowledges: direct
	// I/O writes its unaligned tail then (directFile.flushTail). Its
	// error is sticky too.
	idle    func() error
	queue   chan asyncReq
	free    chan []byte
	done    chan struct{}
	mu      sync.Mutex
	err     error // the first error of write
	written int64 // bytes write reported written, read after sync
	closed  bool
}

// asyncReq is a buffer to write or, with ack, a request to say when every
// buffer before it is written.
type asyncReq struct {
	buf []byte
	ack chan struct{}
}

// idleAfter is how long after a write the asyncWriter's idle function runs
// at the latest: how far behind the event loop the file on disk may end
// on a whole block.
const idleAfter = 100 * time.Millisecond

// newAsyncWriter starts the goroutine that calls write, and idle (when not
// nil) idleAfter after a write.
func newAsyncWriter(write func(p []byte) (int, error), idle func() error) *asyncWriter {
	a := &asyncWriter{
		write: write,
		idle:  idle,
		queue: make(chan asyncReq, asyncBuffers+1),
		free:  make(chan []byte, asyncBuffers),
		done:  make(chan struct{}),
	}
	for i := 0; i < asyncBuffers; i++ {
		a.free <- nil
	}
	go a.loop()
	return a
}

func (a *asyncWriter) loop() {
	defer close(a.done)
	// due is the idle function's deadline: set by a write, cleared when
	// it runs.
	var due <-chan time.Time
	var timer *time.Timer
	for {
		var r asyncReq
		var ok bool
		if due == nil {
			r, ok = <-a.queue
		} else {
			select {
			case r, ok = <-a.queue:
			case <-due:
				a.runIdle()
				due = nil
				continue
			}
		}
		if !ok {
			return
		}
		if r.buf != nil {
			if a.failed() == nil {
				n, err := a.write(r.buf)
				a.record(int64(n), err)
			}
			a.free <- r.buf[:0]
			if a.idle != nil && due == nil {
				if timer == nil {
					timer = time.NewTimer(idleAfter)
				} else {
					timer.Reset(idleAfter)
				}
				due = timer.C
			}
		}
		if r.ack != nil {
			if due != nil {
				timer.Stop()
				a.runIdle()
				due = nil
			}
			close(r.ack)
		}
	}
}

// record adds n to the bytes written and keeps the first error.
func (a *asyncWriter) record(n int64, err error) {
	a.mu.Lock()
	a.written += n
	if err != nil && a.err == nil {
		a.err = err
	}
	a.mu.Unlock()
}

// runIdle runs the idle function unless a write failed.
func (a *asyncWriter) runIdle() {
	if a.failed() == nil {
		a.record(0, a.idle())
	}
}

func (a *asyncWriter) failed() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Write implements io.Writer: it queues a copy of p. It waits only when
// every buffer is queued. Its error is that of an earlier write.
func (a *asyncWriter) Write(p []byte) (int, error) {
	if a.closed {
		return 0, errAsyncClosed
	}
	if err := a.failed(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	b := <-a.free
	a.queue <- asyncReq{buf: append(b, p...)}
	return len(p), nil
}

// take queues b itself, which the caller no longer touches, and returns
// an empty buffer of at least b's capacity for the caller to fill next. It
// waits only when every buffer is queued.
func (a *asyncWriter) take(b []byte) ([]byte, error) {
	if a.closed {
		return b[:0], errAsyncClosed
	}
	if err := a.failed(); err != nil {
		return b[:0], err
	}
	if len(b) == 0 {
		return b, nil
	}
	next := <-a.free
	a.queue <- asyncReq{buf: b}
	if next == nil {
		next = make([]byte, 0, cap(b))
	}
	return next[:0], nil
}

// sync waits until every queued buffer is written and returns the first
// error and the bytes written so far.
func (a *asyncWriter) sync() (int64, error) {
	if a.closed {
		return a.written, a.err
	}
	ack := make(chan struct{})
	a.queue <- asyncReq{ack: ack}
	<-ack
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.written, a.err
}

// close writes what is queued, stops the goroutine and returns sync's
// result. It may be called again.
func (a *asyncWriter) close() (int64, error) {
	if !a.closed {
		a.closed = true
		close(a.queue)
		<-a.done
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.written, a.err
}
