package paths

import (
	"bufio"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/pcapng"
)

// writeStream writes a recording of n packets, ~6.7 events each, 100 µs
// apart (so that the 2 s window spans 20,000 packets); one packet in ten
// is never freed and stays open until the window passes. It returns the
// number of events.
func writeStream(t testing.TB, name string, packets int) int {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := pcapng.NewWriterSize(bw, recordingSection("stream"), 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	ifc := &pcapng.Interface{LinkType: pcapng.LinkTypeEthernet, SnapLen: 262144, Name: "veth1",
		Description: "netns 4026532842 (ns-server) ifindex 2", TSResolution: pcapng.Nanoseconds}
	if _, err := w.AddInterface(ifc); err != nil {
		t.Fatal(err)
	}
	frame := udp4Frame("10.0.0.1", "10.0.0.2", 1, 2, []byte("payload!"))
	hooks := []string{"net_dev_queue", "net_dev_start_xmit", "net_dev_xmit", "netif_rx", "netif_receive_skb", "skb_copy_datagram_iovec"}
	var (
		comment []byte
		pkt     pcapng.Packet
		events  int
		m       kmeta.Event
	)
	pkt.Options.Comments = make([][]byte, 1)
	for i := 0; i < packets; i++ {
		binary.BigEndian.PutUint16(frame[34:], uint16(i))
		base := T0.Add(time.Duration(i) * 100 * time.Microsecond)
		n := 6 + min(i%3, 1) // 6, 7, 7: 2 million events for 300,000 packets
		for j := 0; j < n; j++ {
			m = kmeta.Event{Kind: "tp", Hook: hooks[j%len(hooks)], Dev: "veth1", NetNS: nsServer, Ifindex: 2,
				SKB: 0xffff8e2b45a30000 + uint64(i%4096)*0x100, Len: uint32(len(frame)), Proto: 0x0800, CPU: uint32(i % 4), Comm: "swapper/0"}
			if j == n-1 && i%10 != 0 {
				if i%2 == 0 {
					m.Hook, m.HasDrop, m.Reason, m.Location = "kfree_skb", true, "NO_SOCKET", "__udp4_lib_rcv+0x4bc"
				} else {
					m.Hook, m.Location = "consume_skb", "skb_consume_udp+0x39"
				}
			}
			comment = kmeta.AppendComment(comment[:0], &m)
			pkt.Timestamp = base.Add(time.Duration(j) * 7 * time.Microsecond)
			pkt.Data = frame
			pkt.OriginalLength = uint32(len(frame))
			pkt.Options.Comments[0] = comment
			pkt.Options.PacketID, pkt.Options.HasPacketID = uint64(i+1), true
			if err := w.WritePacket(&pkt); err != nil {
				t.Fatal(err)
			}
			events++
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return events
}

// peakHeap analyzes name and returns the largest HeapInuse seen while
// doing so, and the numbers of packets and events reported.
func peakHeap(t *testing.T, name string) (peak uint64, packets, events int) {
	t.Helper()
	runtime.GC()
	var peakV atomic.Uint64
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for {
			old := peakV.Load()
			if ms.HeapInuse <= old || peakV.CompareAndSwap(old, ms.HeapInuse) {
				return
			}
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	in, err := Open([]string{name})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	sum := NewSummary()
	err = Process(in, Options{}, nil, func(p *Packet) error {
		packets++
		events += len(p.Hops)
		sum.Add(p)
		if packets%20000 == 0 {
			sample()
		}
		return nil
	})
	close(stop)
	wg.Wait()
	sample()
	if err != nil {
		t.Fatal(err)
	}
	return peakV.Load(), packets, events
}

// TestBoundedMemory: the heap needed to analyze a stream depends on the
// packets in flight within the window, not on the length of the stream.
func TestBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and analyzes 2.5 million events")
	}
	const limit = 64 << 20
	dir := t.TempDir()
	var peaks []uint64
	for _, packets := range []int{75_000, 300_000} {
		name := filepath.Join(dir, "stream.pcapng")
		start := time.Now()
		events := writeStream(t, name, packets)
		written := time.Since(start)
		peak, gotPackets, gotEvents := peakHeap(t, name)
		st, _ := os.Stat(name)
		t.Logf("%d packets, %d events, %d MB: written in %v, analyzed in %v, peak heap in use %.1f MiB",
			packets, events, st.Size()>>20, written.Round(time.Millisecond), (time.Since(start) - written).Round(time.Millisecond), float64(peak)/(1<<20))
		os.Remove(name)
		if gotPackets != packets || gotEvents != events {
			t.Errorf("analyzed %d packets, %d events; want %d, %d", gotPackets, gotEvents, packets, events)
		}
		if peak > limit {
			t.Errorf("%d packets: peak heap %d MiB above %d MiB", packets, peak>>20, limit>>20)
		}
		peaks = append(peaks, peak)
	}
	// Four times the input may not take noticeably more memory.
	if peaks[1] > peaks[0]+peaks[0]/4+(4<<20) {
		t.Errorf("peak heap grew with the input: %.1f MiB for 1x, %.1f MiB for 4x", float64(peaks[0])/(1<<20), float64(peaks[1])/(1<<20))
	}
}
