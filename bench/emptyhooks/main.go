// Command emptyhooks attaches a reference BPF program to every skb
// tracepoint that record attaches to, and keeps them attached until it is
// interrupted. It gives the references for host impact:
//
//   - by default an empty program (r0 = 0): what a ping flood loses when
//     every hook runs a program that does nothing at all, which no recorder
//     can beat;
//
//   - with -floor, the unavoidable work of recording each hit: reserve a
//     ring buffer record of the recorder's size, copy -snaplen packet bytes
//     from the MAC header into it with one bpf_probe_read_kernel, submit it
//     without a wakeup; a goroutine drains the ring, as a reader must.
//
//     emptyhooks [-floor] [-snaplen N] [-ready FILE]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/pathcap/pathcap/bpf"
	"github.com/pathcap/pathcap/capture"
)

func main() {
	ready := flag.String("ready", "", "create this file once every program is attached")
	floor := flag.Bool("floor", false, "attach the floor program (reserve, copy, submit) instead of an empty one")
	snaplen := flag.Int("snaplen", 128, "packet bytes the floor program copies")
	flag.Parse()
	if err := run(*ready, *floor, *snaplen); err != nil {
		fmt.Fprintln(os.Stderr, "emptyhooks:", err)
		os.Exit(1)
	}
}

func run(ready string, floor bool, snaplen int) error {
	if snaplen < 1 || snaplen > 65535 {
		return fmt.Errorf("snap length %d: want 1 to 65535", snaplen)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("raise memlock limit: %w", err)
	}
	hooks, err := capture.ListHooks()
	if err != nil {
		return err
	}
	var closers []func() error
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
	}()

	var fl *floorParts
	if floor {
		if fl, err = newFloorParts(snaplen); err != nil {
			return err
		}
		closers = append(closers, fl.ring.Close)
	}
	attached := 0
	for _, h := range hooks {
		if h.Kind != capture.HookTracepoint {
			continue
		}
		insns := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
		if fl != nil {
			insns = fl.program(h.SKBArg)
		}
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name:         "reference",
			Type:         ebpf.Tracing,
			AttachType:   ebpf.AttachTraceRawTp,
			AttachTo:     h.Name,
			License:      "GPL",
			Instructions: insns,
		})
		if err != nil {
			return fmt.Errorf("load program for %s: %w", h.Name, err)
		}
		closers = append(closers, prog.Close)
		l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return fmt.Errorf("attach program to %s: %w", h.Name, err)
		}
		closers = append(closers, l.Close)
		attached++
	}

	done := make(chan struct{})
	if fl != nil {
		rd, err := ringbuf.NewReader(fl.ring)
		if err != nil {
			return fmt.Errorf("open ring buffer reader: %w", err)
		}
		go drain(rd, done)
		defer func() { rd.Close(); <-done }()
	} else {
		close(done)
	}
	fmt.Fprintf(os.Stderr, "emptyhooks: %d tracepoints (floor %v)\n", attached, floor)
	if ready != "" {
		if err := os.WriteFile(ready, nil, 0o644); err != nil {
			return err
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}

// drain reads records from rd until it is closed. The floor programs do
// not wake the reader: it polls.
func drain(rd *ringbuf.Reader, done chan<- struct{}) {
	defer close(done)
	var rec ringbuf.Record
	for {
		rd.SetDeadline(time.Now().Add(10 * time.Millisecond))
		err := rd.ReadInto(&rec)
		if errors.Is(err, ringbuf.ErrClosed) {
			return
		}
	}
}

// floorParts is what the floor programs share: the ring buffer, the record
// size and where the packet bytes are in struct sk_buff.
type floorParts struct {
	ring    *ebpf.Map
	size    int32 // bytes reserved per record
	snaplen int32
	headOff int16 // offset of sk_buff.head
	macOff  int16 // offset of sk_buff.mac_header
}

func newFloorParts(snaplen int) (*floorParts, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("load kernel BTF: %w", err)
	}
	var skb *btf.Struct
	if err := spec.TypeByName("sk_buff", &skb); err != nil {
		return nil, fmt.Errorf("find struct sk_buff: %w", err)
	}
	head, err := memberOffset(skb, "head")
	if err != nil {
		return nil, err
	}
	mac, err := memberOffset(skb, "mac_header")
	if err != nil {
		return nil, err
	}
	ring, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: capture.DefaultRingBufferSize})
	if err != nil {
		return nil, fmt.Errorf("create ring buffer: %w", err)
	}
	return &floorParts{
		ring:    ring,
		size:    int32(unsafe.Sizeof(bpf.SkbEvent{})) + int32(snaplen),
		snaplen: int32(snaplen),
		headOff: int16(head),
		macOff:  int16(mac),
	}, nil
}

// program returns the floor program for a tracepoint whose argument skbArg
// is the skb.
func (f *floorParts) program(skbArg int) asm.Instructions {
	return asm.Instructions{
		// r6 = the skb argument; nothing to do without one
		asm.LoadMem(asm.R6, asm.R1, int16(8*skbArg), asm.DWord),
		asm.JEq.Imm(asm.R6, 0, "out"),
		// r7 = bpf_ringbuf_reserve(ring, size, 0)
		asm.LoadMapPtr(asm.R1, f.ring.FD()),
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
	}
}

// memberOffset returns the byte offset of a member of struct s, looking
// inside anonymous unions and structs.
func memberOffset(t btf.Type, name string) (uint32, error) {
	var members []btf.Member
	switch c := t.(type) {
	case *btf.Struct:
		members = c.Members
	case *btf.Union:
		members = c.Members
	default:
		return 0, fmt.Errorf("find %s: %v is not a struct or union", name, t)
	}
	for _, m := range members {
		if m.Name == name {
			return uint32(m.Offset.Bytes()), nil
		}
		if m.Name == "" {
			if off, err := memberOffset(m.Type, name); err == nil {
				return uint32(m.Offset.Bytes()) + off, nil
			}
		}
	}
	return 0, fmt.Errorf("find %s: no such member", name)
}
