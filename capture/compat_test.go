package capture

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// TestProbeReadSites counts the bpf_probe_read_kernel calls in the
// programs the kernel runs, read back from it: one per recorded hit (the
// packet bytes) by default, none in audit-safe mode.
func TestProbeReadSites(t *testing.T) {
	requireRoot(t)
	requireBTF(t)
	for _, c := range []struct {
		reads string
		want  int
	}{
		{ProbeReadsOn, 1},
		{ProbeReadsOff, 0},
	} {
		t.Run(c.reads, func(t *testing.T) {
			r, err := NewRecorder(Config{Backend: BackendTracepoint, ProbeReads: c.reads, Hooks: []string{"netif_receive_skb", "kfree_skb"}})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := r.ProbeReadSites()
			if err != nil {
				t.Fatal(err)
			}
			if got[HookTracepoint] != c.want {
				t.Errorf("probe reads %s: %d bpf_probe_read_kernel call sites in tracepoint programs, want %d", c.reads, got[HookTracepoint], c.want)
			}
			safe, _ := r.AuditSafe()
			if safe != (c.reads == ProbeReadsOff) {
				t.Errorf("AuditSafe() = %v with probe reads %s", safe, c.reads)
			}
		})
	}
}

// TestAuditSafeRecordsMetadata: in audit-safe mode events carry their
// metadata and no packet bytes, and the budget caps what is recorded.
func TestAuditSafeRecordsMetadata(t *testing.T) {
	requireRoot(t)
	requireBTF(t)
	p := newVethPair(t)
	events, _ := recordWhile(t, p, Config{Backend: BackendTracepoint, ProbeReads: ProbeReadsOff}, 0, func() {
		run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "3", "-i", "0.2", "-W", "2", p.ipB)
	})
	if len(events) == 0 {
		t.Fatal("no events")
	}
	for _, e := range events {
		if len(e.data) != 0 {
			t.Fatalf("%s: %d packet bytes in audit-safe mode", e.hook, len(e.data))
		}
		if e.netns == 0 && e.hook != "kfree_skb" && e.hook != "consume_skb" {
			t.Errorf("%s: no namespace", e.hook)
		}
	}
}

// TestMaxRate: a budget of a few events per second per CPU records about
// that many and counts the rest as over budget.
func TestMaxRate(t *testing.T) {
	requireRoot(t)
	requireBTF(t)
	p := newVethPair(t)
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	// Only this test's packets (the budget is spent on hits the filter
	// keeps; other traffic on the host would spend it otherwise).
	events, st := recordWhile(t, p, Config{Backend: BackendTracepoint, MaxRate: ncpu, Match: Match{NetNS: p.inodeA}}, 0, func() {
		run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "5", "-i", "0.1", "-W", "2", p.ipB)
		time.Sleep(100 * time.Millisecond)
	})
	// One event per CPU per second: a run of about a second gives at most
	// two per CPU (two windows).
	if len(events) == 0 || len(events) > 3*ncpu {
		t.Errorf("%d events with a budget of 1 per second per CPU on %d CPUs", len(events), ncpu)
	}
	if st.OverBudget == 0 {
		t.Error("no hit counted over budget")
	}
	t.Logf("%d events, %d over budget", len(events), st.OverBudget)
}

// TestLoadErrorOneLine: a verifier refusal reads as one line naming the
// program, the kernel and the missing helper; the log stays available.
func TestLoadErrorOneLine(t *testing.T) {
	requireRoot(t)
	requireBTF(t)
	kernel, err := loadKernelBTF()
	if err != nil {
		t.Fatal(err)
	}
	// A helper number no kernel knows.
	ok, err := probeTracingHelper(kernel, nil, "netif_receive_skb", asm.BuiltinFunc(100000))
	if ok || err != nil {
		t.Fatalf("probe of an unknown helper: %v, %v; want false, nil", ok, err)
	}
	_, verr := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp, AttachTo: "netif_receive_skb", License: "GPL",
		Instructions: asm.Instructions{asm.LoadMem(asm.R0, asm.R2, 0, asm.DWord), asm.Return()}, // R2 is not set
	}, ebpf.ProgramOptions{KernelTypes: kernel})
	if verr == nil {
		t.Fatal("the verifier accepted a load through an unset register")
	}
	le := &LoadError{What: "hook tp:x", Release: "5.10.0-test", Err: verr}
	msg := le.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "5.10.0-test") || !strings.Contains(msg, "hook tp:x") {
		t.Errorf("message %q: want one line naming the hook and the kernel", msg)
	}
	if len(le.Log()) == 0 {
		t.Error("no verifier log")
	}
	var target *LoadError
	if !errors.As(error(le), &target) {
		t.Error("errors.As fails")
	}
	t.Log(msg)
}
