package pcapfilter

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// UnrollDepth is how many times Unroll lets a loop run: libpcap's
// protochain loop runs once per IPv6 extension header (or IPv4 option
// header it walks), so a chain of up to UnrollDepth-1 such headers before
// the wanted protocol is followed; a deeper chain does not match.
const UnrollDepth = 9

// classic BPF opcode fields.
const (
	classMask = 0x07
	classJmp  = 0x05
	opMask    = 0xf0
	opJA      = 0x00
	classRet  = 0x06
)

// Unroll turns a classic BPF program with backward jumps (libpcap emits
// them for protochain) into an equivalent forward-only program, which
// translators such as cbpfc and Go's BPF machine require. The program is
// laid out depth times; a backward jump in copy k goes to the same
// instruction in copy k+1, so the registers and scratch memory carry over
// unchanged, and in the last copy it rejects the packet. The result
// behaves exactly like the original for packets whose loops take fewer
// than depth backward jumps. A program without backward jumps is returned
// as it is.
func Unroll(prog []bpf.RawInstruction, depth int) ([]bpf.RawInstruction, error) {
	n := len(prog)
	backward := false
	for pc, in := range prog {
		if in.Op&classMask != classJmp {
			continue
		}
		if in.Op&opMask == opJA {
			if int32(in.K) < 0 || int64(pc)+1+int64(in.K) > int64(n) {
				backward = true
			}
			continue
		}
		// Conditional jumps have 8-bit forward offsets: never backward.
	}
	if !backward {
		return prog, nil
	}
	if depth < 1 {
		return nil, fmt.Errorf("unroll depth %d", depth)
	}
	total := depth*n + 1 // the copies, then one "reject" instruction
	if total > 1<<16 {
		return nil, fmt.Errorf("program of %d instructions too large to unroll %d times", n, depth)
	}
	out := make([]bpf.RawInstruction, 0, total)
	for k := 0; k < depth; k++ {
		for pc, in := range prog {
			if in.Op&classMask == classJmp && in.Op&opMask == opJA {
				target := int64(pc) + 1 + int64(int32(in.K))
				if target < 0 || target >= int64(n) {
					return nil, fmt.Errorf("instruction %d jumps outside the program", pc)
				}
				if target <= int64(pc) {
					abs := int64(k*n + pc)
					dest := int64(total - 1) // reject
					if k+1 < depth {
						dest = int64((k+1)*n) + target
					}
					in.K = uint32(dest - abs - 1)
				}
			}
			out = append(out, in)
		}
	}
	out = append(out, bpf.RawInstruction{Op: classRet, K: 0}) // ret #0
	return out, nil
}
