package capture

import "sync"

// Progress is how far NewRecorder has come in one step of its start-up:
// Done of Total programs or attachments of Step. Verifying programs is
// most of the start-up time, seconds on older kernels or with many
// functions.
type Progress struct {
	// Step names what is counted: "tracepoint programs", "fentry
	// programs", "kprobe programs", "kprobes" or "kprobe-multi link".
	Step string
	// Done of Total are finished.
	Done, Total int
}

// progress hands Progress reports to Config.Progress one at a time; the
// zero value (no callback) does nothing.
type progress struct {
	mu sync.Mutex
	fn func(Progress)
}

// report calls the callback, if any, with step, done and total. It may
// be called from several goroutines.
func (p *progress) report(step string, done, total int) {
	if p == nil || p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fn(Progress{Step: step, Done: done, Total: total})
}
