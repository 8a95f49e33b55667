package recording

import (
	"slices"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/kmeta"
)

// StackSymbolizer resolves the frames of kernel stacks. When the Writer's
// Symbolizer implements it, the frames of Event.Stack are written as
// functions with offsets; otherwise as addresses.
type StackSymbolizer interface {
	// SymbolizeFrame returns the function that holds kernel code address
	// addr, addr's offset in it and the function's module ("" for the
	// kernel image); ok is false when the address is not known.
	SymbolizeFrame(addr uint64) (name string, offset uint64, module string, ok bool)
}

// Bounds of a Writer's table of the stacks it has written. When a new
// stack would exceed either, the table is emptied and numbering goes on:
// a stack seen again after that is written in full again, under a new
// number. Nothing is lost, the file only grows by one definition per stack
// still in use.
const (
	// MaxStacks is the most distinct stacks a Writer remembers.
	MaxStacks = 1 << 16
	// maxStackBytes bounds the memory of the remembered stacks (their
	// addresses and short forms).
	maxStackBytes = 32 << 20
)

// stackEntry is a stack written before: its number, its addresses, and its
// short-form comment (funcs=), written for every later event with it.
type stackEntry struct {
	id    uint64
	addrs []uint64
	short []byte
	part  uint64      // the file the stack was last defined in
	next  *stackEntry // another stack with the same hash
}

// stackTable numbers distinct stacks in order of first appearance.
type stackTable struct {
	byHash map[uint64]*stackEntry
	n      int
	bytes  int
	lastID uint64
	resets int
	part   uint64 // the current file (Writer.part)
}

// hashStack hashes an address sequence.
func hashStack(addrs []uint64) uint64 {
	h := uint64(len(addrs)) * 0x9e3779b97f4a7c15
	for _, a := range addrs {
		h ^= a
		h *= 0xff51afd7ed558ccd
		h ^= h >> 32
	}
	return h
}

// lookup returns the entry of addrs, or nil and the hash for add.
func (t *stackTable) lookup(addrs []uint64) (*stackEntry, uint64) {
	h := hashStack(addrs)
	for e := t.byHash[h]; e != nil; e = e.next {
		if slices.Equal(e.addrs, addrs) {
			return e, h
		}
	}
	return nil, h
}

// add remembers a new stack under the next number and returns its entry.
// funcs is the value of its short form.
func (t *stackTable) add(h uint64, addrs []uint64, funcs []byte) *stackEntry {
	size := 8*len(addrs) + len(funcs) + 96
	if t.byHash == nil || t.n >= MaxStacks || t.bytes+size > maxStackBytes {
		if t.byHash != nil {
			t.resets++
		}
		t.byHash = make(map[uint64]*stackEntry)
		t.n, t.bytes = 0, 0
	}
	t.lastID++
	e := &stackEntry{id: t.lastID, addrs: slices.Clone(addrs), part: t.part, next: t.byHash[h]}
	e.short = kmeta.AppendStackComment(make([]byte, 0, len(kmeta.StackPrefix)+32+len(funcs)), &kmeta.StackComment{ID: e.id, Frames: funcs})
	t.byHash[h] = e
	t.n++
	t.bytes += size
	return e
}

// stack sets the stack keys of m for ev and returns the event's stack
// comment, nil if it has none.
func (w *Writer) stack(ev *capture.Event, m *kmeta.Event) []byte {
	if ev.StackLost || len(ev.Stack) == 0 {
		// A stack that was asked for but has no frame is lost too.
		m.StackLost, m.StackErr = true, ev.StackErr
		return nil
	}
	e, h := w.stacks.lookup(ev.Stack)
	if e != nil && e.part == w.stacks.part {
		m.Stack = e.id
		return e.short
	}
	w.frames, w.funcs = w.frames[:0], w.funcs[:0]
	for i, addr := range ev.Stack {
		if i > 0 {
			w.frames = append(w.frames, ';')
			w.funcs = append(w.funcs, ';')
		}
		w.frames, w.funcs = w.appendFrame(w.frames, w.funcs, addr)
	}
	if e != nil {
		// Defined in an earlier file: defined again, under its number,
		// so that every file holds the definitions it uses.
		e.part = w.stacks.part
	} else {
		e = w.stacks.add(h, ev.Stack, w.funcs)
	}
	m.Stack = e.id
	w.stackComment = kmeta.AppendStackComment(w.stackComment[:0], &kmeta.StackComment{ID: e.id, Full: true, Frames: w.frames})
	return w.stackComment
}

// appendFrame appends the full and the short frame of a return address.
// The function is looked up at addr-1, the call instruction, so that a
// call at the very end of a function (to a function that does not return)
// is not attributed to the next one; the offset is addr's, as the kernel
// prints backtraces (%pB).
func (w *Writer) appendFrame(full, short []byte, addr uint64) ([]byte, []byte) {
	if w.stackSymbols != nil && addr != 0 {
		if name, off, mod, ok := w.stackSymbols.SymbolizeFrame(addr - 1); ok {
			full = kmeta.AppendFrame(full, name, off+1, mod, true)
			short = kmeta.AppendFrame(short, name, 0, mod, false)
			return full, short
		}
	}
	full = kmeta.AppendAddressFrame(full, addr)
	short = kmeta.AppendAddressFrame(short, addr)
	return full, short
}

// Stacks returns the number of distinct stacks defined in the file so far
// (each written once in full, until the table is emptied) and how often
// the stack table was emptied.
func (w *Writer) Stacks() (defined uint64, resets int) {
	return w.stacks.lastID, w.stacks.resets
}
