package capture

import (
	"encoding/binary"
	"strings"

	"github.com/pathcap/pathcap/internal/kallsyms"
)

// MaxStackDepth is the largest Config.StackDepth: the default of the
// kernel.perf_event_max_stack sysctl, which caps what bpf_get_stack
// returns.
const MaxStackDepth = 127

// glueModules are the kallsyms pseudo-modules of code that runs BPF
// programs rather than the kernel path being recorded: JIT-compiled
// programs and their trampolines ([bpf]) and ftrace trampolines.
var glueModules = []string{"bpf", "__builtin__ftrace"}

// gluePrefixes start the names of kernel functions that only dispatch a
// hook to its BPF program: tracepoint iterators and their BPF wrappers,
// and the kprobe, fprobe and trampoline dispatchers. A stack is trimmed up
// to the last of its innermost frames that is one of these.
var gluePrefixes = []string{
	"bpf_trace_run", "__bpf_trace_", "__traceiter_",
	"bpf_prog_", "bpf_trampoline_", "__bpf_prog_enter", "__bpf_prog_exit",
	"bpf_get_stack", "bpf_get_stackid",
	"kprobe_", "trace_call_bpf", "kprobe_multi_link_", "bpf_kprobe_multi_",
	"fprobe_", "__fprobe_", "rethook_", "arch_rethook_", "ftrace_", "__ftrace_",
	"perf_", "get_perf_callchain",
}

// stackTrimmer removes the frames of the BPF program and of the tracing
// glue that called it from the inner end of recorded stacks, so that a
// stack starts at the kernel function that fired the hook. Without a
// symbol table it leaves stacks as they are.
type stackTrimmer struct {
	syms *kallsyms.Table
	// glue caches the verdict per address: stacks repeat the same few
	// inner frames. Bounded by maxGlueCache entries.
	glue map[uint64]bool
}

// maxGlueCache bounds stackTrimmer's cache.
const maxGlueCache = 1 << 12

// newStackTrimmer returns a trimmer using the running kernel's symbols. It
// must be created after the BPF programs are loaded, so that their symbols
// are in the table.
func newStackTrimmer() *stackTrimmer {
	syms, err := kallsyms.Load()
	if err != nil {
		// Without symbols no frame can be recognised: keep them all.
		return &stackTrimmer{}
	}
	return &stackTrimmer{syms: syms, glue: make(map[uint64]bool)}
}

// isGlue reports whether addr is in a BPF program or tracing glue.
func (t *stackTrimmer) isGlue(addr uint64) bool {
	if g, ok := t.glue[addr]; ok {
		return g
	}
	g := false
	if sym, ok := t.syms.Resolve(addr); ok {
		for _, m := range glueModules {
			g = g || sym.Module == m
		}
		for _, p := range gluePrefixes {
			g = g || strings.HasPrefix(sym.Name, p)
		}
	}
	if len(t.glue) < maxGlueCache {
		t.glue[addr] = g
	}
	return g
}

// trim returns stack without its inner glue frames. Only a prefix is
// removed: a glue name deeper in the stack (a packet sent from a BPF
// program, say) is part of the path.
func (t *stackTrimmer) trim(stack []uint64) []uint64 {
	if t == nil || t.syms == nil {
		return stack
	}
	n := 0
	for n < len(stack) && t.isGlue(stack[n]) {
		n++
	}
	if n == len(stack) {
		// Only glue: better an untrimmed stack than none.
		return stack
	}
	return stack[n:]
}

// decodeStack fills e.Stack, e.StackLost and e.StackErr from the stack area
// of a record (area) and bpf_get_stack's result (n: bytes written, or a
// negative errno). buf is reused for the frames.
func (r *Recorder) decodeStack(e *Event, area []byte, n int32, buf *[]uint64) {
	e.Stack, e.StackLost, e.StackErr = nil, false, 0
	switch {
	case n < 0:
		e.StackLost, e.StackErr = true, -n
		return
	case n == 0 || int(n) > len(area):
		e.StackLost = true
		return
	}
	s := (*buf)[:0]
	// The record holds the frames in host byte order.
	for i := 0; i+8 <= int(n); i += 8 {
		s = append(s, binary.NativeEndian.Uint64(area[i:]))
	}
	*buf = s
	e.Stack = r.trimmer.trim(s)
}
