package paths

// A recording with kernel stacks, written by recording.Writer (the writer
// record uses) from synthetic capture events, and its rotated parts.

import (
	"bytes"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/pcapng"
	"github.com/pathcap/pathcap/recording"
)

// Stacks of a UDP packet sent by a process in ns-client to a closed port
// in ns-server across a veth pair, innermost first, as
// "function+0xoffset[module]".
var (
	// The sender's syscall down to the device queue.
	sendChain = []string{
		"ip_finish_output2+0x1e2", "ip_output+0x6b", "ip_send_skb+0x3e", "udp_send_skb+0x167",
		"udp_sendmsg+0x9b1", "__sys_sendto+0x1d0", "__x64_sys_sendto+0x24", "do_syscall_64+0x82",
		"entry_SYSCALL_64_after_hwframe+0x76",
	}
	tracing = []string{"bpf_prog_6deef7357e7b4530_on_tp+0x4f[bpf]", "bpf_trace_run2+0x52"}

	stackQueue = concat(tracing, []string{"__dev_queue_xmit+0x5a7"}, sendChain)
	stackXmit  = concat(tracing, []string{"dev_hard_start_xmit+0x104", "__dev_queue_xmit+0x7f0"}, sendChain)
	stackRx    = concat(tracing, []string{"netif_rx_internal+0x4a", "__netif_rx+0x14", "veth_xmit+0x10[veth]",
		"dev_hard_start_xmit+0x104", "__dev_queue_xmit+0x7f0"}, sendChain)
	// The receive in the softirq run when the sender's bottom halves
	// are enabled again.
	softirq = []string{"process_backlog+0x87", "__napi_poll+0x2b", "net_rx_action+0x2a3", "handle_softirqs+0xd8",
		"do_softirq+0x43", "__local_bh_enable_ip+0x66", "__dev_queue_xmit+0x81a"}
	stackReceive = concat(tracing, []string{"__netif_receive_skb_core.constprop.0+0x1a4", "__netif_receive_skb_one_core+0x3c"},
		softirq, sendChain)
	stackDrop = concat(tracing, []string{"kfree_skb_reason+0x9c", "__udp4_lib_rcv+0x4bc", "ip_protocol_deliver_rcu+0x30",
		"ip_local_deliver_finish+0x76", "ip_local_deliver+0x6a", "ip_rcv+0x5a", "__netif_receive_skb_one_core+0x89"},
		softirq, sendChain)
	// What the analyzer derives for the drop hop from stackReceive and
	// stackDrop.
	derivedDrop = []string{"ip_rcv", "ip_local_deliver", "ip_local_deliver_finish", "ip_protocol_deliver_rcu",
		"__udp4_lib_rcv", "kfree_skb_reason"}
)

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// fakeKernel places every function of the frames at its own address:
// core kernel functions 64 KiB apart from 0xffffffff81000000, module
// functions from 0xffffffffc0000000.
type fakeKernel struct {
	base map[string]uint64 // "function[module]" -> start
}

type fakeFunc struct{ name, module string }

func newFakeKernel(stacks ...[]string) *fakeKernel {
	k := &fakeKernel{base: map[string]uint64{}}
	var core, mod uint64 = 0xffffffff81000000, 0xffffffffc0000000
	for _, s := range stacks {
		for _, f := range s {
			fn, _, m := splitFrame(f)
			key := fn + "[" + m + "]"
			if _, ok := k.base[key]; ok {
				continue
			}
			if m == "" {
				k.base[key], core = core, core+0x10000
			} else {
				k.base[key], mod = mod, mod+0x10000
			}
		}
	}
	return k
}

// splitFrame splits "function+0xoffset[module]".
func splitFrame(f string) (fn string, off uint64, module string) {
	if i := strings.IndexByte(f, '['); i >= 0 {
		f, module = f[:i], f[i+1:len(f)-1]
	}
	fn, hex, _ := strings.Cut(f, "+0x")
	off, _ = strconv.ParseUint(hex, 16, 64)
	return fn, off, module
}

// addrs returns the return addresses of frames.
func (k *fakeKernel) addrs(frames []string) []uint64 {
	var out []uint64
	for _, f := range frames {
		fn, off, m := splitFrame(f)
		out = append(out, k.base[fn+"["+m+"]"]+off)
	}
	return out
}

func (k *fakeKernel) AppendSymbol(dst []byte, addr uint64) ([]byte, bool) {
	fn, off, mod, ok := k.SymbolizeFrame(addr)
	if !ok {
		return dst, false
	}
	dst = append(dst, fn...)
	dst = append(dst, "+0x"...)
	dst = strconv.AppendUint(dst, off, 16)
	if mod != "" {
		dst = append(dst, " ["+mod+"]"...)
	}
	return dst, true
}

func (k *fakeKernel) SymbolizeFrame(addr uint64) (string, uint64, string, bool) {
	for key, b := range k.base {
		if addr >= b && addr < b+0x10000 {
			fn, m, _ := strings.Cut(key, "[")
			return fn, addr - b, strings.TrimSuffix(m, "]"), true
		}
	}
	return "", 0, "", false
}

type stackNames struct{}

func (stackNames) DeviceName(netns, ifindex uint32) (string, bool) {
	if netns == nsClient {
		return "veth0", true
	}
	return "veth1", true
}

func (stackNames) NamespaceName(netns uint32) string { return nsNames[netns] }

var (
	hookQueue   = capture.Hook{Name: "net_dev_queue", Kind: capture.HookTracepoint}
	hookXmit    = capture.Hook{Name: "net_dev_start_xmit", Kind: capture.HookTracepoint}
	hookRx      = capture.Hook{Name: "netif_rx", Kind: capture.HookTracepoint}
	hookReceive = capture.Hook{Name: "netif_receive_skb", Kind: capture.HookTracepoint}
	hookFree    = capture.Hook{Name: "kfree_skb", Kind: capture.HookTracepoint}
)

// stackEvents are three UDP packets to a closed port, each recorded at
// five hooks with stacks: packets 1 and 2 with the same stacks, packet 3
// with the drop's stack lost (EFAULT).
func stackEvents(k *fakeKernel) []capture.Event {
	var evs []capture.Event
	for id := uint64(1); id <= 3; id++ {
		frame := udp4Frame("10.0.0.1", "10.0.0.2", uint16(40000+id), 9, []byte("discard me"))
		at := T0.Add(time.Duration(id) * time.Millisecond)
		base := capture.Event{PacketID: id, SKB: 0xffff888100000000 + id*0x100, Protocol: 0x0800,
			Len: uint32(len(frame)), Data: frame, PID: 4242, TID: 4242}
		copy(base.Comm[:], "nc")
		hop := func(h *capture.Hook, dt time.Duration, ns uint32, stack []string) capture.Event {
			e := base
			e.Hook, e.Time, e.NetNS, e.Ifindex = h, at.Add(dt), ns, 2
			e.Stack = k.addrs(stack)
			return e
		}
		drop := hop(&hookFree, 41*time.Microsecond, nsServer, stackDrop)
		drop.HasDrop, drop.DropReason = true, 2
		drop.DropLocation = k.addrs([]string{"__udp4_lib_rcv+0x4bc"})[0]
		if id == 3 {
			drop.Stack, drop.StackLost, drop.StackErr = nil, true, -14
		}
		evs = append(evs,
			hop(&hookQueue, 0, nsClient, stackQueue),
			hop(&hookXmit, 4*time.Microsecond, nsClient, stackXmit),
			hop(&hookRx, 9*time.Microsecond, nsServer, stackRx),
			hop(&hookReceive, 30*time.Microsecond, nsServer, stackReceive),
			drop,
		)
	}
	return evs
}

// stackRecording writes stackEvents with recording.Writer.
func stackRecording(t testing.TB, name string) string {
	t.Helper()
	k := newFakeKernel(stackQueue, stackXmit, stackRx, stackReceive, stackDrop)
	var b bytes.Buffer
	w, err := recording.NewWriter(&b, recording.Info{
		Hardware: "x86_64", OS: "Linux 6.18.44", Application: "pathcap record 0.1.0",
		Comments: []string{"pathcap recording on host alpha: record --stack -w stacks.pcapng"}, Snaplen: 256,
	}, 0, stackNames{}, k)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range stackEvents(k) {
		if err := w.WriteEvent(&ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(0, T0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// rotate rewrites a recording as parts of it, cut before the given packet
// blocks, as a recorder that rotates its output would: the section header
// in every part, the interfaces each part uses, the events unchanged, and
// the statistics of the part's interfaces at its end.
func rotate(t testing.TB, whole string, names []string, cuts ...int) {
	t.Helper()
	f, err := os.Open(whole)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapng.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out *pcapng.Writer
	var buf bytes.Buffer
	var ifaces map[int]uint32
	var recv map[uint32]uint64
	var last time.Time
	part, n := -1, 0
	finish := func() {
		if out == nil {
			return
		}
		for id := range uint32(len(ifaces)) {
			s := pcapng.InterfaceStatistics{InterfaceID: id, Timestamp: last, IfRecv: recv[id], HasIfRecv: true}
			if err := out.WriteInterfaceStatistics(&s); err != nil {
				t.Fatal(err)
			}
		}
		if err := out.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(names[part], buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for {
		typ, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !typ.IsPacket() {
			continue
		}
		if out == nil || slices.Contains(cuts, n) {
			finish()
			part++
			buf.Reset()
			if out, err = pcapng.NewWriter(&buf, r.Section()); err != nil {
				t.Fatal(err)
			}
			ifaces = map[int]uint32{}
			recv = map[uint32]uint64{}
		}
		p := *r.Packet()
		id, ok := ifaces[int(p.InterfaceID)]
		if !ok {
			if id, err = out.AddInterface(p.Interface); err != nil {
				t.Fatal(err)
			}
			ifaces[int(p.InterfaceID)] = id
		}
		p.InterfaceID = id
		if err := out.WritePacket(&p); err != nil {
			t.Fatal(err)
		}
		recv[id]++
		last = p.Timestamp
		n++
	}
	finish()
}
