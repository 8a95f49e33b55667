package capture

import (
	"errors"
	"slices"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/pathcap/pathcap/bpf"
)

// TestInlineFilter splices every expression of the differential test into
// the BTF-typed program: none may fall back to a call, and afterwards
// nothing calls or holds filter_packet. TestFilterDifferential checks what
// the spliced programs keep, against libpcap.
func TestInlineFilter(t *testing.T) {
	requireLibpcap(t)
	spec, err := bpf.LoadSkb()
	if err != nil {
		t.Fatal(err)
	}
	for _, expr := range filterExpressions {
		f, err := CompileFilter(expr)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		prog := spec.Programs[bpf.SkbProgOnSkb].Copy()
		before := len(prog.Instructions)
		if err := inlineFilter(prog, f.body(f.layout(512).bufSize)); err != nil {
			t.Errorf("%q: %v", expr, err)
			continue
		}
		if slices.ContainsFunc(prog.Instructions, func(ins asm.Instruction) bool {
			return ins.Symbol() == filterFunc || ins.Reference() == filterFunc
		}) {
			t.Errorf("%q: %s still in the program", expr, filterFunc)
		}
		if len(prog.Instructions) <= before {
			t.Errorf("%q: %d instructions after splicing, %d before", expr, len(prog.Instructions), before)
		}
	}
}

// TestInlineFilterRefuses checks that a body using a register the splice
// does not save, or the stack beyond scratch memory, is left to a call.
func TestInlineFilterRefuses(t *testing.T) {
	spec, err := bpf.LoadSkb()
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]asm.Instructions{
		"r9":         {asm.Mov.Imm(asm.R9, 1), asm.Mov.Imm(asm.R0, 0), asm.Return()},
		"deep stack": {asm.StoreMem(asm.RFP, -400, asm.R1, asm.DWord), asm.Mov.Imm(asm.R0, 0), asm.Return()},
		"r10 copy":   {asm.Mov.Reg(asm.R3, asm.RFP), asm.Mov.Imm(asm.R0, 0), asm.Return()},
	} {
		prog := spec.Programs[bpf.SkbProgOnSkb].Copy()
		before := slices.Clone(prog.Instructions)
		if err := inlineFilter(prog, body); !errors.Is(err, errNoInline) {
			t.Errorf("%s: %v, want errNoInline", name, err)
		}
		if len(prog.Instructions) != len(before) {
			t.Errorf("%s: program changed although refused", name)
		}
	}
}
