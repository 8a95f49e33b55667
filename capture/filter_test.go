package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/internal/pcapfilter"
)

// requireLibpcap skips t (or fails it in CI) in a build without libpcap.
func requireLibpcap(t *testing.T) {
	t.Helper()
	if !pcapfilter.Available() {
		failOrSkip(t, "built without libpcap (cgo)")
	}
}

func TestCompileFilterErrors(t *testing.T) {
	requireLibpcap(t)
	for _, tc := range []struct {
		expr string
		want string // in the message
	}{
		{"inbound", "packet type"},
		{"outbound", "packet type"},
		{"ifindex 2", "interface index"},
		{"tcp and inbound", "packet type"},
		{"tcp port banana", "banana"},
		{"ip and (", "syntax error"},
		{"ip and arp", "rejects all packets"},
		{"", "empty expression"},
	} {
		f, err := CompileFilter(tc.expr)
		if err == nil {
			t.Errorf("%q: compiled (%v), want an error", tc.expr, f)
			continue
		}
		var fe *FilterError
		if !errors.As(err, &fe) || !errors.Is(err, ErrFilter) {
			t.Errorf("%q: error %v is not a FilterError", tc.expr, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q does not say %q", tc.expr, err, tc.want)
		}
	}
}

func TestCompileFilterLayers(t *testing.T) {
	requireLibpcap(t)
	for _, tc := range []struct {
		expr   string
		l2, l3 bool
	}{
		{"tcp port 80", true, true},
		{"arp", true, false},
		{"ether host 02:00:00:00:00:01", true, false},
		{"vlan", true, false},
		{"ip6 protochain 58", true, true},
		{"not arp", true, true},
	} {
		f, err := CompileFilter(tc.expr)
		if err != nil {
			t.Fatalf("%q: %v", tc.expr, err)
		}
		if (f.l2 != nil) != tc.l2 || (f.l3 != nil) != tc.l3 {
			t.Errorf("%q: layers l2 %v l3 %v, want %v %v (l3: %v)", tc.expr, f.l2 != nil, f.l3 != nil, tc.l2, tc.l3, f.l3Err)
		}
	}
}

func TestFilterLayout(t *testing.T) {
	requireLibpcap(t)
	for _, tc := range []struct {
		expr    string
		snaplen int
		want    filterLayout
	}{
		// ldh [12], ldb [23], ldh [20], ldx 4*([14]&0xf), ldh [x+16]:
		// 60 + 18 bytes.
		{"tcp port 80", 256, filterLayout{window: 78, bufSize: 128}},
		{"tcp port 80", 64, filterLayout{window: 64, bufSize: 64}},
		{"arp", 256, filterLayout{window: 14, bufSize: 64}},
		// X comes from header lengths read from the packet: all of it.
		{"ip6 protochain 58", 256, filterLayout{window: 256, bufSize: 256}},
		// A constant load past the snap length needs the buffer, not
		// the copy.
		{"ether[400] == 1", 256, filterLayout{window: 256, bufSize: 448}},
		{"len > 100", 256, filterLayout{window: 0, bufSize: 64}},
	} {
		f, err := CompileFilter(tc.expr)
		if err != nil {
			t.Fatalf("%q: %v", tc.expr, err)
		}
		if got := f.layout(tc.snaplen); got != tc.want {
			t.Errorf("%q snaplen %d: layout %+v, want %+v", tc.expr, tc.snaplen, got, tc.want)
		}
	}
}

// netnsDo runs fn on a new OS thread that has entered the network
// namespace /run/netns/ns. The thread is never returned to the Go
// scheduler: it ends with the goroutine, namespace and all.
func netnsDo(ns string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// sender writes test packets into namespace A: Ethernet frames on its veth
// end through an AF_PACKET socket (they pass net_dev_queue as they are) and
// IP packets into a TUN device (they pass netif_receive_skb with their
// bytes starting at the network header).
type sender struct {
	packet, tun int
	ifindex     uint32 // of the veth end
	tunIfindex  uint32
}

func newSender(t *testing.T, p *vethPair) *sender {
	t.Helper()
	quiet(t, p)
	s := &sender{packet: -1, tun: -1, ifindex: p.ifindexA}
	const tunName = "pctun0"
	err := netnsDo(p.nsA, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		s.packet = fd
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open tun: %w", err)
		}
		s.tun = fd
		ifr, err := unix.NewIfreq(tunName)
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return fmt.Errorf("create tun: %w", err)
		}
		return nil
	})
	t.Cleanup(func() {
		if s.packet >= 0 {
			unix.Close(s.packet)
		}
		if s.tun >= 0 {
			unix.Close(s.tun)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "-n", p.nsA, "link", "set", tunName, "up")
	s.tunIfindex = ifindex(t, p.nsA, tunName)
	return s
}

// quiet turns IPv6 off in both namespaces of p, so that they send no
// neighbour discovery or MLD of their own while a test records: some of
// those skbs are freed where no free hook sees it, and a test packet that
// the kernel then allocates at the same address would be recorded under
// the old id without being filtered (see docs/FILTERS.md, limits of
// tracking). The test packets are not affected: the hooks see them before
// any protocol handling.
func quiet(t *testing.T, p *vethPair) {
	t.Helper()
	for _, ns := range []string{p.nsA, p.nsB} {
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
}

func (s *sender) send(t *testing.T, pkts []testPacket) {
	t.Helper()
	to := &unix.SockaddrLinklayer{Ifindex: int(s.ifindex)}
	for _, p := range pkts {
		if err := unix.Sendto(s.packet, p.frame, 0, to); err != nil {
			t.Fatalf("send %s: %v", p.name, err)
		}
		if p.ip != nil && s.tun >= 0 {
			if _, err := unix.Write(s.tun, p.ip); err != nil {
				t.Fatalf("write %s to tun: %v", p.name, err)
			}
		}
	}
}

// filterExpressions are the expressions of the differential test.
var filterExpressions = []string{
	"ip", "ip6", "arp", "tcp", "udp", "icmp", "icmp6", "sctp",
	"vlan", "vlan 100", "vlan and ip", "vlan 100 and tcp port 80", "vlan and arp",
	"mpls", "stp", "ether proto 0x88cc",
	"tcp port 80", "udp port 53", "port 53 or port 80", "src port 1234", "dst port 443",
	"portrange 1000-2000", "tcp portrange 1000-2000", "udp dst portrange 1000-2000",
	"tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
	"tcp[tcpflags] & (tcp-fin|tcp-rst) != 0",
	"ip[6:2] & 0x1fff != 0", "ip[6] & 0x20 != 0", "ip[6:2] & 0x3fff == 0 and udp",
	"ip[0] & 0xf > 5", "ip[8] < 2", "ip[1] == 0xb8",
	"ip6[6] == 58", "ip6[6] == 0", "ip6[6] == 60",
	"ip protochain 6", "ip protochain 17", "ip6 protochain 58", "ip6 protochain 6",
	"ip6 protochain 17", "ip6 protochain 44", "protochain 17", "protochain 6 or protochain 132",
	"ip proto 47", "ip proto 51",
	"host 10.1.1.2", "src host 10.1.1.1", "dst net 10.2.0.0/16", "net 192.168.0.0/24",
	"host 2001:db8::1", "ip6 net 2001:db8:1::/48", "dst host ff02::1",
	"ether host 02:00:00:00:00:02", "ether broadcast", "ether multicast", "ip multicast", "ip6 multicast",
	"icmp[icmptype] == icmp-echo", "icmp6 and ip6[40] == 128", "icmp6[icmp6type] == icmp6-neighborsolicit",
	"less 80", "greater 300", "len >= 80 and len <= 120",
	"not ip", "not tcp and not udp", "tcp or udp", "not (ip or ip6)",
	"(tcp port 80 or udp port 53) and host 10.1.1.2", "ip6 and tcp port 80",
	"ip and not icmp and not tcp", "arp[6:2] == 1", "not arp",
}

func TestFilterDifferential(t *testing.T) {
	requireLibpcap(t)
	p := newVethPair(t)
	s := newSender(t, p)
	pkts := testPackets()
	if len(filterExpressions) < 50 {
		t.Fatalf("%d expressions, want at least 50", len(filterExpressions))
	}
	start := time.Now()
	var l2Kept, l3Kept int
	for _, expr := range filterExpressions {
		n2, n3 := differential(t, p, s, pkts, expr, false)
		l2Kept += n2
		l3Kept += n3
	}
	t.Logf("%d expressions × %d frames (%d also as IP packets through TUN): libpcap and the recorder agreed on %d kept frames and %d kept IP packets, in %v",
		len(filterExpressions), len(pkts), countIP(pkts), l2Kept, l3Kept, time.Since(start).Round(time.Millisecond))

	// The same with the bytes copied by bpf_probe_read_kernel, as on
	// kernels that do not allow loads through skb->head.
	for _, expr := range []string{"tcp port 80", "ip6 protochain 58", "protochain 17", "vlan and ip", "len >= 80 and len <= 120", "arp"} {
		differential(t, p, s, pkts, expr, true)
	}
}

// differential records pkts sent with the filter expr, compares the frames
// and IP packets recorded with those libpcap keeps, and returns how many
// of each libpcap keeps.
func differential(t *testing.T, p *vethPair, s *sender, pkts []testPacket, expr string, probeRead bool) (kept2, kept3 int) {
	t.Helper()
	want2, want3 := expectedMatches(t, expr, pkts)
	f, err := CompileFilter(expr)
	if err != nil {
		t.Errorf("%q: %v", expr, err)
		return 0, 0
	}
	// Only namespace A: tracking follows skbs by address, and an skb of
	// other traffic on the host that matched and was then freed without
	// passing kfree_skb or consume_skb (TCP frees some that way) leaves a
	// stale entry, under which a new skb at the same address would be
	// recorded unfiltered.
	r, err := NewRecorder(Config{
		Hooks:     []string{"net_dev_queue", "netif_receive_skb"},
		Filter:    f,
		Match:     Match{NetNS: p.inodeA},
		Snaplen:   512,
		probeRead: probeRead,
	})
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	got2, got3 := map[int]bool{}, map[int]bool{}
	var bad []string
	runWith(t, r, func(e *Event) {
		if e.NetNS != p.inodeA {
			return
		}
		n, ok := findMarker(e.Data)
		switch {
		case !ok:
		case e.Hook.Name == "net_dev_queue" && e.Ifindex == s.ifindex && n < len(pkts):
			if e.Header != HeaderMAC || !bytes.Equal(e.Data, pkts[n].frame) {
				bad = append(bad, fmt.Sprintf("%s: %v bytes %x", pkts[n].name, e.Header, e.Data))
			}
			got2[n] = true
		case e.Hook.Name == "netif_receive_skb" && e.Ifindex == s.tunIfindex && n >= l3Base && n-l3Base < len(pkts):
			n -= l3Base
			if e.Header != HeaderNetwork || !bytes.Equal(e.Data, pkts[n].ip) {
				bad = append(bad, fmt.Sprintf("%s (l3): %v bytes %x", pkts[n].name, e.Header, e.Data))
			}
			got3[n] = true
		}
	}, func() { s.send(t, pkts) })
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if !probeRead && !r.filterInPlace && kernelAtLeast(t, 6, 18) {
		t.Errorf("%q: the filter reads a copy of the packet; this kernel lets it read in place", expr)
	}
	if probeRead {
		expr += " (probe read)"
	}
	for _, b := range bad {
		t.Errorf("%q: recorded bytes differ from those sent: %s", expr, b)
	}
	compareSets(t, expr, "l2", pkts, got2, want2)
	compareSets(t, expr, "l3", pkts, got3, want3)
	return len(want2), len(want3)
}

func countIP(pkts []testPacket) int {
	n := 0
	for _, p := range pkts {
		if p.ip != nil {
			n++
		}
	}
	return n
}

// expectedMatches runs libpcap's own compiler and interpreter (the
// program as libpcap emits it, backward jumps included) on the frames and
// on the IP packets. An expression that does not compile for raw IP
// matches no IP packet.
func expectedMatches(t *testing.T, expr string, pkts []testPacket) (l2, l3 map[int]bool) {
	t.Helper()
	l2, l3 = map[int]bool{}, map[int]bool{}
	prog2, err := pcapfilter.CompileRaw(expr, pcapfilter.LinkTypeEthernet, filterSnaplen)
	if err != nil {
		t.Fatalf("%q: libpcap: %v", expr, err)
	}
	prog3, err3 := pcapfilter.CompileRaw(expr, pcapfilter.LinkTypeRaw, filterSnaplen)
	for i, p := range pkts {
		if pcapfilter.RunLibpcap(prog2, p.frame) {
			l2[i] = true
		}
		if err3 == nil && p.ip != nil && pcapfilter.RunLibpcap(prog3, p.ip) {
			l3[i] = true
		}
	}
	return l2, l3
}

func compareSets(t *testing.T, expr, layer string, pkts []testPacket, got, want map[int]bool) {
	t.Helper()
	var missing, extra []string
	for i := range pkts {
		switch {
		case want[i] && !got[i]:
			missing = append(missing, pkts[i].name)
		case got[i] && !want[i]:
			extra = append(extra, pkts[i].name)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("%q (%s): libpcap keeps %d, recorder %d; not recorded: %q; recorded but rejected by libpcap: %q",
			expr, layer, len(want), len(got), missing, extra)
	}
}

// runWith runs r while action runs, calling fn for every event, and
// returns once the events of the action have been delivered.
func runWith(t *testing.T, r *Recorder, fn func(*Event), action func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		wg     sync.WaitGroup
		runErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		runErr = r.Run(ctx, func(e *Event) error { fn(e); return nil })
	}()
	action()
	// Run delivers what is in the ring when it stops; give softirq
	// processing of the last packets a moment.
	time.Sleep(20 * time.Millisecond)
	cancel()
	wg.Wait()
	if runErr != nil {
		t.Fatalf("Run: %v", runErr)
	}
}

func TestFilterTrackingOff(t *testing.T) {
	requireLibpcap(t)
	p := newVethPair(t)
	s := newSender(t, p)
	pkts := testPackets()
	// The frames go from A's net_dev_queue to B's netif_receive_skb as one
	// skb. The filter keeps VLAN frames in namespace A. Tracked, a frame
	// kept in A is recorded in B too; with NoTrack, B's hook filters
	// again, and B is not A.
	f, err := CompileFilter("vlan")
	if err != nil {
		t.Fatal(err)
	}
	for _, noTrack := range []bool{false, true} {
		r, err := NewRecorder(Config{
			Hooks:   []string{"net_dev_queue", "netif_receive_skb", "kfree_skb", "consume_skb"},
			Filter:  f,
			Match:   Match{NetNS: p.inodeA},
			NoTrack: noTrack,
		})
		if err != nil {
			t.Fatal(err)
		}
		seenA, seenB := map[int]bool{}, map[int]bool{}
		runWith(t, r, func(e *Event) {
			n, ok := findMarker(e.Data)
			if !ok || n >= len(pkts) {
				return
			}
			switch {
			case e.Hook.Name == "net_dev_queue" && e.NetNS == p.inodeA:
				seenA[n] = true
			case e.Hook.Name == "netif_receive_skb" && e.NetNS == p.inodeB:
				seenB[n] = true
			}
		}, func() { s.send(t, pkts) })
		r.Close()
		if len(seenA) == 0 {
			t.Fatalf("noTrack %v: no VLAN frame recorded in A", noTrack)
		}
		if noTrack && len(seenB) != 0 {
			t.Errorf("noTrack: %d frames recorded in B, want 0", len(seenB))
		}
		if !noTrack && len(seenB) != len(seenA) {
			t.Errorf("tracking: %d frames recorded in B, want the %d kept in A", len(seenB), len(seenA))
		}
		t.Logf("noTrack %v: %d frames at A's net_dev_queue, %d at B's netif_receive_skb", noTrack, len(seenA), len(seenB))
	}
}

func TestFilterMatch(t *testing.T) {
	p := newVethPair(t)
	quiet(t, p)
	hooks := []string{"net_dev_queue", "netif_receive_skb", "kfree_skb", "consume_skb"}
	ping := func() { run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "2", p.ipB) }
	// Resolve ARP first so that only the echo request and reply follow.
	ping()
	where := func(events []seen) (inA, inB int) {
		for _, e := range events {
			if e.ipv4() == nil {
				continue
			}
			switch {
			case e.hook == "net_dev_queue" && e.netns == p.inodeA:
				inA++
			case e.hook == "net_dev_queue" && e.netns == p.inodeB:
				inB++
			}
		}
		return inA, inB
	}
	for _, tc := range []struct {
		name       string
		match      Match
		wantA, wnB bool
	}{
		{"netns A", Match{NetNS: p.inodeA}, true, false},
		{"netns B", Match{NetNS: p.inodeB}, false, true},
		{"ifindex B in netns B", Match{NetNS: p.inodeB, Ifindex: p.ifindexB}, false, true},
		{"ifindex none", Match{NetNS: p.inodeB, Ifindex: 999}, false, false},
		{"mark 0", Match{Mark: 0, MarkMask: 0xffffffff}, true, true},
		{"mark 7", Match{Mark: 7, MarkMask: 0xff}, false, false},
	} {
		events, _ := recordWhile(t, p, Config{Hooks: hooks, Match: tc.match}, 0, ping)
		a, b := where(events)
		if (a > 0) != tc.wantA || (b > 0) != tc.wnB {
			// Tracking by address: a followed skb freed where no free hook
			// sees it passes its id to the next skb at its address. Rare,
			// but it happens on a busy host; one retry tells it apart
			// from a filter that does not work.
			t.Logf("%s: %d IPv4 events at A's net_dev_queue, %d at B's; retrying once", tc.name, a, b)
			events, _ = recordWhile(t, p, Config{Hooks: hooks, Match: tc.match}, 0, ping)
			a, b = where(events)
		}
		if (a > 0) != tc.wantA || (b > 0) != tc.wnB {
			t.Errorf("%s: %d IPv4 events at A's net_dev_queue, %d at B's; want A %v, B %v", tc.name, a, b, tc.wantA, tc.wnB)
		}
	}
	// The mark as set by nftables in A's output path, before the device.
	requireTool(t, "nft")
	run(t, "ip", "netns", "exec", p.nsA, "nft", "add table ip pcmark; add chain ip pcmark out { type route hook output priority 0; }; add rule ip pcmark out icmp type echo-request meta mark set 0x1234")
	events, _ := recordWhile(t, p, Config{Hooks: hooks, Match: Match{Mark: 0x1200, MarkMask: 0xff00}}, 0, ping)
	a, b := where(events)
	if a == 0 || b != 0 {
		t.Errorf("mark 0x1200/0xff00: %d events at A's net_dev_queue, %d at B's; want some in A (the marked request), none in B", a, b)
	}

	// The PID of the task that sends: a request is queued to the device in
	// its sender's system call. Another ping runs at the same time.
	other := exec.Command("ip", "netns", "exec", p.nsA, "ping", "-c", "6", "-i", "0.2", "-W", "2", p.ipB)
	// sh execs ping in place, so the PID is known before it sends.
	mine := exec.Command("ip", "netns", "exec", p.nsA, "sh", "-c", "read x; exec ping -c 3 -i 0.2 -W 2 "+p.ipB)
	stdin, err := mine.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := mine.Start(); err != nil {
		t.Fatal(err)
	}
	events, _ = recordWhile(t, p, Config{Hooks: hooks, Match: Match{PID: uint32(mine.Process.Pid)}}, 0, func() {
		if err := other.Start(); err != nil {
			t.Fatal(err)
		}
		stdin.Write([]byte("\n"))
		if err := mine.Wait(); err != nil {
			t.Errorf("ping: %v", err)
		}
		if err := other.Wait(); err != nil {
			t.Errorf("other ping: %v", err)
		}
	})
	requests := 0
	for _, e := range events {
		if e.hook == "net_dev_queue" && e.netns == p.inodeA && e.is(1, p.ipA, p.ipB) && e.transport()[0] == 8 {
			requests++
			if e.comm != "ping" {
				t.Errorf("pid filter: request sent by %q", e.comm)
			}
		}
	}
	if requests != 3 {
		t.Errorf("pid filter: %d echo requests at A's net_dev_queue, want the 3 of the selected ping (another sent 6)", requests)
	}
}

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		failOrSkip(t, "%s not installed (scripts/setup.sh installs it): %v", name, err)
	}
}

// kernelAtLeast reports whether the running kernel's release is at least
// major.minor.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var maj, min int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &maj, &min); err != nil {
		t.Fatalf("parse kernel release %q: %v", u.Release[:], err)
	}
	return maj > major || maj == major && min >= minor
}
