//go:build linux

package audit_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/internal/audit"
	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/internal/vmtest"
)

// envExpect tells TestInVMSELinuxDenials what the kernel does with
// bpf_probe_read_kernel under the policy: "per-call" (the reproduction
// kernel: every call is checked and denied) or "at-load" (a fixed kernel:
// the verifier refuses the helper).
const envExpect = "PATHCAP_AUDIT_EXPECT"

// runs is how often the in-VM test runs the program on the reproduction
// kernel; loads is how often it loads it on a fixed kernel.
const (
	runs  = 2000
	loads = 3
)

// TestVMSELinuxDenials boots the SELinux reproduction kernel and Debian's
// own 5.10 with the reproduction policy, and checks the audit listener's
// counts of lockdown denials there.
func TestVMSELinuxDenials(t *testing.T) {
	r := vmtest.ReproKernel(t)
	const pkg = "github.com/pathcap/pathcap/internal/audit"
	run := func(t *testing.T, k vmtest.Kernel, expect string) {
		opts := r.Options()
		opts.Env = map[string]string{envExpect: expect}
		opts.Timeout = 3 * time.Minute
		opts.Tools = []string{"ping"} // iputils' ping, for ping -f
		out := vmtest.RunTestWith(t, k, pkg, "^TestInVMSELinuxDenials$", opts)
		var sum strings.Builder
		for line := range strings.Lines(out) {
			if rest, ok := strings.CutPrefix(line, "AUDIT\t"); ok {
				sum.WriteString("  " + strings.ReplaceAll(rest, "\t", " = "))
			}
		}
		t.Logf("%s, %s:\n%s", k, expect, sum.String())
	}
	t.Run("repro", func(t *testing.T) { run(t, r.Kernel, "per-call") })
	t.Run("stock-5.10", func(t *testing.T) {
		ks := vmtest.KernelsSeries(t, "5.10")
		run(t, ks[0], "at-load")
	})
}

// readKernelProgram returns a raw tracepoint program that reads 8 bytes of
// its own stack with bpf_probe_read_kernel once and returns the helper's
// result (0, or a negative errno).
func readKernelProgram() *ebpf.ProgramSpec {
	return &ebpf.ProgramSpec{
		Name:    "read_kernel",
		Type:    ebpf.RawTracepoint,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 0),
			asm.StoreMem(asm.RFP, -16, asm.R0, asm.DWord),
			asm.Mov.Reg(asm.R1, asm.RFP),
			asm.Add.Imm(asm.R1, -8), // dst
			asm.Mov.Imm(asm.R2, 8),  // size
			asm.Mov.Reg(asm.R3, asm.RFP),
			asm.Add.Imm(asm.R3, -16), // src: a kernel address
			asm.FnProbeReadKernel.Call(),
			asm.Return(),
		},
	}
}

// loadOnce loads spec with one BPF_PROG_LOAD: with the verifier log on from
// the start, cilium/ebpf does not load a refused program a second time to
// get the log.
func loadOnce(spec *ebpf.ProgramSpec) (*ebpf.Program, error) {
	return ebpf.NewProgramWithOptions(spec, ebpf.ProgramOptions{LogLevel: ebpf.LogLevelBranch})
}

// TestInVMSELinuxDenials runs in a VM booted with SELinux (see
// TestVMSELinuxDenials): it loads the reproduction policy, switches to
// enforcing, registers as the audit daemon and counts the lockdown denials
// of a program calling bpf_probe_read_kernel. It prints AUDIT lines with
// the counts.
func TestInVMSELinuxDenials(t *testing.T) {
	expect := os.Getenv(envExpect)
	if !vmtest.InVM() || expect == "" {
		t.Skip("runs inside a VM, from TestVMSELinuxDenials")
	}
	report := func(key string, v any) { fmt.Printf("AUDIT\t%s\t%v\n", key, v) }
	report("kernel", os.Getenv(vmtest.EnvKernel))
	if lsms, err := vmtest.LSMs(); err != nil {
		t.Error(err)
	} else {
		report("lsm", strings.Join(lsms, ","))
		if !strings.Contains(","+strings.Join(lsms, ",")+",", ",selinux,") {
			t.Fatalf("SELinux is not active (lsm=%s)", strings.Join(lsms, ","))
		}
	}

	se, err := vmtest.MountSELinux()
	if err != nil {
		t.Fatal(err)
	}
	if err := se.LoadPolicy(vmtest.InVMPolicyPath); err != nil {
		t.Fatal(err)
	}
	if !se.PolicyLoaded() {
		t.Fatal("policy load reported success, but selinuxfs shows no classes")
	}
	if on, err := se.Enforcing(); err != nil || on {
		t.Fatalf("before SetEnforcing: enforcing=%v, %v; want permissive", on, err)
	}

	l, err := audit.Listen()
	if err != nil {
		t.Fatal(err)
	}
	st, err := l.Status()
	if err != nil {
		t.Fatal(err)
	}
	defer func(initial audit.Status) {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
		st, err := audit.GetStatus()
		switch {
		case err != nil:
			t.Error(err)
		case st.PID != 0:
			t.Errorf("after Close the audit daemon is still pid %d", st.PID)
		case st.BacklogLimit != initial.BacklogLimit:
			t.Errorf("after Close the backlog limit is %d, not %d again", st.BacklogLimit, initial.BacklogLimit)
		}
	}(st)
	if st.PID != uint32(os.Getpid()) {
		t.Fatalf("registered, but the kernel's audit daemon is pid %d, not %d", st.PID, os.Getpid())
	}
	report("status before", st)

	// Loads the policy again (a reload is allowed) and switches to
	// enforcing; back to permissive at cleanup.
	vmtest.EnforcePolicy(t, vmtest.InVMPolicyPath)
	l.WaitQuiet(500*time.Millisecond, 5*time.Second)
	l.Reset()

	const denial = `lockdown_reason="use of bpf to read kernel RAM"`
	switch expect {
	case "per-call":
		prog, err := loadOnce(readKernelProgram())
		if err != nil {
			t.Fatalf("load (the reproduction kernel checks at run time, not load time): %v", err)
		}
		defer prog.Close()
		if n := l.Count(denial); n != 0 {
			t.Errorf("%d denials at load, want 0", n)
		}
		results := make(map[int32]int)
		start := time.Now()
		for range runs {
			// Raw tracepoint test runs take no repeat count on 5.10.
			ret, err := prog.Run(&ebpf.RunOptions{})
			if err != nil {
				t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
			}
			results[int32(ret)]++
		}
		report("runs", fmt.Sprintf("%d in %v", runs, time.Since(start).Round(time.Millisecond)))
		report("helper results", formatResults(results))
		if results[-int32(unix.EACCES)] != runs {
			t.Errorf("helper results %s, want -EACCES every time", formatResults(results))
		}
		waitCount(l, denial, runs, 30*time.Second)
		got := l.Count(denial)
		report("denials counted", got)
		report("confidentiality denials", l.Count("denied  { confidentiality }"))
		if got != runs {
			t.Errorf("counted %d denials, want %d (one per run)", got, runs)
		}
		trafficPhase(t, l, denial, report)
	case "at-load":
		// cilium/ebpf probes once per process whether the kernel has
		// bpf_probe_read_kernel, by loading a program calling it; the
		// fixed kernel refuses that load too (one more denial), and
		// cilium/ebpf then rewrites the call to bpf_probe_read, which the
		// verifier refuses the same way. So the first load costs two
		// denials, and every later one exactly one.
		var perLoad []int
		for i := range loads {
			before := l.Count(denial)
			prog, err := loadOnce(readKernelProgram())
			if err == nil {
				prog.Close()
				t.Fatalf("load %d succeeded; want the verifier to refuse the helper", i+1)
			}
			var ve *ebpf.VerifierError
			if !errors.As(err, &ve) || !strings.Contains(fmt.Sprintf("%+v", ve), "unknown func") {
				t.Fatalf("load %d: %v; want a verifier error about an unknown func", i+1, err)
			}
			if i == 0 {
				report("load error", lastLine(fmt.Sprintf("%+v", ve), "unknown func"))
			}
			waitCount(l, denial, before+1, 5*time.Second)
			perLoad = append(perLoad, l.Count(denial)-before)
		}
		report("loads", loads)
		report("denials per load", fmt.Sprint(perLoad))
		report("denials counted", l.Count(denial))
		if perLoad[0] < 1 || perLoad[0] > 2 {
			t.Errorf("first load: %d denials, want 1, or 2 with cilium/ebpf's feature probe", perLoad[0])
		}
		for i, n := range perLoad[1:] {
			if n != 1 {
				t.Errorf("load %d: %d denials, want exactly one", i+2, n)
			}
		}
	default:
		testenv.SkipOrFail(t, "unknown %s=%q", envExpect, expect)
	}
	if avc := l.AVC(); len(avc) > 0 {
		report("first denial", avc[0])
	}
	report("records", l.Total())
	report("overruns", l.Overruns())
	if st, err := l.Status(); err == nil {
		report("status after", st)
	}
}

// trafficPhase attaches a program calling bpf_probe_read_kernel to the
// netif_receive_skb raw tracepoint, sends UDP over lo for a second and
// compares the helper's failed calls with the denials counted.
func trafficPhase(t *testing.T, l *audit.Listener, denial string, report func(string, any)) {
	counts, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer counts.Close()
	// counts[0]: calls, counts[1]: calls that returned -EACCES.
	count := func(key int32, label string) asm.Instructions {
		return asm.Instructions{
			asm.StoreImm(asm.RFP, -24, int64(key), asm.Word).WithSymbol(label),
			asm.LoadMapPtr(asm.R1, counts.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -24),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, label+"_out"),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		}
	}
	insns := readKernelProgram().Instructions
	insns = append(insns[:len(insns)-1], asm.Mov.Reg(asm.R6, asm.R0))
	insns = append(insns, count(0, "calls")...)
	insns = append(insns, asm.JNE.Imm(asm.R6, -int32(unix.EACCES), "out").WithSymbol("calls_out"))
	insns = append(insns, count(1, "eacces")...)
	insns = append(insns, asm.Mov.Imm(asm.R0, 0).WithSymbol("eacces_out"), asm.Ja.Label("out"))
	insns = append(insns, asm.Mov.Imm(asm.R0, 0).WithSymbol("out"), asm.Return())
	spec := readKernelProgram()
	spec.Instructions = insns
	prog, err := loadOnce(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	lk, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "netif_receive_skb", Program: prog})
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	read := func() (calls, eacces uint64) {
		if err := counts.Lookup(uint32(0), &calls); err != nil {
			t.Fatal(err)
		}
		if err := counts.Lookup(uint32(1), &eacces); err != nil {
			t.Fatal(err)
		}
		return calls, eacces
	}
	// measure runs traffic and compares the helper's failed calls in the
	// meantime with the denials counted and the records the kernel lost.
	measure := func(name, what string, traffic func() error) (failed, counted int, lost uint32) {
		// The records of the previous measurement may still be on their
		// way (a slow, emulated VM): let them arrive first.
		l.WaitQuiet(500*time.Millisecond, 10*time.Second)
		st0, err := l.Status()
		if err != nil {
			t.Fatal(err)
		}
		calls0, eacces0 := read()
		before := l.Count(denial)
		if err := traffic(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		calls, eacces := read()
		calls, eacces = calls-calls0, eacces-eacces0
		// Wait until every failed call is accounted for: counted, or
		// lost by the kernel.
		var st audit.Status
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if st, err = l.Status(); err != nil {
				t.Fatal(err)
			}
			counted, lost = l.Count(denial)-before, st.Lost-st0.Lost
			if counted+int(lost) >= int(eacces) || time.Now().After(deadline) {
				break
			}
		}
		l.WaitQuiet(500*time.Millisecond, 10*time.Second)
		if st, err = l.Status(); err != nil {
			t.Fatal(err)
		}
		counted, lost = l.Count(denial)-before, st.Lost-st0.Lost
		report(name, fmt.Sprintf("%s: %d helper calls, %d returned -EACCES, %d denials counted, lost=%d (backlog_limit %d)",
			what, calls, eacces, counted, lost, st.BacklogLimit))
		if calls == 0 || eacces != calls {
			t.Errorf("%s: %d helper calls, %d returned -EACCES; want all of them, and some", name, calls, eacces)
		}
		// Nothing else causes denials here: each failed call's record is
		// either counted or lost.
		if counted+int(lost) != int(eacces) {
			t.Errorf("%s: %d denials counted and %d lost for %d failed calls", name, counted, lost, eacces)
		}
		return int(eacces), counted, lost
	}

	// UDP sent by this process. Records caused in the audit daemon's own
	// task are never dropped, but the receive path (a softirq) runs in
	// whatever task is current, ksoftirqd's too: some can be lost at the
	// default backlog limit.
	udp := func() error {
		n, err := sendUDP(time.Second)
		report("UDP datagrams sent", n)
		return err
	}
	measure("UDP, backlog_limit default", "UDP over lo for 1s", udp)

	// A ping flood by another process: its records are subject to the
	// backlog limit.
	ping := func() error {
		out, err := exec.Command("ping", "-f", "-q", "-c", "500", "127.0.0.1").CombinedOutput()
		if err != nil {
			return fmt.Errorf("ping: %w\n%s", err, out)
		}
		return nil
	}
	measure("ping -f, backlog_limit default", "ping -f -c 500 127.0.0.1", ping)

	// With a high limit none is lost.
	if err := l.SetBacklogLimit(1 << 16); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, what string
		traffic    func() error
	}{
		{"UDP, backlog_limit 65536", "UDP over lo for 1s", udp},
		{"ping -f, backlog_limit 65536", "ping -f -c 500 127.0.0.1", ping},
	} {
		failed, counted, lost := measure(c.name, c.what, c.traffic)
		if counted != failed || lost != 0 {
			t.Errorf("%s: counted %d denials and lost %d for %d failed calls, want all counted", c.name, counted, lost, failed)
		}
	}
}

// sendUDP sends UDP datagrams to itself over lo for d and returns how many
// it sent.
func sendUDP(d time.Duration) (int, error) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, err
	}
	defer rx.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, err := rx.Read(buf); err != nil {
				return
			}
		}
	}()
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		return 0, err
	}
	defer tx.Close()
	sent := 0
	for start := time.Now(); time.Since(start) < d; {
		if _, err := tx.Write([]byte("pathcap")); err == nil {
			sent++
		}
	}
	return sent, nil
}

// waitCount waits until the listener has counted want records containing
// substr and no more arrive, or until timeout.
func waitCount(l *audit.Listener, substr string, want int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for l.Count(substr) < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	l.WaitQuiet(500*time.Millisecond, time.Until(deadline)+time.Second)
}

func formatResults(m map[int32]int) string {
	var parts []string
	for ret, n := range m {
		name := strconv.Itoa(int(ret))
		if ret < 0 {
			name = "-" + unix.ErrnoName(unix.Errno(-ret))
		}
		parts = append(parts, fmt.Sprintf("%s×%d", name, n))
	}
	return strings.Join(parts, " ")
}

// lastLine returns the last line of s containing substr.
func lastLine(s, substr string) string {
	var last string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			last = strings.TrimSpace(sc.Text())
		}
	}
	return last
}
