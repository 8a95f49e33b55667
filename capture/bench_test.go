package capture

import (
	"context"
	"github.com/pathcap/pathcap/internal/refprog"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// BenchmarkPingFlood floods a veth pair with ping for 2 s per iteration,
// without recording and with all hooks recorded, and reports round trips
// per second, events per second, lost events and the BPF programs' mean run
// time (from kernel.bpf_stats). Run it with -benchtime=1x.
func BenchmarkPingFlood(b *testing.B) {
	p := newVethPair(b)
	flood := func(b *testing.B) float64 {
		out := run(b, "ip", "netns", "exec", p.nsA, "ping", "-f", "-q", "-w", "2", p.ipB)
		m := regexp.MustCompile(`(\d+) received`).FindStringSubmatch(out)
		if m == nil {
			b.Fatalf("parse ping output: %s", out)
		}
		n, _ := strconv.Atoi(m[1])
		return float64(n) / 2
	}

	b.Run("baseline", func(b *testing.B) {
		var rate float64
		for range b.N {
			rate += flood(b)
		}
		b.ReportMetric(rate/float64(b.N), "roundtrips/s")
	})

	for _, bc := range []struct {
		name   string
		wakeup int
	}{
		{"recording", 0},
		{"recording-wake-every-record", 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
			if err != nil {
				b.Fatalf("enable BPF stats: %v", err)
			}
			defer stats.Close()
			r, err := NewRecorder(Config{wakeupBytes: bc.wakeup})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = r.Run(ctx, func(*Event) error { return nil })
			}()

			var rate float64
			start := time.Now()
			for range b.N {
				rate += flood(b)
			}
			elapsed := time.Since(start)
			cancel()
			wg.Wait()

			st, err := r.Stats()
			if err != nil {
				b.Fatal(err)
			}
			var runtime time.Duration
			var runs uint64
			for _, prog := range r.progs {
				ps, err := prog.Stats()
				if err != nil {
					b.Fatal(err)
				}
				runtime += ps.Runtime
				runs += ps.RunCount
			}
			b.ReportMetric(rate/float64(b.N), "roundtrips/s")
			b.ReportMetric(float64(st.Events)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(st.Lost), "lost")
			if runs > 0 {
				b.ReportMetric(float64(runtime.Nanoseconds())/float64(runs), "bpf-ns/run")
			}
		})
	}
}

// BenchmarkFilterCost measures what a hit costs the BPF program at
// net_dev_queue, as mean ns per run from kernel.bpf_stats, while ping
// floods a veth pair for 2 s per iteration: without a filter (every hit is
// recorded), and with filters that reject every hit (all are ICMP echo
// requests and replies). An empty tp_btf program attached to the same
// tracepoint during the same flood is the reference; "ratio" is the
// recorder's ns/run over the empty program's. Run it with -benchtime=1x
// (bench/filtercost/run.sh does, and prints a table).
func BenchmarkFilterCost(b *testing.B) {
	p := newVethPair(b)
	// Resolve ARP so that the flood is ICMP only.
	run(b, "ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "2", p.ipB)
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		b.Fatalf("enable BPF stats: %v", err)
	}
	defer stats.Close()

	compile := func(expr string) *Filter {
		f, err := CompileFilter(expr)
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"no-filter-records-all", Config{}},
		{"mark-rejects", Config{Match: Match{Mark: 1, MarkMask: 0xffffffff}}},
		{"tcp-port-80-rejects", Config{Filter: compile("tcp port 80")}},
		{"tcp-port-80-rejects-probe-read", Config{Filter: compile("tcp port 80"), probeRead: true}},
		{"ip-protochain-6-rejects", Config{Filter: compile("ip protochain 6")}},
		{"ip6-protochain-58-rejects", Config{Filter: compile("ip6 protochain 58")}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			empty, err := refprog.Empty("net_dev_queue")
			if err != nil {
				b.Fatal(err)
			}
			defer empty.Close()
			l, err := link.AttachTracing(link.TracingOptions{Program: empty, AttachType: ebpf.AttachTraceRawTp})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()

			cfg := bc.cfg
			cfg.Hooks = []string{"net_dev_queue"}
			r, err := NewRecorder(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = r.Run(ctx, func(*Event) error { return nil })
			}()
			for range b.N {
				run(b, "ip", "netns", "exec", p.nsA, "ping", "-f", "-q", "-w", "2", p.ipB)
			}
			cancel()
			wg.Wait()

			ns, runs := meanRunTime(b, r.progs[0])
			base, _ := meanRunTime(b, empty)
			st, err := r.Stats()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(ns, "bpf-ns/run")
			b.ReportMetric(base, "empty-ns/run")
			b.ReportMetric(ns/base, "ratio")
			b.ReportMetric(float64(runs), "runs")
			b.ReportMetric(float64(st.Events), "events")
		})
	}
}

// BenchmarkStackCost measures the two ways to capture a kernel stack in the
// BPF program, and what --stack costs the recorder, as mean ns per run from
// kernel.bpf_stats at net_dev_queue while ping floods a veth pair for 2 s
// per iteration. All programs are attached at once, so they see the same
// hits:
//
//   - empty: r0 = 0, the reference;
//   - get-stack: bpf_get_stack of 64 frames into a per-CPU buffer (what
//     --stack does, with the ring buffer record as the buffer);
//   - get-stackid: bpf_get_stackid into a BPF_MAP_TYPE_STACK_TRACE map
//     (the event would carry the id, user space would read the map), and
//     the same with BPF_F_REUSE_STACKID;
//   - recorder / recorder-stack: the recorder at net_dev_queue without and
//     with Config.Stack (64 frames), two recorders attached side by side.
//
// Run it with -benchtime=1x (docs/BENCHMARKS.md, Kernel stacks).
func BenchmarkStackCost(b *testing.B) {
	p := newVethPair(b)
	// Resolve ARP so that the flood is ICMP only.
	run(b, "ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "2", p.ipB)
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		b.Fatalf("enable BPF stats: %v", err)
	}
	defer stats.Close()

	const depth = 64
	buf, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8 * depth, MaxEntries: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	stackMap, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.StackTrace, KeySize: 4, ValueSize: 8 * depth, MaxEntries: 1 << 14})
	if err != nil {
		b.Fatal(err)
	}
	defer stackMap.Close()

	const reuseStackID = 1 << 10 // BPF_F_REUSE_STACKID
	progs := map[string]asm.Instructions{
		"empty": {asm.Mov.Imm(asm.R0, 0), asm.Return()},
		"get-stack": {
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, buf.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Reg(asm.R2, asm.R0),
			asm.Mov.Imm(asm.R3, 8*depth),
			asm.Mov.Imm(asm.R4, 0),
			asm.FnGetStack.Call(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
			asm.Return(),
		},
	}
	for name, flags := range map[string]int32{"get-stackid": 0, "get-stackid-reuse": reuseStackID} {
		progs[name] = asm.Instructions{
			asm.LoadMapPtr(asm.R2, stackMap.FD()),
			asm.Mov.Imm(asm.R3, flags),
			asm.FnGetStackid.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		}
	}
	loaded := map[string]*ebpf.Program{}
	for name, insns := range progs {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name: "stack_cost", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp,
			AttachTo: "net_dev_queue", License: "GPL", Instructions: insns,
		})
		if err != nil {
			b.Fatalf("load %s: %v", name, err)
		}
		defer prog.Close()
		l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		loaded[name] = prog
	}
	recorders := map[string]*Recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for name, stack := range map[string]bool{"recorder": false, "recorder-stack": true} {
		r, err := NewRecorder(Config{Hooks: []string{"net_dev_queue"}, Backend: BackendTracepoint, Stack: stack, StackDepth: depth, RingBufferSize: 64 << 20})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		recorders[name] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = r.Run(ctx, func(*Event) error { return nil })
		}()
	}
	for range b.N {
		run(b, "ip", "netns", "exec", p.nsA, "ping", "-f", "-q", "-w", "2", p.ipB)
	}
	cancel()
	wg.Wait()

	for name, prog := range loaded {
		ns, _ := meanRunTime(b, prog)
		b.ReportMetric(ns, name+"-ns/run")
	}
	for name, r := range recorders {
		ns, _ := meanRunTime(b, r.progs[0])
		b.ReportMetric(ns, name+"-ns/run")
		st, err := r.Stats()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.Lost), name+"-lost")
		b.ReportMetric(float64(st.Events), name+"-events")
	}
	// Distinct stacks seen by get-stackid: the map's entries.
	ids := 0
	var key uint32
	for it := stackMap.Iterate(); it.Next(&key, new([8 * depth]byte)); {
		ids++
	}
	b.ReportMetric(float64(ids), "stack-ids")
}

// meanRunTime returns a program's mean ns per run and its run count from
// kernel.bpf_stats (which the caller has enabled).
func meanRunTime(b *testing.B, prog *ebpf.Program) (float64, uint64) {
	b.Helper()
	s, err := prog.Stats()
	if err != nil {
		b.Fatal(err)
	}
	if s.RunCount == 0 {
		b.Fatal("program never ran")
	}
	return float64(s.Runtime.Nanoseconds()) / float64(s.RunCount), s.RunCount
}

// BenchmarkNewRecorder loads and closes a recorder on every skb tracepoint
// (the default configuration): the part of record's start-up this package
// owns. Profile it with -cpuprofile; run it with -benchtime=5x.
func BenchmarkNewRecorder(b *testing.B) {
	requireRoot(b)
	for range b.N {
		r, err := NewRecorder(Config{Backend: BackendTracepoint})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		r.Close()
		b.StartTimer()
	}
}
