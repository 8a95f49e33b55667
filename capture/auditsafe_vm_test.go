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
	vmtest.EnforcePolicy(t, vmtest.InVMPolicyPath)
	denials := func() int { return l.Count("confidentiality") }

	// record check names the hazard.
	c, err := RunCheck()
	if err != nil {
		t.Fatal(err)
	}
	wantProbe := map[string]ProbeRead{"per-call": ProbeReadDenied, "at-load": ProbeReadRefused}[expect]
	if !c.Audit.Safe || c.Audit.Probe != wantProbe || c.Audit.SELinux != SELinuxEnforcing {
		t.Fatalf("check: audit %+v, want a hazard with probe %q under enforcing SELinux", c.Audit, wantProbe)
	}
	t.Logf("check: %s; probe read %s; auto backend %s", c.Audit.Why, c.Audit.Probe, c.AutoBackend)
	// The check's one probe read makes at most one denial.
	time.Sleep(200 * time.Millisecond)
	if n := denials(); n > 1 {
		t.Errorf("record check caused %d denials, want at most 1", n)
	}

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
	// through the fentry hooks, metadata only.
	var req uint64
	for _, e := range events {
		if e.hook == "net_dev_queue" && e.netns == p.inodeA && req == 0 {
			req = e.packetID
		}
		if len(e.data) != 0 {
			t.Fatalf("%s: %d packet bytes in audit-safe mode", e.hook, len(e.data))
		}
	}
	var path []string
	for _, e := range events {
		if e.packetID == req {
			path = append(path, fmt.Sprintf("%s:%s@%d", e.kind, e.hook, e.netns))
		}
	}
	t.Logf("first packet sent from A: %s", strings.Join(path, " -> "))
	if !strings.Contains(strings.Join(path, " "), fmt.Sprintf("fentry:ip_rcv@%d", p.inodeB)) {
		t.Errorf("packet %d not followed into B's ip_rcv: %v", req, path)
	}

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
