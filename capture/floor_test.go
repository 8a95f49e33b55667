package capture

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// floorSnaplen is the snap length both the recorder and the floor program
// use in BenchmarkRecordFloor.
const floorSnaplen = 128

// BenchmarkRecordFloor compares the cost of a recorded hit with the floor:
// a reference program on the same tracepoint that does only the
// unavoidable work of recording (reserve a ring buffer record of the same
// size, copy the same snap length of packet bytes from the MAC header,
// submit without wakeup), and an empty program, all attached at once
// during the same ping flood (mean ns per run from kernel.bpf_stats).
//
//	go test ./capture -run '^$' -bench RecordFloor -benchtime 1x -count 3
func BenchmarkRecordFloor(b *testing.B) {
	p := newVethPair(b)
	run(b, "ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "2", p.ipB)
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		b.Fatalf("enable BPF stats: %v", err)
	}
	defer stats.Close()

	empty, err := emptyProgram("net_dev_queue")
	if err != nil {
		b.Fatal(err)
	}
	defer empty.Close()
	le, err := link.AttachTracing(link.TracingOptions{Program: empty, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		b.Fatal(err)
	}
	defer le.Close()

	rec, err := NewRecorder(Config{Hooks: []string{"net_dev_queue"}, Snaplen: floorSnaplen})
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close()
	floor, ring, err := floorProgram("net_dev_queue", uint32(recordSize+floorSnaplen))
	if err != nil {
		b.Fatal(err)
	}
	defer floor.Close()
	defer ring.Close()
	lf, err := link.AttachTracing(link.TracingOptions{Program: floor, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		b.Fatal(err)
	}
	defer lf.Close()

	// Both rings are drained, so that neither program runs into a full
	// ring (a failed reservation is cheaper than a real one).
	rd, err := ringbuf.NewReader(ring)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = rec.Run(ctx, func(*Event) error { return nil })
	}()
	var floorRecords int
	go func() {
		defer wg.Done()
		var r ringbuf.Record
		for {
			// Records come without wakeups: poll.
			rd.SetDeadline(time.Now().Add(5 * time.Millisecond))
			err := rd.ReadInto(&r)
			if errors.Is(err, ringbuf.ErrClosed) {
				return
			}
			if err == nil {
				floorRecords++
			}
		}
	}()
	for range b.N {
		run(b, "ip", "netns", "exec", p.nsA, "ping", "-f", "-q", "-w", "2", p.ipB)
	}
	cancel()
	rd.Close()
	wg.Wait()

	ns, _ := meanRunTime(b, rec.progs[0])
	fl, floorRuns := meanRunTime(b, floor)
	base, _ := meanRunTime(b, empty)
	// The floor's reservations must have succeeded (a full ring would make
	// it look cheaper than it is).
	if float64(floorRecords) < 0.99*float64(floorRuns) {
		b.Errorf("floor program recorded %d of %d hits", floorRecords, floorRuns)
	}
	b.ReportMetric(ns, "recorder-ns/run")
	b.ReportMetric(fl, "floor-ns/run")
	b.ReportMetric(base, "empty-ns/run")
	b.ReportMetric(ns/fl, "recorder/floor")
}

// floorProgram builds the reference program for tracepoint (whose first
// argument is the skb) and its ring buffer: reserve size bytes, copy
// floorSnaplen bytes from skb->head + skb->mac_header into the record
// after the fixed part, submit without wakeup.
func floorProgram(tracepoint string, size uint32) (*ebpf.Program, *ebpf.Map, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, nil, err
	}
	var skb *btf.Struct
	if err := spec.TypeByName("sk_buff", &skb); err != nil {
		return nil, nil, err
	}
	headOff, err := memberOffset(skb, "head")
	if err != nil {
		return nil, nil, err
	}
	macOff, err := memberOffset(skb, "mac_header")
	if err != nil {
		return nil, nil, err
	}
	ring, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 8 << 20})
	if err != nil {
		return nil, nil, fmt.Errorf("create ring buffer: %w", err)
	}
	insns := asm.Instructions{
		// r6 = skb (the tracepoint's first argument)
		asm.LoadMem(asm.R6, asm.R1, 0, asm.DWord),
		// r0 = bpf_ringbuf_reserve(ring, size, 0)
		asm.LoadMapPtr(asm.R1, ring.FD()),
		asm.Mov.Imm(asm.R2, int32(size)),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnRingbufReserve.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Reg(asm.R7, asm.R0),
		// r3 = skb->head + skb->mac_header (BTF-typed loads)
		asm.LoadMem(asm.R3, asm.R6, int16(headOff), asm.DWord),
		asm.LoadMem(asm.R4, asm.R6, int16(macOff), asm.Half),
		asm.Add.Reg(asm.R3, asm.R4),
		// bpf_probe_read_kernel(record + fixed part, snaplen, r3)
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.Add.Imm(asm.R1, int32(recordSize)),
		asm.Mov.Imm(asm.R2, floorSnaplen),
		asm.FnProbeReadKernel.Call(),
		// bpf_ringbuf_submit(record, BPF_RB_NO_WAKEUP)
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.Mov.Imm(asm.R2, 1),
		asm.FnRingbufSubmit.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "floor",
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceRawTp,
		AttachTo:     tracepoint,
		License:      "GPL",
		Instructions: insns,
	})
	if err != nil {
		ring.Close()
		return nil, nil, fmt.Errorf("load floor program: %w", err)
	}
	return prog, ring, nil
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
		return 0, fmt.Errorf("%v is not a struct or union", t)
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
	return 0, fmt.Errorf("no member %s", name)
}
