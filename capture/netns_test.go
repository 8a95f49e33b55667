package capture

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// vethPair is two network namespaces joined by a veth pair, with
// 10.77.N.1/24 on side A and 10.77.N.2/24 on side B.
type vethPair struct {
	nsA, nsB           string // namespace names
	devA, devB         string // device names, each in its namespace
	ipA, ipB           string
	inodeA, inodeB     uint32 // namespace inodes
	ifindexA, ifindexB uint32
}

// newVethPair creates a vethPair and removes it when t ends.
func newVethPair(t testing.TB) *vethPair {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		failOrSkip(t, "ip (iproute2) not found: %v", err)
	}
	id := os.Getpid() % 10000
	n := os.Getpid()%200 + 20
	p := &vethPair{
		nsA:  fmt.Sprintf("pathcap-a-%d", id),
		nsB:  fmt.Sprintf("pathcap-b-%d", id),
		devA: fmt.Sprintf("pcva%d", id),
		devB: fmt.Sprintf("pcvb%d", id),
		ipA:  fmt.Sprintf("10.77.%d.1", n),
		ipB:  fmt.Sprintf("10.77.%d.2", n),
	}
	for _, ns := range []string{p.nsA, p.nsB} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	run(t, "ip", "link", "add", p.devA, "netns", p.nsA, "type", "veth", "peer", "name", p.devB, "netns", p.nsB)
	for _, side := range []struct{ ns, dev, ip string }{{p.nsA, p.devA, p.ipA}, {p.nsB, p.devB, p.ipB}} {
		run(t, "ip", "-n", side.ns, "addr", "add", side.ip+"/24", "dev", side.dev)
		run(t, "ip", "-n", side.ns, "link", "set", side.dev, "up")
		run(t, "ip", "-n", side.ns, "link", "set", "lo", "up")
	}
	p.inodeA, p.inodeB = nsInode(t, p.nsA), nsInode(t, p.nsB)
	p.ifindexA, p.ifindexB = ifindex(t, p.nsA, p.devA), ifindex(t, p.nsB, p.devB)
	return p
}

// failOrSkip skips t, or fails it when CI is set.
func failOrSkip(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// run runs a command and fails t if it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func nsInode(t testing.TB, ns string) uint32 {
	t.Helper()
	fi, err := os.Stat("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(fi.Sys().(*syscall.Stat_t).Ino)
}

func ifindex(t testing.TB, ns, dev string) uint32 {
	t.Helper()
	out := run(t, "ip", "netns", "exec", ns, "cat", "/sys/class/net/"+dev+"/ifindex")
	n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(n)
}

// seen is a copy of the parts of an Event that the tests check.
type seen struct {
	hook       string
	packetID   uint64
	netns      uint32
	ifindex    uint32
	header     Header
	protocol   uint16
	data       []byte
	hasDrop    bool
	reason     string
	location   uint64
	lostBefore uint64
	comm       string
	kind       HookKind
	skb        uint64
	stack      []uint64
	stackLost  bool
	stackErr   int32
	parent     uint64
	retVal     int64
	hasRetVal  bool
}

// recordWhile records with cfg while action runs, and returns what Run
// delivered in p's namespaces (everything if p is nil) and the final Stats.
// slow is a delay added to each callback.
func recordWhile(t *testing.T, p *vethPair, cfg Config, slow time.Duration, action func()) ([]seen, Stats) {
	t.Helper()
	r, err := NewRecorder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return collect(t, r, p, slow, action)
}

// collect runs r while action runs and returns what Run delivered in p's
// namespaces (everything if p is nil) and the final Stats.
func collect(t *testing.T, r *Recorder, p *vethPair, slow time.Duration, action func()) ([]seen, Stats) {
	t.Helper()

	var (
		events []seen
		runErr error
		wg     sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		runErr = r.Run(ctx, func(e *Event) error {
			// Other traffic on the host is recorded too; copy only ours.
			if p == nil || e.NetNS == p.inodeA || e.NetNS == p.inodeB {
				events = append(events, seenOf(e))
			}
			if slow > 0 {
				time.Sleep(slow)
			}
			return nil
		})
	}()
	action()
	cancel()
	wg.Wait()
	if runErr != nil {
		t.Fatalf("Run: %v", runErr)
	}
	st, err := r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return events, st
}

// ipv4 returns the IPv4 header of e's bytes, or nil.
func (e *seen) ipv4() []byte {
	b := e.data
	switch e.header {
	case HeaderMAC:
		if len(b) < 14 || b[12] != 0x08 || b[13] != 0x00 {
			return nil
		}
		b = b[14:]
	case HeaderNetwork:
	default:
		return nil
	}
	if len(b) < 20 || b[0]>>4 != 4 {
		return nil
	}
	return b
}

// is reports whether e's packet is IPv4 with protocol proto from src to dst.
func (e *seen) is(proto byte, src, dst string) bool {
	ip := e.ipv4()
	return ip != nil && ip[9] == proto &&
		fmt.Sprintf("%d.%d.%d.%d", ip[12], ip[13], ip[14], ip[15]) == src &&
		fmt.Sprintf("%d.%d.%d.%d", ip[16], ip[17], ip[18], ip[19]) == dst
}

// transport returns the bytes after e's IPv4 header.
func (e *seen) transport() []byte {
	ip := e.ipv4()
	hl := int(ip[0]&0x0f) * 4
	if len(ip) < hl {
		return nil
	}
	return ip[hl:]
}

// seenOf copies e.
func seenOf(e *Event) seen {
	return seen{
		hook:       e.Hook.Name,
		packetID:   e.PacketID,
		netns:      e.NetNS,
		ifindex:    e.Ifindex,
		header:     e.Header,
		protocol:   e.Protocol,
		data:       append([]byte(nil), e.Data...),
		hasDrop:    e.HasDrop,
		reason:     e.DropReasonName(),
		location:   e.DropLocation,
		lostBefore: e.LostBefore,
		comm:       e.CommString(),
		kind:       e.Hook.Kind,
		skb:        e.SKB,
		stack:      append([]uint64(nil), e.Stack...),
		stackLost:  e.StackLost,
		stackErr:   e.StackErr,
		parent:     e.Parent,
		retVal:     e.RetVal,
		hasRetVal:  e.HasRetVal,
	}
}
