package scenarios

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/internal/testenv"
)

// netns is one network namespace of a scenario.
type netns struct {
	Name  string // under /run/netns
	Inode uint32
}

var seq atomic.Uint32

// uniq returns a short name unique in this process and among concurrent
// test processes: "pcs" + pid + a sequence number.
func uniq(prefix string) string {
	return fmt.Sprintf("%s%d%d", prefix, os.Getpid()%10000, seq.Add(1))
}

// newNetns creates a namespace with lo up and IPv6 disabled (so that no
// router solicitation or MLD report joins the recording), removed when t
// ends.
func newNetns(t testing.TB) *netns {
	t.Helper()
	n := &netns{Name: uniq("pcs")}
	testenv.Run(t, "ip", "netns", "add", n.Name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.Name).Run() })
	n.sysctl(t, "net/ipv6/conf/all/disable_ipv6", "1")
	n.sysctl(t, "net/ipv6/conf/default/disable_ipv6", "1")
	testenv.Run(t, "ip", "-n", n.Name, "link", "set", "lo", "up")
	n.Inode = testenv.NamespaceInode(t, n.Name)
	return n
}

// sysctl writes value to /proc/sys/KEY (key with slashes) from a thread
// in the namespace: /proc/sys/net follows the writer's namespace.
func (n *netns) sysctl(t testing.TB, key, value string) {
	t.Helper()
	n.do(t, func() error {
		return os.WriteFile("/proc/sys/"+key, []byte(value), 0o644)
	})
}

// ip runs "ip -n NS args...".
func (n *netns) ip(t testing.TB, args ...string) string {
	t.Helper()
	return testenv.Run(t, "ip", append([]string{"-n", n.Name}, args...)...)
}

// exec runs a command in the namespace.
func (n *netns) exec(t testing.TB, name string, args ...string) string {
	t.Helper()
	return testenv.Run(t, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// do runs fn on an OS thread that has entered the namespace; the thread
// is discarded afterwards. Sockets fn creates belong to the namespace and
// may be used from any goroutine later.
func (n *netns) do(t testing.TB, fn func() error) {
	t.Helper()
	if err := n.try(fn); err != nil {
		t.Fatalf("in netns %s: %v", n.Name, err)
	}
}

// try is do returning fn's error.
func (n *netns) try(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f, err := os.Open("/run/netns/" + n.Name)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns: %w", err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// link joins namespaces a and b by a veth pair, devices named after the
// namespaces, addresses ipA and ipB (with prefix length), both up. It
// returns the device names.
func link(t testing.TB, a *netns, ipA string, b *netns, ipB string) (devA, devB string) {
	t.Helper()
	devA, devB = uniq("va"), uniq("vb")
	testenv.Run(t, "ip", "link", "add", devA, "netns", a.Name, "type", "veth", "peer", "name", devB, "netns", b.Name)
	for _, s := range []struct {
		n       *netns
		dev, ip string
	}{{a, devA, ipA}, {b, devB, ipB}} {
		s.n.ip(t, "addr", "add", s.ip, "dev", s.dev)
		s.n.ip(t, "link", "set", s.dev, "up")
	}
	return devA, devB
}

// counters are the kernel's SNMP and extended counters of one namespace,
// keyed "Group:Name" ("Udp:NoPorts", "TcpExt:IPReversePathFilter",
// "IcmpMsg:OutType3").
type counters map[string]int64

// readCounters reads /proc/net/snmp and /proc/net/netstat as a thread in
// the namespace sees them.
func (n *netns) counters(t testing.TB) counters {
	t.Helper()
	c := counters{}
	n.do(t, func() error {
		for _, name := range []string{"snmp", "netstat"} {
			f, err := os.Open("/proc/thread-self/net/" + name)
			if err != nil {
				return err
			}
			err = c.parse(f.Name(), bufio.NewScanner(f))
			f.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	return c
}

// parse reads the "Group: Name Name..." / "Group: value value..." line
// pairs of /proc/net/snmp and /proc/net/netstat.
func (c counters) parse(file string, sc *bufio.Scanner) error {
	var header []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		if header == nil || header[0] != f[0] {
			header = f
			continue
		}
		if len(f) != len(header) {
			return fmt.Errorf("%s: %s has %d values for %d names", file, f[0], len(f)-1, len(header)-1)
		}
		group := strings.TrimSuffix(f[0], ":")
		for i := 1; i < len(f); i++ {
			v, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return fmt.Errorf("%s: %s %s: %w", file, group, header[i], err)
			}
			c[group+":"+header[i]] = v
		}
		header = nil
	}
	return sc.Err()
}

// delta returns after[key] - before[key], failing t if the kernel has no
// such counter.
func delta(t testing.TB, before, after counters, key string) int64 {
	t.Helper()
	a, ok := after[key]
	if !ok {
		t.Fatalf("the kernel has no counter %s", key)
	}
	return a - before[key]
}

// nftCounter returns the packets counted by the counter expressions of
// the rules of one nftables chain, from "nft -j list chain".
func nftCounter(t testing.TB, n *netns, family, table, chain string) int64 {
	t.Helper()
	out := n.exec(t, "nft", "-j", "list", "chain", family, table, chain)
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Expr []map[string]json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("parse nft -j output: %v\n%s", err, out)
	}
	var total int64
	found := false
	for _, o := range doc.Nftables {
		if o.Rule == nil {
			continue
		}
		for _, e := range o.Rule.Expr {
			raw, ok := e["counter"]
			if !ok {
				continue
			}
			var cnt struct {
				Packets *int64 `json:"packets"`
			}
			if err := json.Unmarshal(raw, &cnt); err != nil || cnt.Packets == nil {
				t.Fatalf("nft counter %s: %v", raw, err)
			}
			total += *cnt.Packets
			found = true
		}
	}
	if !found {
		t.Fatalf("no counter in chain %s %s %s:\n%s", family, table, chain, out)
	}
	return total
}

// loadDropProgram loads a tc direct-action program that drops IPv4 UDP
// (20-byte IP header) to port and counts what it drops, pins it in a
// bpffs mounted for the test, and returns the pin's path and the counter.
func loadDropProgram(t testing.TB, port uint16) (string, *ebpf.Map) {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		t.Fatalf("mount bpffs on %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	count, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatalf("counter map: %v", err)
	}
	t.Cleanup(func() { count.Close() })
	// Loads from packet memory are little-endian: 0x0800 reads 0x0008.
	be16 := func(v uint16) int32 { return int32(v>>8 | v<<8&0xff00) }
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.SchedCLS,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, 76, asm.Word), // skb->data
			asm.LoadMem(asm.R3, asm.R1, 80, asm.Word), // skb->data_end
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, 14+20+4),
			asm.JGT.Reg(asm.R4, asm.R3, "pass"),
			asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
			asm.JNE.Imm(asm.R5, be16(0x0800), "pass"),
			asm.LoadMem(asm.R5, asm.R2, 14, asm.Byte),
			asm.JNE.Imm(asm.R5, 0x45, "pass"),
			asm.LoadMem(asm.R5, asm.R2, 14+9, asm.Byte),
			asm.JNE.Imm(asm.R5, 17, "pass"),
			asm.LoadMem(asm.R5, asm.R2, 14+20+2, asm.Half),
			asm.JNE.Imm(asm.R5, be16(port), "pass"),
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.LoadMapPtr(asm.R1, count.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "shot"),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 2).WithSymbol("shot"), // TC_ACT_SHOT
			asm.Return(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("pass"), // TC_ACT_OK
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatalf("load the tc program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	pin := filepath.Join(dir, "drop")
	if err := prog.Pin(pin); err != nil {
		t.Fatalf("pin the tc program: %v", err)
	}
	return pin, count
}

// mapCount reads the drop program's counter.
func mapCount(t testing.TB, m *ebpf.Map) int64 {
	t.Helper()
	var n uint64
	if err := m.Lookup(uint32(0), &n); err != nil {
		t.Fatalf("read the program's counter: %v", err)
	}
	return int64(n)
}

// tcQdiscDrops returns the drops of the clsact qdisc on dev, from
// "tc -s -j qdisc show": the kernel counts there every packet an ingress
// filter shot.
func tcQdiscDrops(t testing.TB, n *netns, dev string) int64 {
	t.Helper()
	out := n.exec(t, "tc", "-s", "-j", "qdisc", "show", "dev", dev)
	var qs []struct {
		Kind  string `json:"kind"`
		Drops *int64 `json:"drops"`
	}
	if err := json.Unmarshal([]byte(out), &qs); err != nil {
		t.Fatalf("parse tc -j qdisc output: %v\n%s", err, out)
	}
	for _, q := range qs {
		if q.Kind == "clsact" && q.Drops != nil {
			return *q.Drops
		}
	}
	t.Fatalf("no clsact qdisc with statistics on %s:\n%s", dev, out)
	return 0
}
