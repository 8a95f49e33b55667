package capture_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/internal/vmtest"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/pcapng"
	"github.com/pathcap/pathcap/recording"
)

// TestInVMTraceXDP attaches xdp_drop_flow to B's veth (UDP to port 9999
// dropped, everything else passed), records with Config.TraceXDP while A
// sends 6 datagrams to port 9999 and 4 to port 7012 (read by a socket in
// B), and checks against the program's own counter and what arrives: the
// exits with XDP_DROP are exactly the datagrams to 9999, those to 7012
// have XDP_PASS and are read; every frame is a packet of its own (entry
// and exit share an id no skb hook carries). It writes the recording,
// reads its verdicts back with pcapng and prints it for the host's tshark.
func TestInVMTraceXDP(t *testing.T) {
	if !vmtest.InVM() {
		t.Skip("runs inside a VM (see TestVMFunctionBackends)")
	}
	const dropPort, passPort, dropN, passN = 9999, 7012, 6, 4
	p := testenv.NewVethPair(t)
	prog, counts := loadDropProgram(t, programObject(t, "xdp_drop_flow.o"), "xdp_drop_flow", dropPort)
	var l link.Link
	mode := "native"
	err := testenv.InNamespace(p.NSB, func() error {
		var err error
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: int(p.IfindexB)})
		if err != nil {
			mode = "generic"
			l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: int(p.IfindexB), Flags: link.XDPGenericMode})
		}
		return err
	})
	if err != nil {
		t.Fatalf("attach the XDP program to %s: %v", p.DevB, err)
	}
	defer l.Close()
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	p.Exec(t, p.NSA, "ping", "-c", "1", "-W", "2", p.IPB)

	enableRunStats(t)
	r, err := capture.NewRecorder(capture.Config{Backend: capture.BackendTracepoint, TraceXDP: true, BPFPrograms: []string{fmt.Sprint(id)}})
	if err != nil {
		t.Fatalf("record with TraceXDP: %v", err)
	}
	defer r.Close()
	var hooks []string
	for _, h := range r.Hooks() {
		if h.Prog != nil {
			hooks = append(hooks, h.Kind.String()+":"+h.Name)
		}
	}
	t.Logf("traced XDP program %d (%s mode): %s", id, mode, strings.Join(hooks, ", "))
	if len(hooks) != 2 {
		t.Fatalf("%d hooks on BPF programs, want fentry and fexit of program %d", len(hooks), id)
	}

	var file bytes.Buffer
	w, err := recording.NewWriter(&file, recording.Info{Hardware: "x86_64", OS: "Linux " + os.Getenv(vmtest.EnvKernel), Application: "pathcap test", Snaplen: capture.DefaultSnaplen}, 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	type hit struct {
		prog, exit bool
		id         uint64
		port       uint16
		ret        int64
		skb        uint64
		ifindex    uint32
	}
	var hits []hit
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runErr = r.Run(ctx, func(e *capture.Event) error {
			if e.NetNS != p.InodeA && e.NetNS != p.InodeB {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			hits = append(hits, hit{prog: e.Hook.Prog != nil, exit: e.Hook.Kind == capture.HookFexit, id: e.PacketID,
				port: udpDstPort(e), ret: e.RetVal, skb: e.SKB, ifindex: e.Ifindex})
			return w.WriteEvent(e)
		})
	}()
	read := make(chan int, 1)
	ln := listenUDP(t, p.NSB, fmt.Sprintf("%s:%d", p.IPB, passPort), passN, read)
	defer ln.Close()
	var before [2]uint64
	for k := range before {
		if err := counts.Lookup(uint32(k), &before[k]); err != nil {
			t.Fatal(err)
		}
	}
	sendUDPTo(t, p.NSA, fmt.Sprintf("%s:%d", p.IPB, dropPort), dropN)
	sendUDPTo(t, p.NSA, fmt.Sprintf("%s:%d", p.IPB, passPort), passN)
	var got int
	select {
	case got = <-read:
	case <-time.After(5 * time.Second):
		t.Error("the socket in B did not read the datagrams in 5 s")
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	wg.Wait()
	if runErr != nil {
		t.Fatalf("Run: %v", runErr)
	}
	dropped := counterDelta(t, counts, 0, before[0])
	if err := w.Close(0, time.Now()); err != nil {
		t.Fatal(err)
	}

	skbIDs := map[uint64]bool{}
	type frame struct {
		port           uint16
		entries, exits int
		verdict        int64
	}
	frames := map[uint64]*frame{}
	for _, h := range hits {
		if !h.prog {
			skbIDs[h.id] = true
			continue
		}
		if h.skb != 0 {
			t.Errorf("XDP hit of packet %d has skb %#x: XDP runs before the skb exists", h.id, h.skb)
		}
		if h.ifindex != p.IfindexB {
			t.Errorf("XDP hit of packet %d on ifindex %d, want %d (%s)", h.id, h.ifindex, p.IfindexB, p.DevB)
		}
		f := frames[h.id]
		if f == nil {
			f = &frame{}
			frames[h.id] = f
		}
		if h.port != 0 {
			f.port = h.port
		}
		if h.exit {
			f.exits++
			f.verdict = h.ret
		} else {
			f.entries++
		}
	}
	var drops, passes, exits int
	for id, f := range frames {
		if skbIDs[id] {
			t.Errorf("XDP frame %d shares its id with an skb's hooks: frames get ids of their own", id)
		}
		if f.port != dropPort && f.port != passPort {
			continue
		}
		if f.entries != 1 || f.exits != 1 {
			t.Errorf("frame %d to port %d: %d entries, %d exits, want one of each", id, f.port, f.entries, f.exits)
			continue
		}
		exits++
		switch {
		case f.port == dropPort && f.verdict == kmeta.XDPDrop:
			drops++
		case f.port == passPort && f.verdict == kmeta.XDPPass:
			passes++
		default:
			t.Errorf("frame %d to port %d: %s", id, f.port, kmeta.VerdictName(kmeta.ProgXDP, f.verdict))
		}
	}
	t.Logf("%s: sent %d to :%d and %d to :%d; read %d; the program's counter: dropped %d; recorded exits: %d XDP_DROP, %d XDP_PASS",
		os.Getenv(vmtest.EnvKernel), dropN, dropPort, passN, passPort, got, dropped, drops, passes)
	if dropped != dropN {
		t.Errorf("the program dropped %d, %d were sent to port %d", dropped, dropN, dropPort)
	}
	if drops != int(dropped) {
		t.Errorf("%d exits with XDP_DROP, the program counted %d drops", drops, dropped)
	}
	if passes != passN || got != passN {
		t.Errorf("%d exits with XDP_PASS to port %d and %d read, want %d", passes, passPort, got, passN)
	}

	rd, err := pcapng.NewReader(bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	fileDrops, fileExits := 0, 0
	for {
		pk, err := rd.ReadPacket()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range pk.Options.Verdicts {
			if v[0] != pcapng.VerdictLinuxXDP {
				t.Errorf("verdict of type %d", v[0])
				continue
			}
			fileExits++
			if int64(binary.LittleEndian.Uint64(v[1:])) == kmeta.XDPDrop {
				fileDrops++
			}
		}
	}
	if fileDrops != int(dropped) {
		t.Errorf("the file has %d XDP_DROP verdicts, the program dropped %d", fileDrops, dropped)
	}
	logRunCosts(t, r, "XDP program", func(h *capture.Hook) bool { return h.Prog != nil })
	printRecording("PATHCAP-XDP", capture.VerdictCounts{Exits: fileExits, Dropped: fileDrops, OracleDrops: int(dropped)}, file.Bytes())
}

// counterDelta returns counter k of m less before.
func counterDelta(t *testing.T, m *ebpf.Map, k uint32, before uint64) int64 {
	t.Helper()
	var n uint64
	if err := m.Lookup(k, &n); err != nil {
		t.Fatal(err)
	}
	return int64(n - before)
}
