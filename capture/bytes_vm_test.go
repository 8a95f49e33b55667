package capture

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/internal/vmtest"
)

// TestVMBytesChanged runs TestInVMBytesChanged in a VM of each kernel.
func TestVMBytesChanged(t *testing.T) {
	for _, k := range vmtest.Kernels(t) {
		t.Run(k.Series, func(t *testing.T) {
			start := time.Now()
			out := vmtest.RunTestWith(t, k, "github.com/pathcap/pathcap/capture", "^TestInVMBytesChanged$", vmtest.Options{
				Tools:   []string{"ping"},
				Timeout: 12 * time.Minute,
			})
			t.Logf("%s: %v", k, time.Since(start).Round(100*time.Millisecond))
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "bytes_vm_test.go") || strings.HasPrefix(strings.TrimSpace(line), "--- ") {
					t.Log(strings.TrimSpace(line))
				}
			}
		})
	}
}

// bytesHit is what TestInVMBytesChanged keeps of an event.
type bytesHit struct {
	hook string
	kind HookKind
	skb  uint64
	id   uint64
	same bool
	data []byte
}

// routedNets builds A — R — B, R forwarding, and returns the namespaces,
// A's and B's addresses.
func routedNets(t *testing.T) (nsA, nsR, nsB, ipA, ipB string) {
	t.Helper()
	id := fmt.Sprint(os.Getpid() % 100000)
	nsA, nsR, nsB = "bcA"+id, "bcR"+id, "bcB"+id
	ipA, ipB = "10.77.1.1", "10.77.2.2"
	for _, ns := range []string{nsA, nsR, nsB} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	run(t, "ip", "link", "add", "bca"+id, "netns", nsA, "type", "veth", "peer", "name", "bcr"+id, "netns", nsR)
	run(t, "ip", "link", "add", "bcs"+id, "netns", nsR, "type", "veth", "peer", "name", "bcb"+id, "netns", nsB)
	for _, a := range []struct{ ns, dev, addr string }{
		{nsA, "bca" + id, ipA + "/24"}, {nsR, "bcr" + id, "10.77.1.254/24"},
		{nsR, "bcs" + id, "10.77.2.254/24"}, {nsB, "bcb" + id, ipB + "/24"},
	} {
		run(t, "ip", "-n", a.ns, "addr", "add", a.addr, "dev", a.dev)
		run(t, "ip", "-n", a.ns, "link", "set", a.dev, "up")
	}
	run(t, "ip", "-n", nsA, "route", "add", "default", "via", "10.77.1.254")
	run(t, "ip", "-n", nsB, "route", "add", "default", "via", "10.77.2.254")
	run(t, "ip", "netns", "exec", nsR, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return
}

// bytesFunctions are the functions TestInVMBytesChanged hooks: the
// forwarding path, where ip_forward decrements the TTL in place (no
// length, offset or buffer change) before ip_forward_finish.
const bytesFunctions = "^(ip_rcv|ip_rcv_finish|ip_forward|ip_forward_finish|ip_output|ip_finish_output|ip_finish_output2|ip_local_deliver|icmp_rcv|__dev_queue_xmit)$"

// TestInVMBytesChanged records pings forwarded A — R — B with each
// function backend twice at once: with Config.BytesChanged and without.
// Every hit of the first carries bytes or BytesSame, and the bytes it
// stands for (those of the packet's previous hit with bytes) equal what
// the second recorder copied at the same hit: no false "unchanged", not
// even for the TTL that ip_forward decrements in place.
func TestInVMBytesChanged(t *testing.T) {
	requireVM(t)
	for _, b := range vmBackends(t) {
		t.Run(b, func(t *testing.T) { testBytesChanged(t, b) })
	}
}

func testBytesChanged(t *testing.T, backend string) {
	nsA, nsR, nsB, _, ipB := routedNets(t)
	run(t, "ip", "netns", "exec", nsA, "ping", "-c", "1", "-W", "2", ipB)
	inodes := map[uint32]bool{}
	for _, ns := range []string{nsA, nsR, nsB} {
		inodes[testenv.NamespaceInode(t, ns)] = true
	}
	recs := make([]*Recorder, 2)
	for i := range recs {
		r, err := NewRecorder(Config{
			Backend:      backend,
			Functions:    bytesFunctions,
			Exit:         backend == BackendFentry,
			Hooks:        []string{"net_dev_queue", "netif_receive_skb", "kfree_skb", "consume_skb"},
			BytesChanged: i == 1,
		})
		if err != nil {
			t.Fatalf("recorder %d: %v", i, err)
		}
		defer r.Close()
		recs[i] = r
	}
	hits := make([][]bytesHit, 2)
	// Only the hits both recorders saw: after both attached, before the
	// end of the pings (the first recorder is attached earlier, and each
	// goes on recording until it is closed).
	var from, until time.Time
	var window sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, r := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.Run(ctx, func(e *Event) error {
				window.Lock()
				in := !from.IsZero() && e.Time.After(from) && (until.IsZero() || e.Time.Before(until))
				window.Unlock()
				if in && inodes[e.NetNS] {
					hits[i] = append(hits[i], bytesHit{e.Hook.Name, e.Hook.Kind, e.SKB, e.PacketID, e.BytesSame, bytes.Clone(e.Data)})
				}
				return nil
			})
		}()
	}
	time.Sleep(200 * time.Millisecond)
	window.Lock()
	from = time.Now()
	window.Unlock()
	run(t, "ip", "netns", "exec", nsA, "ping", "-c", "5", "-i", "0.2", "-W", "2", ipB)
	time.Sleep(500 * time.Millisecond)
	window.Lock()
	until = time.Now()
	window.Unlock()
	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("recorder %d: %v", i, err)
		}
		if st, err := recs[i].Stats(); err != nil || st.Lost != 0 {
			t.Fatalf("recorder %d: %+v, %v: lost events make the comparison meaningless", i, st, err)
		}
	}

	// Each recorder's hits of one packet, in order, by its tracking id.
	byID := func(hs []bytesHit) (map[uint64][]bytesHit, []uint64) {
		m := map[uint64][]bytesHit{}
		var order []uint64
		for _, h := range hs {
			if _, ok := m[h.id]; !ok {
				order = append(order, h.id)
			}
			m[h.id] = append(m[h.id], h)
		}
		return m, order
	}
	allHits, allOrder := byID(hits[0])
	chHits, chOrder := byID(hits[1])
	if len(allOrder) != len(chOrder) {
		t.Fatalf("%d packets without BytesChanged, %d with", len(allOrder), len(chOrder))
	}
	var same, withBytes, ttlChecked int
	for n, id := range allOrder {
		a, c := allHits[id], chHits[chOrder[n]]
		if len(a) != len(c) {
			t.Errorf("packet %d: %d hits without BytesChanged, %d with", id, len(a), len(c))
			continue
		}
		var carried []byte
		for i := range a {
			if a[i].hook != c[i].hook || a[i].kind != c[i].kind || a[i].skb != c[i].skb {
				t.Errorf("packet %d hit %d: %s:%s vs %s:%s", id, i, a[i].kind, a[i].hook, c[i].kind, c[i].hook)
				break
			}
			got := c[i].data
			if c[i].same {
				same++
				if len(c[i].data) != 0 {
					t.Errorf("packet %d hit %d (%s): BytesSame with %d bytes", id, i, c[i].hook, len(c[i].data))
				}
				got = carried
			} else if len(c[i].data) > 0 {
				withBytes++
				carried = c[i].data
			}
			if !bytes.Equal(got, a[i].data) {
				t.Errorf("packet %d hit %d (%s:%s, same %v): bytes %x, want %x", id, i, c[i].kind, c[i].hook, c[i].same, got, a[i].data)
			}
			// An echo request after R's forwarding: TTL 63, recorded.
			if c[i].hook == "ip_forward_finish" && c[i].kind != HookFexit && len(got) >= 34 && got[34] == 8 {
				ttlChecked++
				if got[22] != 63 || c[i].same {
					t.Errorf("packet %d at ip_forward_finish: TTL %d (bytes same as before: %v), want 63 recorded anew", id, got[22], c[i].same)
				}
			}
		}
	}
	if ttlChecked == 0 {
		t.Error("no echo request seen at ip_forward_finish")
	}
	if same == 0 {
		t.Error("no hit with BytesSame")
	}
	t.Logf("%s: %d packets, %d hits with bytes, %d with BytesSame; %d echo requests checked after forwarding", backend, len(chOrder), withBytes, same, ttlChecked)
}
