package capture

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Why the filter is inlined: on CPUs with the SRSO "safe RET" mitigation
// (AMD Zen here) every return instruction goes through a return thunk, and
// a BPF-to-BPF call of filter_packet cost about 17 ns per hit, as much as
// the rest of a rejected hit. Spliced into its callers, the translated
// filter runs without a call or a return.
//
// The body uses r0-r5 (free at a call) and r6-r8 (the caller's), so the
// splice saves r6-r8 in stack slots below anything the compiler uses and
// restores them after.

// inlineSlots are the stack offsets (from r10) where a spliced filter
// saves r6, r7 and r8. The compiler's own frame must end above them.
var inlineSlots = [3]int16{-488, -496, -504}

// inlineScratch is how far a spliced filter's scratch memory (classic
// BPF's M[], which cbpfc keeps in the first bytes below the filter's frame)
// moves down, below the compiler's frame and above inlineSlots.
const inlineScratch = 320

// errNoInline says that a filter cannot be spliced into a program; the
// program then calls it.
var errNoInline = errors.New("filter cannot be inlined")

// inlineFilter replaces every call of filterFunc in prog's main function
// with body, and removes filterFunc from prog. It returns errNoInline,
// leaving prog unchanged, if the body uses registers the splice does not
// save or the stack other than for scratch memory, or the compiler's frame
// reaches the slots the splice uses.
func inlineFilter(prog *ebpf.ProgramSpec, body asm.Instructions) error {
	scratch := false
	for _, ins := range body {
		class := ins.OpCode.Class()
		switch {
		case ins.Src == asm.R9 || ins.Dst == asm.R9 || ins.IsFunctionCall() || ins.IsBuiltinCall():
			return errNoInline
		case class.IsLoad() && ins.Src == asm.RFP, class.IsStore() && ins.Dst == asm.RFP:
			// Scratch memory: moved by inlineScratch, it must stay above
			// the save slots.
			if ins.Offset < -(int16(-inlineSlots[0])-inlineScratch-8) || ins.Offset >= 0 {
				return errNoInline
			}
			scratch = true
		case ins.Src == asm.RFP || ins.Dst == asm.RFP:
			return errNoInline
		}
	}
	insns := prog.Instructions
	start := slices.IndexFunc(insns, func(ins asm.Instruction) bool { return ins.Symbol() == filterFunc })
	if start <= 0 {
		return fmt.Errorf("inline %s: function not in program %s", filterFunc, prog.Name)
	}
	end := len(insns)
	for i := start + 1; i < len(insns); i++ {
		if insns[i].Symbol() != "" {
			end = i
			break
		}
	}
	// Only the main function (before the first other function) may call
	// it, and it is the last function: then removing it moves nothing.
	mainEnd := slices.IndexFunc(insns[1:], func(ins asm.Instruction) bool { return ins.Symbol() != "" }) + 1
	if mainEnd != start || end != len(insns) {
		return errNoInline
	}
	main := insns[:mainEnd]
	bottom := int(inlineSlots[0])
	if scratch {
		bottom = -inlineScratch
	}
	if frameBottom(main) < bottom {
		return errNoInline
	}

	// Raw (8-byte slot) positions of the main function's instructions,
	// before and after the splice.
	oldPos := make([]int, len(main)+1)
	newPos := make([]int, len(main)+1)
	var out asm.Instructions
	site, pos := 0, 0
	for i, ins := range main {
		oldPos[i+1] = oldPos[i] + int(ins.Size()/asm.InstructionSize)
		newPos[i] = pos
		add := asm.Instructions{ins}
		if ins.IsFunctionCall() && ins.Reference() == filterFunc {
			add = splice(body, site, ins)
			site++
		}
		out = append(out, add...)
		pos += rawLen(add)
	}
	newPos[len(main)] = pos
	if site == 0 {
		return errNoInline
	}

	// The compiler's jumps are raw offsets: move those that cross a
	// splice. The spliced bodies jump by label.
	byOld := make(map[int]int, len(main)+1)
	for i := range oldPos {
		byOld[oldPos[i]] = newPos[i]
	}
	j := 0
	for i, ins := range main {
		if ins.IsFunctionCall() && ins.Reference() == filterFunc {
			j += len(splice(body, 0, ins))
			continue
		}
		op := ins.OpCode.JumpOp()
		if ins.OpCode.Class().IsJump() && op != asm.Call && op != asm.Exit && ins.Reference() == "" {
			target, ok := byOld[oldPos[i]+1+int(ins.Offset)]
			if !ok {
				return fmt.Errorf("inline %s: jump at %d into the middle of an instruction", filterFunc, i)
			}
			out[j].Offset = int16(target - newPos[i] - 1)
		}
		j++
	}
	prog.Instructions = out
	return nil
}

// splice returns body for call site n: r6-r8 saved, labels made unique,
// scratch memory moved down by inlineScratch, returns turned into jumps
// past the body, r6-r8 restored. The first
// instruction takes call's source line.
func splice(body asm.Instructions, n int, call asm.Instruction) asm.Instructions {
	prefix := fmt.Sprintf("pathcap_inline%d_", n)
	done := prefix + "done"
	out := asm.Instructions{
		asm.StoreMem(asm.RFP, inlineSlots[0], asm.R6, asm.DWord).WithSource(call.Source()),
		asm.StoreMem(asm.RFP, inlineSlots[1], asm.R7, asm.DWord),
		asm.StoreMem(asm.RFP, inlineSlots[2], asm.R8, asm.DWord),
	}
	for _, ins := range body {
		sym := ins.Symbol()
		ref := ins.Reference()
		if ins.OpCode.JumpOp() == asm.Exit {
			ins = asm.Ja.Label(done)
		} else {
			ins = ins.WithMetadata(asm.Metadata{})
			if ref != "" {
				ins = ins.WithReference(prefix + ref)
			}
			if c := ins.OpCode.Class(); c.IsLoad() && ins.Src == asm.RFP || c.IsStore() && ins.Dst == asm.RFP {
				ins.Offset -= inlineScratch
			}
		}
		if sym != "" {
			ins = ins.WithSymbol(prefix + sym)
		}
		out = append(out, ins)
	}
	return append(out,
		asm.LoadMem(asm.R6, asm.RFP, inlineSlots[0], asm.DWord).WithSymbol(done),
		asm.LoadMem(asm.R7, asm.RFP, inlineSlots[1], asm.DWord),
		asm.LoadMem(asm.R8, asm.RFP, inlineSlots[2], asm.DWord),
	)
}

// frameBottom returns a bound below the lowest stack offset insns access
// through r10 or a pointer made from it (0 if none).
func frameBottom(insns asm.Instructions) int {
	low := 0
	for _, ins := range insns {
		switch {
		case ins.OpCode.Class().IsLoad() && ins.Src == asm.RFP,
			ins.OpCode.Class().IsStore() && ins.Dst == asm.RFP:
			low = min(low, int(ins.Offset))
		case ins.OpCode.Class().IsALU() && ins.OpCode.ALUOp() == asm.Add && ins.OpCode.Source() == asm.ImmSource && ins.Constant < 0:
			// A pointer into the frame is made as rX = r10; rX += imm.
			// Any negative add counts: too low a bound only stops the
			// splice.
			low = min(low, int(ins.Constant))
		}
	}
	return low
}

// rawLen returns the length of insns in 8-byte slots.
func rawLen(insns asm.Instructions) int {
	n := 0
	for _, ins := range insns {
		n += int(ins.Size() / asm.InstructionSize)
	}
	return n
}
