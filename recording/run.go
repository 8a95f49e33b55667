package recording

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pathcap/pathcap/capture"
)

// Source delivers events; *capture.Recorder is one.
type Source interface {
	// Run calls fn for every event until ctx is done (then it delivers
	// what is left) or fn returns an error.
	Run(ctx context.Context, fn func(*capture.Event) error) error
	// Stats returns the events read and lost so far.
	Stats() (capture.Stats, error)
}

// RunOptions controls Run and RunFiles.
type RunOptions struct {
	// MaxEvents stops the recording after this many events (0: no limit).
	MaxEvents uint64
	// MaxBytes stops the recording once its output holds this many bytes,
	// all its files together (files removed by FileOptions.MaxFiles
	// count too), buffered blocks included (0: no limit). The output ends
	// past it by at most the last event's block and the closing
	// statistics.
	MaxBytes int64
	// FlushInterval is how often buffered blocks are written out even when
	// events keep coming (0: 100 ms). A new file that FileOptions.Interval
	// calls for is started on the same tick, events or not.
	FlushInterval time.Duration
	// Status, when not nil, receives a one-line status every
	// StatusInterval (0: 1 s): events, lost, bytes.
	Status         io.Writer
	StatusInterval time.Duration
	// OnEvent, when not nil, is called after each event is written (used
	// to print events as they come).
	OnEvent func(ev *capture.Event) error
	// VolumeNote, when not nil, receives one line after the first second
	// of recording: the events and bytes per second so far, and how much
	// that makes an hour (for a recording nothing bounds).
	VolumeNote io.Writer
	// Trigger, when not nil, ends the recording StopAfter after the first
	// event it matches (written like any other): a flight recorder, whose
	// files (a ring with FileOptions.MaxFiles) then hold what came before
	// and after: from the trigger on no file is removed, so the ring may
	// end with more than MaxFiles files. Names resolves devices for its dev= condition.
	// OnTrigger, when not nil, is called with that event.
	Trigger   *Trigger
	StopAfter time.Duration
	Names     DeviceNamer
	OnTrigger func(ev *capture.Event)
}

// StopReason says why a recording ended.
type StopReason int

const (
	// StopContext: the context ended it (a signal, a time limit).
	StopContext StopReason = iota
	// StopEvents: RunOptions.MaxEvents was reached.
	StopEvents
	// StopSize: RunOptions.MaxBytes was reached.
	StopSize
	// StopTrigger: RunOptions.StopAfter passed after RunOptions.Trigger
	// matched.
	StopTrigger
)

// Summary is what a recording did.
type Summary struct {
	Events uint64 // events written
	Lost   uint64 // events the kernel could not hand over
	// Skipped counts hits the in-kernel rate limit (Config.MaxRate) left
	// out.
	Skipped uint64
	Bytes   int64 // bytes written to the output, all files together
	// Files are the files written (RunFiles), in order, including those
	// FileOptions.MaxFiles removed since; Kept are those on disk.
	Files, Kept []string
	// Stopped says why the recording ended (when it ended without error).
	Stopped StopReason
}

var (
	errEnough    = errors.New("event limit reached")
	errSizeLimit = errors.New("size limit reached")
	errTriggered = errors.New("trigger matched")
)

// CountingWriter counts the bytes written through it.
type CountingWriter struct {
	W io.Writer
	N int64
}

// Write implements io.Writer.
func (c *CountingWriter) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.N += int64(n)
	return n, err
}

// output is where run writes: one stream (Run) or Files (RunFiles).
type output interface {
	Writer() *Writer
	// Size returns the bytes written so far, buffered ones included.
	Size() int64
	// dueAt reports whether a new file should be started now; it calls
	// now only if it needs the time.
	dueAt(now func() time.Time) bool
	// Rotate starts a new file; st has the recording's loss and skip
	// counts so far.
	Rotate(st capture.Stats, now time.Time) error
	// Close ends the output properly: statistics, flush, close.
	Close(st capture.Stats, end time.Time) error
	// Abort ends the output after a write error.
	Abort() error
	// Hold stops removing old files (a flight recording's trigger
	// matched: what came before it stays).
	Hold()
}

// stream is an output that never rotates: a Writer over a CountingWriter
// (which may be nil).
type stream struct {
	w   *Writer
	out *CountingWriter
}

func (s stream) Writer() *Writer { return s.w }

func (s stream) Size() int64 {
	n := int64(s.w.Buffered())
	if s.out != nil {
		n += s.out.N
	}
	return n
}

func (stream) dueAt(func() time.Time) bool           { return false }
func (stream) Rotate(capture.Stats, time.Time) error { return nil }
func (s stream) Close(st capture.Stats, end time.Time) error {
	s.w.SetSkipped(st.OverBudget)
	return s.w.Close(st.Lost, end)
}
func (stream) Abort() error { return nil }
func (stream) Hold()        {}

// Run records events from src into w until ctx is done, MaxEvents or
// MaxBytes is reached or an error occurs; then it writes the interface
// statistics and flushes. out, when not nil, is the counter under w's
// output, used for the status line, MaxBytes and the summary. After an
// error writing the output, the recording stops without the statistics.
func Run(ctx context.Context, src Source, w *Writer, out *CountingWriter, opts RunOptions) (Summary, error) {
	return run(ctx, src, stream{w, out}, opts)
}

// RunFiles is Run for a recording into files: it starts a new file when
// the FileOptions of fs call for one (the first file's interval counts from
// the call), and closes the last file properly
// when the recording ends (after a write error, as far as it was written:
// every whole block, without statistics).
func RunFiles(ctx context.Context, src Source, fs *Files, opts RunOptions) (Summary, error) {
	// The first file's interval counts from here, not from its creation
	// before the hooks were attached.
	fs.opened = time.Now()
	sum, err := run(ctx, src, fs, opts)
	sum.Files, sum.Kept = fs.Created(), fs.Kept()
	return sum, err
}

func run(ctx context.Context, src Source, o output, opts RunOptions) (Summary, error) {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 100 * time.Millisecond
	}
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = time.Second
	}
	// A failed write in the flusher ends the recording through ctx, and
	// so does the trigger's timer.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		triggered bool        // the event loop's: the trigger matched
		fired     atomic.Bool // the trigger's timer ended the recording
		timer     *time.Timer
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	w := o.Writer()
	var (
		mu       sync.Mutex // guards o, w and writeErr between the event loop and the flusher
		writeErr error
	)
	rotate := func(now time.Time) error {
		st, err := src.Stats()
		if err != nil {
			return fmt.Errorf("read loss counters: %w", err)
		}
		return o.Rotate(st, now)
	}
	var flushDue atomic.Bool // a flush is due: the event loop takes it
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		flush := time.NewTicker(opts.FlushInterval)
		defer flush.Stop()
		var note <-chan time.Time
		if opts.VolumeNote != nil {
			t := time.NewTimer(time.Second)
			defer t.Stop()
			note = t.C
		}
		started := time.Now()
		var status <-chan time.Time
		if opts.Status != nil {
			t := time.NewTicker(opts.StatusInterval)
			defer t.Stop()
			status = t.C
		}
		for {
			select {
			case <-stop:
				return
			case now := <-flush.C:
				// While events come, the event loop flushes (it takes
				// flushDue): the lock is then not held by this goroutine,
				// which may run at a lower priority than the loop
				// (record --reader-boost), while it writes. Only when
				// the loop has not taken the last tick's flush, it is
				// done here.
				if !flushDue.Swap(true) {
					continue
				}
				mu.Lock()
				if writeErr == nil && o.dueAt(func() time.Time { return now }) {
					writeErr = rotate(now)
				}
				if writeErr == nil {
					writeErr = w.Flush()
				}
				failed := writeErr != nil
				mu.Unlock()
				if failed {
					cancel()
					return
				}
			case <-note:
				mu.Lock()
				events, n := w.Events(), o.Size()
				mu.Unlock()
				secs := time.Since(started).Seconds()
				rate := float64(n) / secs
				fmt.Fprintf(opts.VolumeNote, "record: nothing bounds this recording: %.0f events/s and %s/s so far, about %s an hour; a filter expression, --max-rate, -c, --duration, --max-size or -C with -W bound it\n",
					float64(events)/secs, formatBytes(int64(rate)), formatBytes(int64(rate*3600)))
			case <-status:
				st, _ := src.Stats()
				mu.Lock()
				events, n := w.Events(), o.Size()
				mu.Unlock()
				fmt.Fprintf(opts.Status, "\rrecording: %d events, %d lost, %s written ", events, st.Lost, formatBytes(n))
			}
		}
	}()

	runErr := src.Run(ctx, func(ev *capture.Event) error {
		mu.Lock()
		err := writeErr
		if err == nil {
			if o.dueAt(time.Now) {
				err = rotate(time.Now())
			}
		}
		if err == nil {
			err = w.WriteEvent(ev)
		}
		if err == nil && flushDue.Load() {
			flushDue.Store(false)
			err = w.Flush()
		}
		writeErr = err
		n, size := w.Events(), o.Size()
		mu.Unlock()
		if err != nil {
			return err
		}
		if opts.OnEvent != nil {
			if err := opts.OnEvent(ev); err != nil {
				return err
			}
		}
		if opts.Trigger != nil && !triggered && opts.Trigger.Match(ev, opts.Names) {
			triggered = true
			mu.Lock()
			o.Hold()
			mu.Unlock()
			if opts.OnTrigger != nil {
				opts.OnTrigger(ev)
			}
			if opts.StopAfter <= 0 {
				return errTriggered
			}
			timer = time.AfterFunc(opts.StopAfter, func() {
				fired.Store(true)
				cancel()
			})
		}
		if opts.MaxEvents != 0 && n >= opts.MaxEvents {
			return errEnough
		}
		if opts.MaxBytes != 0 && size >= opts.MaxBytes {
			return errSizeLimit
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if opts.Status != nil {
		fmt.Fprintln(opts.Status)
	}
	var sum Summary
	switch {
	case errors.Is(runErr, errEnough):
		runErr, sum.Stopped = nil, StopEvents
	case errors.Is(runErr, errSizeLimit):
		runErr, sum.Stopped = nil, StopSize
	case errors.Is(runErr, errTriggered):
		runErr, sum.Stopped = nil, StopTrigger
	case fired.Load() && writeErr == nil:
		sum.Stopped = StopTrigger
	}
	st, statsErr := src.Stats()
	sum.Events, sum.Lost, sum.Skipped = w.Events(), st.Lost, st.OverBudget
	// Whatever happened, what was read is written and the file closed
	// properly, unless the output itself failed.
	closeErr := writeErr
	if closeErr == nil {
		closeErr = o.Close(st, time.Now())
	} else {
		_ = o.Abort() // the write error is the one to report
	}
	sum.Bytes = o.Size()
	switch {
	case writeErr != nil:
		// The output failed: runErr is that error, or the end of ctx
		// that the flusher caused.
		return sum, writeErr
	case runErr != nil:
		return sum, runErr
	case closeErr != nil:
		return sum, closeErr
	}
	if statsErr != nil {
		return sum, fmt.Errorf("read loss counters: %w", statsErr)
	}
	return sum, nil
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
