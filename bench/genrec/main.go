// Command genrec writes a synthetic pathcap recording for benchmarks: the
// same writer as record, fed with events shaped like a ping flood across a
// veth pair (7 hooks per packet, alternating directions, drops and
// deliveries), so that files of any size can be made without a kernel.
//
//	go run ./bench/genrec -events 5000000 -o /tmp/big.pcapng
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/recording"
)

type names struct{}

func (names) DeviceName(netns, ifindex uint32) (string, bool) {
	if netns == 4026532300 {
		return "veth-a", true
	}
	return "veth-b", true
}

func (names) NamespaceName(netns uint32) string {
	if netns == 4026532300 {
		return "pcdemoA"
	}
	return "pcdemoB"
}

type symbols struct{}

func (symbols) AppendSymbol(dst []byte, addr uint64) ([]byte, bool) {
	switch addr {
	case 1:
		return append(dst, "ping_rcv+0xab"...), true
	case 2:
		return append(dst, "icmp_rcv+0x259"...), true
	}
	return append(dst, "raw_recvmsg+0xac"...), true
}

func main() {
	events := flag.Int("events", 1_000_000, "number of events to write")
	out := flag.String("o", "", "output file")
	snap := flag.Int("s", 128, "bytes per event")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "genrec: -o FILE is required")
		os.Exit(2)
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "genrec:", err)
		os.Exit(1)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := recording.NewWriter(bw, recording.Info{Hardware: "x86_64", OS: "Linux synthetic", Application: "pathcap genrec", Comments: []string{"synthetic recording"}, Snaplen: *snap}, 256<<10, names{}, symbols{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "genrec:", err)
		os.Exit(1)
	}
	hooks := []capture.Hook{
		{Name: "net_dev_queue", Kind: capture.HookTracepoint},
		{Name: "net_dev_start_xmit", Kind: capture.HookTracepoint},
		{Name: "netif_rx_entry", Kind: capture.HookTracepoint},
		{Name: "netif_rx", Kind: capture.HookTracepoint},
		{Name: "net_dev_xmit", Kind: capture.HookTracepoint},
		{Name: "netif_receive_skb", Kind: capture.HookTracepoint},
		{Name: "kfree_skb", Kind: capture.HookTracepoint},
		{Name: "consume_skb", Kind: capture.HookTracepoint},
	}
	frame := make([]byte, *snap)
	copy(frame, []byte{0xaa, 0xbb, 0xcc, 0, 0, 2, 0xaa, 0xbb, 0xcc, 0, 0, 1, 8, 0,
		0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0, 10, 231, 0, 1, 10, 231, 0, 2, 8, 0})
	t := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	var ev capture.Event
	copy(ev.Comm[:], "ping")
	n := 0
	for id := uint64(1); n < *events; id++ {
		for h := 0; h < 7 && n < *events; h++ {
			hook := &hooks[h]
			ev = capture.Event{Hook: hook, Comm: ev.Comm, PID: 4242, TID: 4242, CPU: uint32(id % 2),
				SKB: 0xffff888100000000 + id%64*0x100, PacketID: id, Len: 84, Protocol: 0x0800, Data: frame}
			ev.Time = t
			ev.NetNS, ev.Ifindex = 4026532300, 2
			if h >= 2 && h != 4 {
				ev.NetNS = 4026532400
			}
			if h == 6 {
				if id%2 == 0 {
					ev.Hook = &hooks[6]
					ev.HasDrop, ev.DropLocation = true, 1
				} else {
					ev.Hook = &hooks[7]
					ev.DropLocation = 2
				}
			}
			if err := w.WriteEvent(&ev); err != nil {
				fmt.Fprintln(os.Stderr, "genrec:", err)
				os.Exit(1)
			}
			t = t.Add(700 * time.Nanosecond)
			n++
		}
	}
	if err := w.Close(0, t); err != nil {
		fmt.Fprintln(os.Stderr, "genrec:", err)
		os.Exit(1)
	}
	if err := bw.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "genrec:", err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "genrec:", err)
		os.Exit(1)
	}
}
