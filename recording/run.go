package recording

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
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

// RunOptions controls Run.
type RunOptions struct {
	// MaxEvents stops the recording after this many events (0: no limit).
	MaxEvents uint64
	// FlushInterval is how often buffered blocks are written out even when
	// events keep coming (0: 100 ms).
	FlushInterval time.Duration
	// Status, when not nil, receives a one-line status every
	// StatusInterval (0: 1 s): events, lost, bytes.
	Status         io.Writer
	StatusInterval time.Duration
	// OnEvent, when not nil, is called after each event is written (used
	// to print events as they come).
	OnEvent func(ev *capture.Event) error
}

// Summary is what a recording did.
type Summary struct {
	Events uint64 // events written
	Lost   uint64 // events the kernel could not hand over
	// Skipped counts hits the in-kernel rate limit (Config.MaxRate) left
	// out.
	Skipped uint64
	Bytes   int64 // bytes written to the output
}

var errEnough = errors.New("event limit reached")

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

// Run records events from src into w until ctx is done, MaxEvents is
// reached or an error occurs; then it writes the interface statistics and
// flushes. out, when not nil, is the counter under w's output, used for the
// status line and the summary.
func Run(ctx context.Context, src Source, w *Writer, out *CountingWriter, opts RunOptions) (Summary, error) {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 100 * time.Millisecond
	}
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = time.Second
	}
	var (
		mu       sync.Mutex // guards w and writeErr between the event loop and the flusher
		writeErr error
	)
	bytesOut := func() int64 {
		if out == nil {
			return 0
		}
		return out.N
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		flush := time.NewTicker(opts.FlushInterval)
		defer flush.Stop()
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
			case <-flush.C:
				mu.Lock()
				if writeErr == nil {
					writeErr = w.Flush()
				}
				mu.Unlock()
			case <-status:
				st, _ := src.Stats()
				mu.Lock()
				events, n := w.Events(), bytesOut()
				mu.Unlock()
				fmt.Fprintf(opts.Status, "\rrecording: %d events, %d lost, %s written ", events, st.Lost, formatBytes(n))
			}
		}
	}()

	runErr := src.Run(ctx, func(ev *capture.Event) error {
		mu.Lock()
		err := writeErr
		if err == nil {
			err = w.WriteEvent(ev)
			writeErr = err
		}
		n := w.Events()
		mu.Unlock()
		if err != nil {
			return err
		}
		if opts.OnEvent != nil {
			if err := opts.OnEvent(ev); err != nil {
				return err
			}
		}
		if opts.MaxEvents != 0 && n >= opts.MaxEvents {
			return errEnough
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if opts.Status != nil {
		fmt.Fprintln(opts.Status)
	}
	if errors.Is(runErr, errEnough) {
		runErr = nil
	}
	st, statsErr := src.Stats()
	sum := Summary{Events: w.Events(), Lost: st.Lost, Skipped: st.OverBudget}
	// Whatever happened, what was read is written and the file closed
	// properly.
	closeErr := writeErr
	if closeErr == nil {
		w.SetSkipped(st.OverBudget)
		closeErr = w.Close(st.Lost, time.Now())
	}
	sum.Bytes = bytesOut()
	if runErr != nil {
		return sum, runErr
	}
	if closeErr != nil {
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
