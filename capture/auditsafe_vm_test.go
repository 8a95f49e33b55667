package capture

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/audit"
	"github.com/pathcap/pathcap/internal/vmtest"
)

// envAuditExpect tells TestInVMAuditSafe what the VM's kernel does with
// bpf_probe_read_kernel under the reproduction policy: "per-call" (the
// SELinux reproduction kernel: each call is denied and audited) or
// "at-load" (a fixed kernel: the verifier refuses the helper).
const envAuditExpect = "PATHCAP_AUDIT_EXPECT"

// TestVMAuditSafe boots the SELinux reproduction kernel (Linux 5.10.223
// with the upstream fix reverted) and Debian's own 5.10 with SELinux
// enforcing a policy that denies lockdown confidentiality, and checks that
// record detects the hazard and records the ping scenario without a single
// new AVC denial while traffic flows; with probe reads forced on, the
// harness sees the denials (one per event) on the reproduction kernel, and
// record refuses on the fixed kernel.
func TestVMAuditSafe(t *testing.T) {
	r := vmtest.ReproKernel(t)
	run := func(t *testing.T, k vmtest.Kernel, expect string) {
		opts := r.Options()
		opts.Env = map[string]string{envAuditExpect: expect}
		opts.Tools = []string{"ping"}
		opts.Timeout = 5 * time.Minute
		out := vmtest.RunTestWith(t, k, "github.com/pathcap/pathcap/capture", "^TestInVMAuditSafe$", opts)
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "auditsafe_vm_test.go") || strings.HasPrefix(strings.TrimSpace(line), "--- ") {
				t.Log(strings.TrimSpace(line))
			}
		}
	}
	t.Run("repro", func(t *testing.T) { run(t, r.Kernel, "per-call") })
	t.Run("stock-5.10", func(t *testing.T) { run(t, vmtest.KernelsSeries(t, "5.10")[0], "at-load") })
}

// TestInVMAuditSafe runs in a VM started by TestVMAuditSafe.
func TestInVMAuditSafe(t *testing.T) {
	expect := os.Getenv(envAuditExpect)
	if !vmtest.InVM() || expect == "" {
		t.Skip("runs inside a VM, from TestVMAuditSafe")
	}
	l, err := audit.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Past the default backlog of 64, records of a flood are lost before
	// the listener reads them.
	if err := l.SetBacklogLimit(1 << 16); err != nil {
		t.Fatal(err)
	}
	vmtest.EnforcePolicy(t, vmtest.InVMPolicyPath)
	denials := func() int { return l.Count("confidentiality") }

	// record check names the hazard.
	c, err := RunCheck()
	if err != nil {
		t.Fatal(err)
	}
	wantProbe := map[string]ProbeRead{"per-call": ProbeReadDenied, "at-load": ProbeReadRefused}[expect]
	if !c.Audit.Safe || c.Audit.Probe != wantProbe || c.Audit.SELinux != SELinuxEnforcing {
		t.Fatalf("check: audit %+v (probe error: %v), want a hazard with probe %q under enforcing SELinux", c.Audit, c.AuditErr, wantProbe)
	}
	t.Logf("check: %s; probe read %s; auto backend %s (probe error: %v)", c.Audit.Why, c.Audit.Probe, c.AutoBackend, c.AuditErr)
	// The check's one probe read makes one denial; on a kernel that
	// checks at load, cilium/ebpf's own probe for bpf_probe_read_kernel
	// (once per process) makes a second one.
	time.Sleep(200 * time.Millisecond)
	if n, most := denials(), map[string]int{"per-call": 1, "at-load": 2}[expect]; n > most {
		t.Errorf("record check caused %d denials, want at most %d", n, most)
	}
	logDenials := func(what string) {
		reasons := map[string]int{}
		for _, text := range l.AVC() {
			if i := strings.Index(text, "lockdown_reason="); i >= 0 {
				r := text[i+len("lockdown_reason="):]
				if j := strings.Index(r, "\" "); j >= 0 {
					r = r[:j+1]
				}
				if k := strings.Index(text, "comm="); k >= 0 {
					r = strings.Fields(text[k:])[0] + " " + r
				}
				reasons[r]++
			}
		}
		t.Logf("denials %s: %v", what, reasons)
	}
	defer logDenials("in all")

	p := newVethPair(t)
	quiet(t, p)
	run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "2", p.ipB)
	traffic := func() {
		run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "5", "-i", "0.2", "-W", "2", p.ipB)
		sendUDP(t, p.nsA, p.ipB+":9")
		time.Sleep(200 * time.Millisecond)
	}

	// Default settings: audit-safe, on tracepoints and fentry.
	rec, err := NewRecorder(Config{
		Functions: vmFunctions,
		Hooks:     []string{"net_dev_queue", "netif_receive_skb", "kfree_skb", "consume_skb"},
	})
	if err != nil {
		t.Fatal(err)
	}
	safe, verdict := rec.AuditSafe()
	if !safe || rec.Backend() != BackendFentry {
		t.Fatalf("default recorder: audit-safe %v (%s), backend %s; want audit-safe on fentry", safe, verdict.Why, rec.Backend())
	}
	sites, err := rec.ProbeReadSites()
	if err != nil {
		t.Fatal(err)
	}
	for k, n := range sites {
		if n != 0 {
			t.Errorf("audit-safe %s programs have %d bpf_probe_read_kernel call sites", k, n)
		}
	}
	time.Sleep(200 * time.Millisecond)
	before := denials()
	events, st := collect(t, rec, p, 0, traffic)
	rec.Close()
	time.Sleep(300 * time.Millisecond)
	during := denials() - before
	t.Logf("audit-safe: %d events, %d lost, %d over budget, %d denials while traffic flowed (%d before), call sites %v", len(events), st.Lost, st.OverBudget, during, before, sites)
	if during != 0 {
		t.Errorf("%d AVC denials while recording in audit-safe mode, want 0", during)
	}
	// The ping scenario's paths: one id from A's device to B's stack,
	// through the fentry hooks, metadata only (no bytes to tell the echo
	// request by: any packet sent from A that reached B's ip_rcv).
	sentFromA := map[uint64]bool{}
	for _, e := range events {
		if len(e.data) != 0 {
			t.Fatalf("%s: %d packet bytes in audit-safe mode", e.hook, len(e.data))
		}
		if e.hook == "net_dev_queue" && e.netns == p.inodeA {
			sentFromA[e.packetID] = true
		}
	}
	var followed uint64
	for _, e := range events {
		if e.kind == HookFentry && e.hook == "ip_rcv" && e.netns == p.inodeB && sentFromA[e.packetID] {
			followed = e.packetID
			break
		}
	}
	if followed == 0 {
		t.Errorf("no packet sent from A (%d of them) followed into B's fentry:ip_rcv under one id", len(sentFromA))
	}
	var path []string
	for _, e := range events {
		if e.packetID == followed {
			path = append(path, fmt.Sprintf("%s:%s@%d", e.kind, e.hook, e.netns))
		}
	}
	t.Logf("packet %d: %s", followed, strings.Join(path, " -> "))

	// Probe reads forced on.
	forced, err := NewRecorder(Config{Backend: BackendTracepoint, ProbeReads: ProbeReadsOn,
		Hooks: []string{"net_dev_queue", "netif_receive_skb", "kfree_skb", "consume_skb"}})
	if expect == "at-load" {
		if !errors.Is(err, ErrProbeRead) {
			t.Fatalf("probe reads forced on a kernel that refuses them: %v, want ErrProbeRead", err)
		}
		t.Logf("forced on: %v", err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	before = denials()
	events, _ = collect(t, forced, p, 0, traffic)
	forced.Close()
	time.Sleep(300 * time.Millisecond)
	during = denials() - before
	t.Logf("probe reads forced on: %d events, %d denials while traffic flowed (the harness sees them)", len(events), during)
	// Every recorded hit of a packet with linear bytes calls the helper
	// once (in every namespace, on every task the hooks interrupt).
	if during < len(events)/2 {
		t.Errorf("%d denials for %d events with probe reads on, want about one per event", during, len(events))
	}
}
