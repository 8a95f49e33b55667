// Package refprog builds the reference BPF programs that the recorder's
// benchmarks measure it against, on a BTF raw tracepoint whose argument
// skbArg is a struct sk_buff *:
//
//   - Empty: r0 = 0, what running any program at the hook costs;
//   - Floor: the unavoidable work of recording a hit: reserve a ring
//     buffer record, copy snap-length packet bytes from the MAC header into
//     it with one bpf_probe_read_kernel, submit it without a wakeup.
package refprog

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// Empty loads an empty program for tracepoint.
func Empty(tracepoint string) (*ebpf.Program, error) {
	return load(tracepoint, "empty", asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()})
}

// Floor is what floor programs share: their ring buffer, the record size
// and where the packet bytes are in struct sk_buff.
type Floor struct {
	// Ring is the ring buffer the floor programs write to. The caller
	// drains it.
	Ring    *ebpf.Map
	size    int32 // bytes reserved per record
	snaplen int32 // packet bytes copied, at the end of the record
	headOff int16 // offset of sk_buff.head
	macOff  int16 // offset of sk_buff.mac_header
}

// NewFloor prepares floor programs that reserve records of fixed bytes
// plus snaplen packet bytes in a ring buffer of ringSize bytes.
func NewFloor(fixed, snaplen, ringSize int) (*Floor, error) {
	if snaplen < 1 || snaplen > 65535 {
		return nil, fmt.Errorf("floor program: snap length %d: want 1 to 65535", snaplen)
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("floor program: load kernel BTF: %w", err)
	}
	var skb *btf.Struct
	if err := spec.TypeByName("sk_buff", &skb); err != nil {
		return nil, fmt.Errorf("floor program: find struct sk_buff: %w", err)
	}
	head, err := memberOffset(skb, "head")
	if err != nil {
		return nil, err
	}
	mac, err := memberOffset(skb, "mac_header")
	if err != nil {
		return nil, err
	}
	ring, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: uint32(ringSize)})
	if err != nil {
		return nil, fmt.Errorf("floor program: create ring buffer: %w", err)
	}
	return &Floor{
		Ring:    ring,
		size:    int32(fixed + snaplen),
		snaplen: int32(snaplen),
		headOff: int16(head),
		macOff:  int16(mac),
	}, nil
}

// Program loads the floor program for tracepoint, whose argument skbArg is
// the skb.
func (f *Floor) Program(tracepoint string, skbArg int) (*ebpf.Program, error) {
	return load(tracepoint, "floor", asm.Instructions{
		// r6 = the skb argument; nothing to do without one
		asm.LoadMem(asm.R6, asm.R1, int16(8*skbArg), asm.DWord),
		asm.JEq.Imm(asm.R6, 0, "out"),
		// r7 = bpf_ringbuf_reserve(ring, size, 0)
		asm.LoadMapPtr(asm.R1, f.Ring.FD()),
		asm.Mov.Imm(asm.R2, f.size),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnRingbufReserve.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Reg(asm.R7, asm.R0),
		// bpf_probe_read_kernel(record + fixed part, snaplen, skb->head + skb->mac_header)
		asm.LoadMem(asm.R3, asm.R6, f.headOff, asm.DWord),
		asm.LoadMem(asm.R4, asm.R6, f.macOff, asm.Half),
		asm.Add.Reg(asm.R3, asm.R4),
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.Add.Imm(asm.R1, f.size-f.snaplen),
		asm.Mov.Imm(asm.R2, f.snaplen),
		asm.FnProbeReadKernel.Call(),
		// bpf_ringbuf_submit(record, BPF_RB_NO_WAKEUP)
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.Mov.Imm(asm.R2, 1),
		asm.FnRingbufSubmit.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	})
}

// Close closes the ring buffer.
func (f *Floor) Close() error {
	return f.Ring.Close()
}

// load loads insns as a BTF raw tracepoint program for tracepoint.
func load(tracepoint, name string, insns asm.Instructions) (*ebpf.Program, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         name,
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceRawTp,
		AttachTo:     tracepoint,
		License:      "GPL",
		Instructions: insns,
	})
	if err != nil {
		return nil, fmt.Errorf("load %s program for %s: %w", name, tracepoint, err)
	}
	return prog, nil
}

// memberOffset returns the byte offset of a member of a struct or union,
// looking inside anonymous unions and structs.
func memberOffset(t btf.Type, name string) (uint32, error) {
	var members []btf.Member
	switch c := t.(type) {
	case *btf.Struct:
		members = c.Members
	case *btf.Union:
		members = c.Members
	default:
		return 0, fmt.Errorf("find member %s: %v is not a struct or union", name, t)
	}
	for _, m := range members {
		if m.Name == name {
			return uint32(m.Offset.Bytes()), nil
		}
		if m.Name == "" {
			if off, err := memberOffset(btf.UnderlyingType(m.Type), name); err == nil {
				return uint32(m.Offset.Bytes()) + off, nil
			}
		}
	}
	return 0, fmt.Errorf("find member %s: not in %v", name, t)
}
