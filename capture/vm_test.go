package capture

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/internal/kallsyms"
	"github.com/pathcap/pathcap/internal/pcapfilter"
	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/internal/vmtest"
)

// The function backends cannot run on the host (no kprobes, fentry refused
// under lockdown): TestVMFunctionBackends runs the TestInVM* tests of this
// package in a VM per kernel.

// envVMFilters carries the filter expressions of the in-VM differential
// test, compiled by libpcap on the host (the VM's test binary has no cgo).
const envVMFilters = "PATHCAP_VM_FILTERS"

// envVMTimings, set to 1, makes TestInVMAttachTimes measure attach and
// detach times of each backend (docs/BACKENDS.md); it is off by default
// to keep the VM run short.
const envVMTimings = "PATHCAP_VM_TIMINGS"

// vmFilterExpressions are the expressions of the in-VM differential test:
// a subset of filterExpressions, protochain included.
var vmFilterExpressions = []string{
	"ip", "arp", "vlan and ip", "tcp port 80", "udp port 53 or port 80",
	"tcp[tcpflags] & tcp-syn != 0", "ip6 protochain 58", "protochain 17",
	"len >= 80 and len <= 120", "not (ip or ip6)",
}

// vmFilter is one expression compiled on the host: libpcap's programs for
// the two layers (nil where it fails) and the frames it keeps.
type vmFilter struct {
	Expr   string
	L2, L3 []bpf.RawInstruction
	Keep   []int // indexes into testPackets() of the frames libpcap keeps
}

// EnvVMProgramDir names, inside the VM, the directory of the objects of
// testdata/tc_drop_flow.c and xdp_drop_flow.c that TestVMFunctionBackends
// compiled on the host (the VM has no clang); TestInVMTraceTC and
// TestInVMTraceXDP (tctrace_vm_test.go) load them.
const EnvVMProgramDir = "PATHCAP_VM_PROGRAM_DIR"

// VerdictMarkers are the markers around what TestInVMTraceTC and
// TestInVMTraceXDP hand back to the host through the VM's output: the
// recording (base64, in lines) and the counts the host checks tshark
// against. Prefix is PATHCAP-TC or PATHCAP-XDP.
func VerdictMarkers(prefix string) (counts, begin, end string) {
	return prefix + "-COUNTS", prefix + "-FILE-BEGIN", prefix + "-FILE-END"
}

// VerdictCounts is what the counts marker carries: the exits of the traced
// program in the recording, those with the dropping verdict (TC_ACT_SHOT,
// XDP_DROP), and the oracle's drops (the clsact qdisc's, the XDP program's
// own counter).
type VerdictCounts struct {
	Exits, Dropped, OracleDrops int
}

// compilePrograms compiles testdata/tc_drop_flow.c and xdp_drop_flow.c
// with clang (-g: fentry finds a BPF program through its BTF) into a fresh
// directory and returns the directory.
func compilePrograms(t *testing.T) string {
	t.Helper()
	clang := testenv.RequireTool(t, "clang")
	dir := filepath.Join(t.TempDir(), "tcprog")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tc_drop_flow", "xdp_drop_flow"} {
		args := []string{"-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-c", "testdata/" + name + ".c", "-o", filepath.Join(dir, name+".o")}
		if runtime.GOARCH == "amd64" {
			args = append(args, "-I/usr/include/x86_64-linux-gnu")
		}
		if out, err := exec.Command(clang, args...).CombinedOutput(); err != nil {
			t.Fatalf("clang %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return dir
}

// checkVerdictFile finds, in the output of a VM run, the recording that
// TestInVMTraceTC (prefix PATHCAP-TC) or TestInVMTraceXDP (PATHCAP-XDP)
// printed and its counts, and checks with tshark that stock Wireshark
// shows the verdicts: field (frame.verdict.ebpf_tc, .ebpf_xdp) on every
// exit of the traced program, equal to drop (2: TC_ACT_SHOT, 1: XDP_DROP)
// on as many frames as the oracle dropped.
func checkVerdictFile(t *testing.T, out, prefix, field string, drop int) {
	t.Helper()
	TCCounts, TCFileBegin, TCFileEnd := VerdictMarkers(prefix)
	var counts VerdictCounts
	var enc strings.Builder
	in := false
	found := false
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, TCCounts+" "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, TCCounts+" ")), &counts); err != nil {
				t.Fatalf("%s line %q: %v", TCCounts, line, err)
			}
			found = true
		case line == TCFileBegin:
			in = true
		case line == TCFileEnd:
			in = false
		case in:
			enc.WriteString(line)
		}
	}
	if !found {
		t.Fatalf("the VM printed no %s line: did its test run?", TCCounts)
	}
	data, err := base64.StdEncoding.DecodeString(enc.String())
	if err != nil {
		t.Fatalf("decode the recording printed by the VM: %v", err)
	}
	f := filepath.Join(t.TempDir(), strings.ToLower(prefix)+".pcapng")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	tshark := testenv.RequireTool(t, "tshark")
	frames := func(filter string) int {
		var stderr strings.Builder
		cmd := exec.Command(tshark, "-r", f, "-Y", filter, "-T", "fields", "-e", "frame.number")
		cmd.Stderr = &stderr
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark -r %s -Y %q: %v\n%s", f, filter, err, stderr.String())
		}
		return len(strings.Fields(string(b)))
	}
	all, dropped := frames(field), frames(fmt.Sprintf("%s == %d", field, drop))
	t.Logf("tshark over the VM's recording (%d bytes): %d frames with %s, %d with == %d; the VM counted %d exits, %d dropping; the oracle dropped %d",
		len(data), all, field, dropped, drop, counts.Exits, counts.Dropped, counts.OracleDrops)
	if all != counts.Exits || dropped != counts.OracleDrops || counts.Exits == 0 {
		t.Errorf("tshark: %d verdicts, %d dropping; want %d and %d (the oracle's drops)", all, dropped, counts.Exits, counts.OracleDrops)
	}
}

func TestVMFunctionBackends(t *testing.T) {
	env := vmFilterEnv(t)
	tcDir := compilePrograms(t)
	env[EnvVMProgramDir] = "/work/" + filepath.Base(tcDir)
	if os.Getenv(envVMTimings) != "" {
		env[envVMTimings] = os.Getenv(envVMTimings)
	}
	for _, k := range vmtest.Kernels(t) {
		t.Run(k.Series, func(t *testing.T) {
			start := time.Now()
			// PATHCAP_VM_RUN narrows the in-VM tests (a go test -run
			// pattern) while working on one of them.
			run := "^TestInVM"
			if s := os.Getenv("PATHCAP_VM_RUN"); s != "" {
				run = s
			}
			out := vmtest.RunTestWith(t, k, "github.com/pathcap/pathcap/capture", run, vmtest.Options{
				Tools: []string{"ping", "tc", "nft"},
				Env:   env,
				Dirs:  []string{tcDir},
				// The filter subset loads 10 expressions' programs; on
				// 5.10 under software emulation that alone takes about
				// 4 minutes.
				Timeout: 12 * time.Minute,
			})
			t.Logf("%s: %v", k, time.Since(start).Round(100*time.Millisecond))
			if run == "^TestInVM" {
				checkVerdictFile(t, out, "PATHCAP-TC", "frame.verdict.ebpf_tc", 2)
				checkVerdictFile(t, out, "PATHCAP-XDP", "frame.verdict.ebpf_xdp", 1)
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "vm_test.go") || strings.Contains(line, "clone_test.go") || strings.HasPrefix(strings.TrimSpace(line), "--- ") {
					t.Log(strings.TrimSpace(line))
				}
			}
		})
	}
}

// vmFilterEnv compiles vmFilterExpressions with libpcap and returns the
// environment that carries them into the VM (envVMFilters).
func vmFilterEnv(t *testing.T) map[string]string {
	t.Helper()
	requireLibpcap(t)
	var filters []vmFilter
	pkts := testPackets()
	for _, expr := range vmFilterExpressions {
		f := vmFilter{Expr: expr}
		var err error
		if f.L2, err = pcapfilter.CompileRaw(expr, pcapfilter.LinkTypeEthernet, filterSnaplen); err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		f.L3, _ = pcapfilter.CompileRaw(expr, pcapfilter.LinkTypeRaw, filterSnaplen)
		for i, p := range pkts {
			if pcapfilter.RunLibpcap(f.L2, p.frame) {
				f.Keep = append(f.Keep, i)
			}
		}
		filters = append(filters, f)
	}
	enc, err := json.Marshal(filters)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{envVMFilters: base64.StdEncoding.EncodeToString(enc)}
}

// checkNoSocketDrop checks the kfree_skb event e of a UDP datagram to a
// closed port: reason NO_SOCKET where the kernel gives reasons (5.17+),
// else (no reason on this kernel) freed in __udp4_lib_rcv.
func checkNoSocketDrop(t *testing.T, e seen) {
	t.Helper()
	if e.hasDrop {
		if e.reason != "NO_SOCKET" {
			t.Errorf("UDP drop reason %q, want NO_SOCKET", e.reason)
		}
		return
	}
	syms, err := kallsyms.Load()
	if err != nil {
		t.Fatal(err)
	}
	sym, ok := syms.Resolve(e.location)
	if !ok || sym.Name != "__udp4_lib_rcv" {
		t.Errorf("UDP drop without reason (kernel %s) at %v (%#x), want __udp4_lib_rcv", os.Getenv(vmtest.EnvKernel), sym, e.location)
	} else {
		t.Logf("UDP drop: no reason on this kernel, location %v", sym)
	}
}

// requireVM skips t outside a VM started by TestVMFunctionBackends.
func requireVM(t *testing.T) {
	t.Helper()
	if !vmtest.InVM() {
		t.Skip("runs inside a VM (see TestVMFunctionBackends)")
	}
}

// vmBackends are the function backends the VM's kernel should allow:
// kprobe-multi needs CONFIG_FPROBE, which the 6.1 kernel lacks.
func vmBackends(t *testing.T) []string {
	t.Helper()
	bs := []string{BackendFentry, BackendKprobe}
	if err := haveBackend(BackendKprobeMulti, "", nil, nil); err == nil {
		bs = append(bs, BackendKprobeMulti)
	} else if strings.HasPrefix(os.Getenv(vmtest.EnvKernel), "6.12") {
		t.Errorf("kprobe-multi not available on %s: %v", os.Getenv(vmtest.EnvKernel), err)
	}
	return bs
}

// TestInVMBackends records a ping and a UDP datagram to a closed port with
// each function backend, combined with tracepoints.
func TestInVMBackends(t *testing.T) {
	requireVM(t)
	for _, b := range vmBackends(t) {
		t.Run(b, func(t *testing.T) { testBackend(t, b) })
	}
}

// vmFunctions are the functions the in-VM tests attach: few, since
// software emulation makes each fentry program slow to verify.
const vmFunctions = "^(ip_rcv|ip_local_deliver|icmp_rcv|__udp4_lib_rcv)$"

func testBackend(t *testing.T, backend string) {
	p := newVethPair(t)
	// No IPv6 chatter: an skb freed where no free hook sees it would pass
	// its id to the next skb at its address (docs/FILTERS.md).
	quiet(t, p)
	// Resolve ARP first, so that the echo request is sent at once.
	run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "2", p.ipB)
	cfg := Config{
		Backend:   backend,
		Functions: vmFunctions,
		Exit:      backend == BackendFentry,
		Hooks:     []string{"net_dev_queue", "netif_receive_skb", "kfree_skb", "consume_skb"},
		Stack:     true,
		// The netfilter places (their own probe reads) are
		// TestInVMNetfilter's.
		NoNetfilter: true,
	}
	start := time.Now()
	r, err := NewRecorder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	kinds := map[HookKind][]string{}
	for _, h := range r.Hooks() {
		kinds[h.Kind] = append(kinds[h.Kind], h.Name)
	}
	t.Logf("%s: attached in %v: %v (skipped %d)", r.Backend(), time.Since(start).Round(time.Millisecond), kinds, r.SkippedFunctions())
	if r.Backend() != backend {
		t.Fatalf("backend %s, want %s", r.Backend(), backend)
	}
	// bpf_probe_read_kernel call sites in what the kernel runs: one (the
	// bytes) for BTF-typed programs, more for kprobes (docs/BACKENDS.md).
	if sites, err := r.ProbeReadSites(); err != nil {
		t.Error(err)
	} else {
		t.Logf("%s: bpf_probe_read_kernel call sites per program kind: %v", backend, sites)
		for k, n := range sites {
			switch {
			case k == HookKprobe || k == HookKretprobe:
				// The sk_buff, the device's fields or the socket's
				// namespace, the bytes.
				if n < 3 {
					t.Errorf("%s programs: %d bpf_probe_read_kernel call sites, want the skb's, the device's and the bytes'", k, n)
				}
			case n != 1:
				t.Errorf("%s programs: %d bpf_probe_read_kernel call sites, want 1 (the bytes)", k, n)
			}
		}
	}
	events, _ := collect(t, r, p, 0, func() {
		run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "2", p.ipB)
		sendUDP(t, p.nsA, p.ipB+":9")
		time.Sleep(200 * time.Millisecond)
	})

	entry := HookKprobe
	if backend == BackendFentry {
		entry = HookFentry
	}
	// The echo request, by its id at A's net_dev_queue.
	var req, reply uint64
	for _, e := range events {
		if e.hook != "net_dev_queue" {
			continue
		}
		switch {
		case e.netns == p.inodeA && e.is(1, p.ipA, p.ipB) && e.transport()[0] == 8 && req == 0:
			req = e.packetID
		case e.netns == p.inodeB && e.is(1, p.ipB, p.ipA) && e.transport()[0] == 0 && reply == 0:
			reply = e.packetID
		}
	}
	if req == 0 || reply == 0 {
		t.Fatalf("echo request (%d) or reply (%d) not recorded at net_dev_queue", req, reply)
	}
	syms := symbolizer(t)
	seenAt := map[string]bool{}
	var path []string
	for _, e := range events {
		if e.packetID != req {
			continue
		}
		path = append(path, fmt.Sprintf("%s:%s", e.kind, e.hook))
		seenAt[e.kind.String()+":"+e.hook] = true
		if e.kind == entry || e.kind == HookFexit {
			if e.netns != p.inodeB {
				t.Errorf("%s:%s: netns %d, want B's %d", e.kind, e.hook, e.netns, p.inodeB)
			}
			// An exit after the skb was freed (icmp_rcv consumes the
			// request) carries no packet.
			if (e.kind == entry || len(e.data) > 0) && !e.is(1, p.ipA, p.ipB) {
				t.Errorf("%s:%s: not the echo request: %x", e.kind, e.hook, e.data)
			}
		}
		if e.stackLost || len(e.stack) == 0 {
			t.Errorf("%s:%s: no stack (lost %v, errno %d)", e.kind, e.hook, e.stackLost, e.stackErr)
		} else if e.kind == entry {
			// A function hook's stack starts in the function itself.
			if first := syms(e.stack[0]); first != e.hook {
				t.Errorf("%s:%s: stack starts in %s", e.kind, e.hook, first)
			}
		}
		if e.kind == HookFexit {
			if !e.hasRetVal {
				t.Errorf("fexit:%s: no return value", e.hook)
			}
		} else if e.hasRetVal {
			t.Errorf("%s:%s: return value %d at an entry", e.kind, e.hook, e.retVal)
		}
	}
	t.Logf("echo request %d: %s", req, strings.Join(path, " -> "))

	want := []string{"tracepoint:net_dev_queue", "tracepoint:netif_receive_skb"}
	for _, fn := range []string{"ip_rcv", "ip_local_deliver", "icmp_rcv"} {
		want = append(want, entry.String()+":"+fn)
		if backend == BackendFentry {
			want = append(want, "fexit:"+fn)
		}
	}
	for _, w := range want {
		if !seenAt[w] {
			t.Errorf("echo request not seen at %s", w)
		}
	}
	for _, e := range events {
		if e.kind == HookFexit && e.packetID == req && e.hook == "icmp_rcv" && e.retVal != 0 {
			t.Errorf("fexit:icmp_rcv returned %d, want 0 (NET_RX_SUCCESS)", e.retVal)
		}
	}

	// The UDP datagram to port 9: dropped with its reason, under the id it
	// had at the function hooks.
	var udp uint64
	for _, e := range events {
		if e.hook == "kfree_skb" && e.is(17, p.ipA, p.ipB) {
			if tr := e.transport(); len(tr) >= 4 && tr[2] == 0 && tr[3] == 9 {
				udp = e.packetID
				checkNoSocketDrop(t, e)
			}
		}
	}
	if udp == 0 {
		t.Error("no kfree_skb event for the UDP datagram")
	} else if !slices.ContainsFunc(events, func(e seen) bool { return e.packetID == udp && e.hook == "__udp4_lib_rcv" && e.kind == entry }) {
		t.Errorf("UDP datagram %d not seen at %s:__udp4_lib_rcv", udp, entry)
	}

	// ping runs as root with a raw socket: the reply is delivered to it
	// as a clone (raw_v4_input's skb_clone).
	var clones []string
	for _, e := range events {
		if e.parent == reply {
			clones = append(clones, fmt.Sprintf("%s:%s id %d", e.kind, e.hook, e.packetID))
			if e.packetID == reply || e.packetID == 0 {
				t.Errorf("clone of %d has id %d", reply, e.packetID)
			}
			if !e.is(1, p.ipB, p.ipA) {
				t.Errorf("clone of the reply is not the reply: %x", e.data)
			}
		}
	}
	if len(clones) == 0 {
		t.Errorf("no clone of the echo reply %d recorded", reply)
	}
	t.Logf("echo reply %d cloned: %v", reply, clones)
}

// symbolizer returns a function resolving addresses to symbol names.
func symbolizer(t *testing.T) func(uint64) string {
	t.Helper()
	frames := func(a uint64) string { return fmt.Sprintf("%#x", a) }
	if syms, err := kallsyms.Load(); err == nil {
		frames = func(a uint64) string {
			if s, ok := syms.Resolve(a); ok {
				return s.Name
			}
			return fmt.Sprintf("%#x", a)
		}
	}
	return frames
}

// vmFilters returns the filters of envVMFilters, compiled on the host.
func vmFilters(t *testing.T) []vmFilter {
	t.Helper()
	enc := os.Getenv(envVMFilters)
	if enc == "" {
		t.Fatalf("%s not set", envVMFilters)
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatal(err)
	}
	var filters []vmFilter
	if err := json.Unmarshal(raw, &filters); err != nil {
		t.Fatal(err)
	}
	return filters
}

// vmFilterOf returns the filter of expr from envVMFilters.
func vmFilterOf(t *testing.T, expr string) *Filter {
	t.Helper()
	for _, vf := range vmFilters(t) {
		if vf.Expr == expr {
			f, err := filterFromRaw(vf.Expr, vf.L2, vf.L3)
			if err != nil {
				t.Fatalf("%q: %v", expr, err)
			}
			return f
		}
	}
	t.Fatalf("%q is not among the filters of %s", expr, envVMFilters)
	return nil
}

// TestInVMFilterSubset runs part of the differential filter test with a
// function backend: the frames sent on A's veth through a packet socket,
// as recorded at __dev_queue_xmit, against what libpcap keeps.
func TestInVMFilterSubset(t *testing.T) {
	requireVM(t)
	filters := vmFilters(t)
	backend := BackendKprobe
	if haveBackend(BackendKprobeMulti, "", nil, nil) == nil {
		backend = BackendKprobeMulti
	}
	p := newVethPair(t)
	s := newL2Sender(t, p)
	pkts := testPackets()
	start := time.Now()
	for _, vf := range filters {
		f, err := filterFromRaw(vf.Expr, vf.L2, vf.L3)
		if err != nil {
			t.Fatalf("%q: %v", vf.Expr, err)
		}
		r, err := NewRecorder(Config{
			Backend:   backend,
			Functions: "^__dev_queue_xmit$",
			Hooks:     []string{"net_dev_queue"},
			Filter:    f,
			Match:     Match{NetNS: p.inodeA},
			Snaplen:   512,
		})
		if err != nil {
			t.Fatalf("%q: %v", vf.Expr, err)
		}
		got := map[int]bool{}
		runWith(t, r, func(e *Event) {
			if e.NetNS != p.inodeA || e.Hook.Name != "__dev_queue_xmit" || e.Ifindex != s.ifindex {
				return
			}
			if n, ok := findMarker(e.Data); ok && n < len(pkts) {
				got[n] = true
			}
		}, func() { s.send(t, pkts) })
		r.Close()
		want := map[int]bool{}
		for _, i := range vf.Keep {
			want[i] = true
		}
		compareSets(t, vf.Expr+" ("+backend+")", "l2", pkts, got, want)
	}
	t.Logf("%d expressions with %s in %v", len(filters), backend, time.Since(start).Round(time.Millisecond))
}

// newL2Sender is newSender without the TUN device (the VM has no tun
// module): it sends Ethernet frames only.
func newL2Sender(t *testing.T, p *vethPair) *sender {
	t.Helper()
	quiet(t, p)
	s := &sender{packet: -1, tun: -1, ifindex: p.ifindexA}
	err := netnsDo(p.nsA, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		s.packet = fd
		return nil
	})
	t.Cleanup(func() {
		if s.packet >= 0 {
			unix.Close(s.packet)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestInVMAttachTimes measures how long each backend takes to attach and
// detach its default function set (with PATHCAP_VM_TIMINGS=1 only).
func TestInVMAttachTimes(t *testing.T) {
	requireVM(t)
	if os.Getenv(envVMTimings) != "1" {
		t.Skipf("set %s=1 to measure attach times", envVMTimings)
	}
	for _, b := range vmBackends(t) {
		for _, fns := range []string{"", "^(ip|ip6|icmp|udp|tcp)_"} {
			start := time.Now()
			r, err := NewRecorder(Config{Backend: b, Functions: fns, Hooks: []string{"kfree_skb"}})
			if err != nil {
				t.Errorf("%s %q: %v", b, fns, err)
				continue
			}
			attach := time.Since(start)
			n := len(r.Hooks()) - 1
			start = time.Now()
			r.Close()
			t.Logf("timing %s functions=%q: %d hooks (skipped %d), attach %v, detach %v",
				b, fns, n, r.SkippedFunctions(), attach.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		}
	}
}

// sendUDP sends one datagram to addr from namespace ns.
func sendUDP(t *testing.T, ns, addr string) {
	t.Helper()
	err := netnsDo(ns, func() error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("hello"))
		return err
	})
	if err != nil {
		t.Fatalf("send UDP to %s: %v", addr, err)
	}
}
