package capture

import (
	"context"
	"errors"
	"github.com/pathcap/pathcap/internal/refprog"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
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
//
// Two recorders: "own", the tracepoint's own tp_btf program, and on Linux
// 6.10+ "shared", the raw tracepoint program that a layout's tracepoints
// share (with napi_gro_frags_entry, which a veth never runs), whose hit
// adds the attach cookie's helper call.
func BenchmarkRecordFloor(b *testing.B) {
	b.Run("own", func(b *testing.B) { benchRecordFloor(b, []string{"net_dev_queue"}) })
	b.Run("shared", func(b *testing.B) {
		kernel, err := btf.LoadKernelSpec()
		if err != nil {
			b.Fatal(err)
		}
		if !haveSharedTracepoints(haveKfunc(kernel, "bpf_rdonly_cast")) {
			b.Skip("no shared tracepoint programs before Linux 6.10")
		}
		benchRecordFloor(b, []string{"net_dev_queue", "napi_gro_frags_entry"})
	})
}

// benchRecordFloor is BenchmarkRecordFloor with a recorder on hooks, whose
// first program runs at net_dev_queue.
func benchRecordFloor(b *testing.B, hooks []string) {
	p := newVethPair(b)
	run(b, "ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "2", p.ipB)
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		b.Fatalf("enable BPF stats: %v", err)
	}
	defer stats.Close()

	empty, err := refprog.Empty("net_dev_queue")
	if err != nil {
		b.Fatal(err)
	}
	defer empty.Close()
	le, err := link.AttachTracing(link.TracingOptions{Program: empty, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		b.Fatal(err)
	}
	defer le.Close()

	rec, err := NewRecorder(Config{Hooks: hooks, Snaplen: floorSnaplen})
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close()
	// Its first program runs at net_dev_queue alone (the others end the
	// tracking of freed skbs): a tp_btf program of its own, or the raw
	// tracepoint program it shares.
	want := ebpf.Tracing
	if len(hooks) > 1 {
		want = ebpf.RawTracepoint
	}
	if got := rec.progs[0].Type(); got != want {
		b.Fatalf("recorder's program at net_dev_queue is a %v program, want %v", got, want)
	}
	ref, err := refprog.NewFloor(recordSize, floorSnaplen, 8<<20)
	if err != nil {
		b.Fatal(err)
	}
	defer ref.Close()
	ring := ref.Ring
	floor, err := ref.Program("net_dev_queue", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer floor.Close()
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
