package capture

import (
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// filterFunc is the BPF-to-BPF function in bpf/skb.c that decides whether a
// packet not yet followed is recorded. It is called with R1 pointing to the
// first captured byte and R2 just past the last, and keeps the packet if it
// returns non-zero in R0.
const filterFunc = "filter_packet"

// replaceFilter replaces the body of filterFunc in prog with body, keeping
// the function's symbol and BTF function info on its first instruction.
func replaceFilter(prog *ebpf.ProgramSpec, body asm.Instructions) error {
	if len(body) == 0 {
		return fmt.Errorf("replace %s: empty body", filterFunc)
	}
	insns := prog.Instructions
	start := slices.IndexFunc(insns, func(ins asm.Instruction) bool { return ins.Symbol() == filterFunc })
	if start < 0 {
		return fmt.Errorf("replace %s: function not in program %s", filterFunc, prog.Name)
	}
	end := len(insns)
	for i := start + 1; i < len(insns); i++ {
		if insns[i].Symbol() != "" {
			end = i
			break
		}
	}
	body = slices.Clone(body)
	body[0] = body[0].WithMetadata(insns[start].Metadata)
	prog.Instructions = slices.Concat(insns[:start], body, insns[end:])
	return nil
}
