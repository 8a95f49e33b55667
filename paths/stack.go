package paths

import (
	"strings"

	"github.com/pathcap/pathcap/kmeta"
)

// Stack is a kernel call chain as recorded (docs/FORMAT.md, "Kernel
// stacks"). The hops of a recording with the same stack share one Stack;
// it is not modified once made.
type Stack struct {
	// ID is the stack's number in its recording.
	ID uint64
	// Frames are innermost first: "function+0xoffset", followed by
	// "[module]" for module code, or the address in hex when it could not
	// be resolved. Without offsets when only the short form was found in
	// the input (Offsets is false).
	Frames []string
	// Offsets reports that Frames carry offsets: the stack's definition
	// was read.
	Offsets bool
	// text is the frames as written, ';'-separated; Frames slice it.
	text string
	// funcs are the frames' function names (slicing text too).
	funcs []string
}

// newStack makes the Stack of a frames value.
func newStack(id uint64, frames []byte, offsets bool) *Stack {
	s := &Stack{ID: id, Offsets: offsets, text: string(frames)}
	n := kmeta.CountFrames(frames)
	both := make([]string, 0, 2*n)
	rest := s.text
	for {
		i := strings.IndexByte(rest, ';')
		if i < 0 {
			both = append(both, rest)
			break
		}
		both = append(both, rest[:i])
		rest = rest[i+1:]
	}
	s.Frames = both[:n:n]
	for _, f := range s.Frames {
		both = append(both, kmeta.FrameFunction(f))
	}
	s.funcs = both[n:]
	return s
}

// Text returns the frames joined by ';', as the recording writes them.
func (s *Stack) Text() string { return s.text }

// Function returns the function name of frame i, without offset and
// module.
func (s *Stack) Function(i int) string { return s.funcs[i] }

// size is an estimate of the memory a Stack takes.
func (s *Stack) size() int { return len(s.text) + 32*len(s.Frames) + 96 }

// Bounds of an Input's table of stack definitions: past either, the table
// is emptied. A hop whose stack was defined before that gets the function
// names of its own short-form comment instead (Stack.Offsets false).
const (
	maxStacks     = 1 << 16
	maxStackBytes = 64 << 20
)

// stackKey identifies a stack: its number is unique within a recording.
type stackKey struct {
	recording int
	id        uint64
}

// stackTable holds the stacks read so far.
type stackTable struct {
	byKey map[stackKey]*Stack
	bytes int
}

func (t *stackTable) get(k stackKey) *Stack { return t.byKey[k] }

func (t *stackTable) put(k stackKey, s *Stack) {
	if t.byKey == nil || len(t.byKey) >= maxStacks || t.bytes+s.size() > maxStackBytes {
		t.byKey = make(map[stackKey]*Stack)
		t.bytes = 0
	}
	if old := t.byKey[k]; old != nil {
		t.bytes -= old.size()
	}
	t.byKey[k] = s
	t.bytes += s.size()
}

// stackFor returns the stack of an event whose metadata says stack=id,
// from its stack comment among comments and the stacks read before. It
// returns nil when the event has no stack comment with that number, and
// an error for one that does not parse.
func (t *stackTable) stackFor(recording int, id uint64, comments [][]byte) (*Stack, error) {
	var sc kmeta.StackComment
	found := false
	for _, c := range comments {
		if !kmeta.IsStackComment(c) {
			continue
		}
		if err := kmeta.ParseStackComment(c, &sc); err != nil {
			return nil, err
		}
		if sc.ID == id {
			found = true
			break
		}
	}
	k := stackKey{recording, id}
	known := t.get(k)
	if !found {
		return known, nil
	}
	if sc.Full {
		if known != nil && known.Offsets && known.text == string(sc.Frames) {
			return known, nil
		}
		s := newStack(id, sc.Frames, true)
		t.put(k, s)
		return s, nil
	}
	// The short form: the definition read before, if the frames agree.
	if known != nil && len(known.Frames) == kmeta.CountFrames(sc.Frames) {
		return known, nil
	}
	s := newStack(id, sc.Frames, false)
	t.put(k, s)
	return s, nil
}

// isTracingFrame reports functions of the tracing machinery that sits on
// top of every recorded stack (the BPF program and the code that called
// it), which are no part of the packet's path.
func isTracingFrame(frame string) bool {
	fn, mod := kmeta.FrameFunction(frame), kmeta.FrameModule(frame)
	if mod == "bpf" || strings.HasPrefix(mod, "__builtin__") || strings.HasPrefix(fn, "0x") {
		return true
	}
	for _, p := range tracingPrefixes {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}

var tracingPrefixes = []string{
	"bpf_", "__bpf_", "trace_", "__trace", "__traceiter_", "perf_trace_", "perf_", "kprobe_", "__kprobes",
	"ftrace_", "__ftrace", "fprobe", "rethook", "arch_rethook", "kretprobe", "pre_handler_kretprobe",
	"__kretprobe", "aggr_pre_handler", "opt_pre_handler", "optimized_callback",
}

// Derived returns the kernel functions that the packet passed on its way
// to hop i, derived from the stacks: the functions of hop i's call chain
// below the part it shares with the previous hop that has a stack, in the
// order they were entered (outermost first). The tracing machinery on top
// of the stack, unresolved addresses, and functions that are hooks of the
// packet's other hops (kprobe, fentry, fexit) are left out. For the first
// hop with a stack, the whole call chain. Derived returns nil when hop i
// has no stack.
func (p *Packet) Derived(i int) []string {
	var out []string
	p.EachDerived(i, func(fn string) { out = append(out, fn) })
	return out
}

// EachDerived calls fn for each function Derived(i) returns, in order,
// without making the slice.
func (p *Packet) EachDerived(i int, fn func(string)) {
	s := p.Hops[i].Stack
	if s == nil {
		return
	}
	var prev *Stack
	for j := i - 1; j >= 0; j-- {
		if p.Hops[j].Stack != nil {
			prev = p.Hops[j].Stack
			break
		}
	}
	if prev == s {
		return
	}
	n := len(s.funcs)
	common := 0
	if prev != nil {
		m := len(prev.funcs)
		for common < n && common < m && s.funcs[n-1-common] == prev.funcs[m-1-common] {
			common++
		}
	}
	top := 0
	for top < n && isTracingFrame(s.Frames[top]) {
		top++
	}
	hooks := p.hasFunctionHooks()
	for k := n - 1 - common; k >= top; k-- {
		f := s.funcs[k]
		if strings.HasPrefix(f, "0x") || hooks && p.isFunctionHook(f) {
			continue
		}
		fn(f)
	}
}

// hasFunctionHooks reports whether any hop is at a function hook
// (anything but a tracepoint).
func (p *Packet) hasFunctionHooks() bool {
	for i := range p.Hops {
		if kmeta.IsFunctionKind(p.Hops[i].Meta.Kind) {
			return true
		}
	}
	return false
}

// isFunctionHook reports whether fn is the function of one of the packet's
// hops at function hooks.
func (p *Packet) isFunctionHook(fn string) bool {
	for i := range p.Hops {
		m := p.Hops[i].Meta
		if m.Hook == fn && kmeta.IsFunctionKind(m.Kind) {
			return true
		}
	}
	return false
}
