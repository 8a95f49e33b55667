package capture

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/testenv"
)

// vethPair is two network namespaces joined by a veth pair (see
// testenv.VethPair), with the field names these tests use.
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
	p := testenv.NewVethPair(t)
	return &vethPair{
		nsA: p.NSA, nsB: p.NSB,
		devA: p.DevA, devB: p.DevB,
		ipA: p.IPA, ipB: p.IPB,
		inodeA: p.InodeA, inodeB: p.InodeB,
		ifindexA: p.IfindexA, ifindexB: p.IfindexB,
	}
}

// failOrSkip skips t, or fails it when CI is set.
func failOrSkip(t testing.TB, format string, args ...any) {
	t.Helper()
	testenv.SkipOrFail(t, format, args...)
}

// run runs a command and fails t if it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return testenv.Run(t, name, args...)
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
