package capture

import (
	"context"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
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
