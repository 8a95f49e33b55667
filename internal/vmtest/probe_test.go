package vmtest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/internal/testenv"
)

// probeNames are the capabilities TestInVMProbes checks, in table order.
var probeNames = []string{"btf", "tp_btf", "kprobe", "kprobe_multi", "fentry", "fexit", "veth"}

// machineTable is the matrix of docs MACHINE.md ("Real kernels in a VM")
// for the kernel series fetch-kernels.sh fetches.
var machineTable = map[string]map[string]bool{
	"5.10": {"kprobe": true, "kprobe_multi": false, "fentry": true, "fexit": true, "tp_btf": true},
	"6.1":  {"kprobe": true, "kprobe_multi": false, "fentry": true, "fexit": true, "tp_btf": true},
	"6.12": {"kprobe": true, "kprobe_multi": true, "fentry": true, "fexit": true, "tp_btf": true},
}

// expectedProbes is what kernel k should support: machineTable where it
// has the series, else what k's configuration implies; BTF and veth always.
// It also checks that the configuration agrees with machineTable.
func expectedProbes(t *testing.T, k Kernel) map[string]bool {
	t.Helper()
	fromConfig := map[string]bool{
		"kprobe":       k.Config("CONFIG_KPROBES") == "y",
		"kprobe_multi": k.Config("CONFIG_FPROBE") == "y",
		"fentry":       k.Config("CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS") == "y",
		"fexit":        k.Config("CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS") == "y",
		"tp_btf":       k.Config("CONFIG_DEBUG_INFO_BTF") == "y",
	}
	want := fromConfig
	if table, ok := machineTable[k.Series]; ok {
		for name, v := range table {
			if fromConfig[name] != v {
				t.Errorf("%s: MACHINE.md says %s=%v but the kernel configuration implies %v", k, name, v, fromConfig[name])
			}
		}
		want = table
	}
	want["btf"] = true
	want["veth"] = true
	return want
}

// TestVMProbes boots every fetched kernel, runs TestInVMProbes in it and
// checks the capability matrix it prints.
func TestVMProbes(t *testing.T) {
	for _, k := range Kernels(t) {
		t.Run(k.Series, func(t *testing.T) {
			start := time.Now()
			out := RunTest(t, k, "github.com/pathcap/pathcap/internal/vmtest", "^TestInVMProbes$", nil)
			elapsed := time.Since(start)
			got := parseProbes(out)
			want := expectedProbes(t, k)
			var table strings.Builder
			fmt.Fprintf(&table, "%s, %s %s, %v including the test binary build on first use\n",
				k.Release, k.Package, k.Version, elapsed.Round(100*time.Millisecond))
			for _, name := range probeNames {
				r, ok := got[name]
				if !ok {
					t.Errorf("%s: no result for %s", k, name)
					continue
				}
				mark := ""
				if r.ok != want[name] {
					mark = fmt.Sprintf("  <- want %s", yesNo(want[name]))
					t.Errorf("%s: %s = %s, want %s (%s)", k, name, yesNo(r.ok), yesNo(want[name]), r.detail)
				}
				fmt.Fprintf(&table, "  %-13s %-4s %s%s\n", name, yesNo(r.ok), r.detail, mark)
			}
			t.Log("\n" + table.String())
		})
	}
}

type probeResult struct {
	ok     bool
	detail string
}

// parseProbes reads the PROBE lines TestInVMProbes prints.
func parseProbes(out string) map[string]probeResult {
	res := make(map[string]probeResult)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "\t", 4)
		if len(f) == 4 && f[0] == "PROBE" {
			res[f[1]] = probeResult{ok: f[2] == "yes", detail: f[3]}
		}
	}
	return res
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// TestInVMProbes runs inside the VM (see TestVMProbes): it attaches a
// counting program of each kind to ip_rcv or the netif_receive_skb
// tracepoint, sends loopback traffic, and prints one tab-separated PROBE
// line per capability. Capabilities the kernel lacks are reported, not
// failed; the host decides what is expected.
func TestInVMProbes(t *testing.T) {
	if !InVM() {
		t.Skip("runs inside a VM, from TestVMProbes")
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	t.Logf("kernel %s", unix.ByteSliceToString(uts.Release[:]))

	report := func(name string, err error, detail string) {
		if err != nil {
			fmt.Printf("PROBE\t%s\tno\t%s\n", name, strings.ReplaceAll(err.Error(), "\n", " "))
			return
		}
		fmt.Printf("PROBE\t%s\tyes\t%s\n", name, detail)
	}

	report("btf", probeBTF(), "/sys/kernel/btf/vmlinux, struct sk_buff found")

	const fn = "ip_rcv"
	n, err := probeAttach(ebpf.Tracing, ebpf.AttachTraceRawTp, "netif_receive_skb", func(p *ebpf.Program) (link.Link, error) {
		return link.AttachTracing(link.TracingOptions{Program: p})
	})
	report("tp_btf", err, fmt.Sprintf("netif_receive_skb fired %d times", n))

	n, err = probeAttach(ebpf.Kprobe, ebpf.AttachNone, "", func(p *ebpf.Program) (link.Link, error) {
		return link.Kprobe(fn, p, nil)
	})
	report("kprobe", err, fmt.Sprintf("%s fired %d times", fn, n))

	n, err = probeAttach(ebpf.Kprobe, ebpf.AttachTraceKprobeMulti, "", func(p *ebpf.Program) (link.Link, error) {
		return link.KprobeMulti(p, link.KprobeMultiOptions{Symbols: []string{fn}})
	})
	report("kprobe_multi", err, fmt.Sprintf("%s fired %d times", fn, n))

	n, err = probeAttach(ebpf.Tracing, ebpf.AttachTraceFEntry, fn, func(p *ebpf.Program) (link.Link, error) {
		return link.AttachTracing(link.TracingOptions{Program: p})
	})
	report("fentry", err, fmt.Sprintf("%s fired %d times", fn, n))

	n, err = probeAttach(ebpf.Tracing, ebpf.AttachTraceFExit, fn, func(p *ebpf.Program) (link.Link, error) {
		return link.AttachTracing(link.TracingOptions{Program: p})
	})
	report("fexit", err, fmt.Sprintf("%s fired %d times", fn, n))

	// The project's own helper: two namespaces joined by a veth pair, set
	// up with iproute2's ip, and a ping across.
	var vethErr error
	ok := t.Run("veth", func(t *testing.T) {
		p := testenv.NewVethPair(t)
		p.Exec(t, p.NSA, "ping", "-c", "1", "-W", "2", p.IPB)
	})
	if !ok {
		vethErr = errors.New("testenv.NewVethPair or ping failed (see the subtest's log)")
	}
	report("veth", vethErr, "veth pair between two namespaces, ping across")
}

// probeBTF checks the kernel's BTF file and that cilium/ebpf can read it.
func probeBTF() error {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return err
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return err
	}
	var skb *btf.Struct
	return spec.TypeByName("sk_buff", &skb)
}

// probeAttach loads a program that counts its runs in an array map,
// attaches it with attach, sends loopback UDP packets, and returns the
// count.
func probeAttach(typ ebpf.ProgramType, at ebpf.AttachType, attachTo string, attach func(*ebpf.Program) (link.Link, error)) (uint64, error) {
	counter, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return 0, fmt.Errorf("map: %w", err)
	}
	defer counter.Close()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:       typ,
		AttachType: at,
		AttachTo:   attachTo,
		License:    "GPL",
		Instructions: asm.Instructions{
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.LoadMapPtr(asm.R1, counter.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
			asm.Return(),
		},
	})
	if err != nil {
		return 0, fmt.Errorf("load: %w", err)
	}
	defer prog.Close()
	l, err := attach(prog)
	if err != nil {
		return 0, fmt.Errorf("attach: %w", err)
	}
	defer l.Close()

	var n uint64
	deadline := time.Now().Add(2 * time.Second)
	for n == 0 && time.Now().Before(deadline) {
		if err := sendLoopback(); err != nil {
			return 0, err
		}
		time.Sleep(10 * time.Millisecond)
		if err := counter.Lookup(uint32(0), &n); err != nil {
			return 0, fmt.Errorf("read counter: %w", err)
		}
	}
	if n == 0 {
		return 0, errors.New("attached, but never ran")
	}
	return n, nil
}

// sendLoopback sends a few UDP datagrams to the discard port on 127.0.0.1.
func sendLoopback() error {
	c, err := net.Dial("udp4", "127.0.0.1:9")
	if err != nil {
		return err
	}
	defer c.Close()
	for range 3 {
		// Errors (ECONNREFUSED from an earlier datagram's ICMP) do not
		// matter: the datagram has been received by then.
		_, _ = c.Write([]byte("pathcap"))
	}
	return nil
}
