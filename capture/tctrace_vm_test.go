package capture_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/internal/vmtest"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/pcapng"
	"github.com/pathcap/pathcap/recording"
)

// TestInVMTraceTC loads tc_drop_flow on B's ingress (clsact, cls_bpf in
// direct-action mode: UDP to port 9999 shot, everything else passed),
// records with Config.TraceTC while A sends 6 datagrams to port 9999 and
// 4 to port 7012 (read by a socket in B), and checks against the kernel's
// and the program's own counts: the exits with TC_ACT_SHOT are exactly the
// datagrams to 9999 (the clsact qdisc's drops, the program's counter),
// those to 7012 have TC_ACT_OK at the exit and are delivered, never
// dropped; entry and exit carry the packet's tracking id from the hooks
// before (netif_receive_skb); a shot packet ends at kfree_skb (reason
// TC_INGRESS where the kernel gives reasons). It writes the recording with
// the recording package, reads its verdicts back with pcapng, and prints
// it for the host's tshark (TestVMFunctionBackends).
func TestInVMTraceTC(t *testing.T) {
	if !vmtest.InVM() {
		t.Skip("runs inside a VM (see TestVMFunctionBackends)")
	}
	obj := programObject(t, "tc_drop_flow.o")
	const dropPort, passPort, dropN, passN = 9999, 7012, 6, 4
	p := testenv.NewVethPair(t)
	prog, counts := loadDropProgram(t, obj, "drop_flow", dropPort)
	pin := filepath.Join(t.TempDir(), "bpffs")
	if err := os.Mkdir(pin, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpf", pin, "bpf", 0, ""); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(pin, unix.MNT_DETACH) })
	if err := prog.Pin(filepath.Join(pin, "drop")); err != nil {
		t.Fatal(err)
	}
	p.Exec(t, p.NSB, "tc", "qdisc", "add", "dev", p.DevB, "clsact")
	p.Exec(t, p.NSB, "tc", "filter", "add", "dev", p.DevB, "ingress", "prio", "1", "bpf", "object-pinned", filepath.Join(pin, "drop"), "direct-action")
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	// Neighbour resolution first, so that only the datagrams cross.
	p.Exec(t, p.NSA, "ping", "-c", "1", "-W", "2", p.IPB)

	enableRunStats(t)
	r, err := capture.NewRecorder(capture.Config{Backend: capture.BackendTracepoint, TraceTC: true, BPFPrograms: []string{fmt.Sprint(id)}})
	if err != nil {
		t.Fatalf("record with TraceTC: %v", err)
	}
	defer r.Close()
	var hooks []string
	for _, h := range r.Hooks() {
		if h.Prog != nil {
			hooks = append(hooks, h.Kind.String()+":"+h.Name)
		}
	}
	t.Logf("traced program %d: %s", id, strings.Join(hooks, ", "))
	if len(hooks) != 2 {
		t.Fatalf("%d hooks on BPF programs, want fentry and fexit of program %d", len(hooks), id)
	}

	var file bytes.Buffer
	w, err := recording.NewWriter(&file, recording.Info{Hardware: "x86_64", OS: "Linux " + os.Getenv(vmtest.EnvKernel), Application: "pathcap test", Snaplen: capture.DefaultSnaplen}, 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	type hit struct {
		kind            capture.HookKind
		hook            string
		prog            bool
		id              uint64
		port            uint16
		ret             int64
		hasRet, hasDrop bool
		reason          string
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
			hits = append(hits, hit{kind: e.Hook.Kind, hook: e.Hook.Name, prog: e.Hook.Prog != nil, id: e.PacketID,
				port: udpDstPort(e), ret: e.RetVal, hasRet: e.HasRetVal, hasDrop: e.HasDrop, reason: e.DropReasonName()})
			return w.WriteEvent(e)
		})
	}()
	qdiscBefore := qdiscDrops(t, p)
	read := make(chan int, 1)
	ln := listenUDP(t, p.NSB, fmt.Sprintf("%s:%d", p.IPB, passPort), passN, read)
	defer ln.Close()
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
	drops := qdiscDrops(t, p) - qdiscBefore
	var shotCount, passCount uint64
	if err := counts.Lookup(uint32(0), &shotCount); err != nil {
		t.Fatal(err)
	}
	if err := counts.Lookup(uint32(1), &passCount); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(0, time.Now()); err != nil {
		t.Fatal(err)
	}

	// Per packet: the verdicts of its exits, its hooks, its end.
	type pkt struct {
		port     uint16
		entries  int
		verdicts []int64
		hooks    []string
		reason   string
		freed    bool
	}
	pkts := map[uint64]*pkt{}
	for _, h := range hits {
		pk := pkts[h.id]
		if pk == nil {
			pk = &pkt{}
			pkts[h.id] = pk
		}
		if h.port != 0 {
			pk.port = h.port
		}
		pk.hooks = append(pk.hooks, h.kind.String()+":"+h.hook)
		switch {
		case h.prog && h.kind == capture.HookFentry:
			pk.entries++
		case h.prog && h.kind == capture.HookFexit:
			if !h.hasRet {
				t.Errorf("packet %d: an exit without its return value", h.id)
			}
			pk.verdicts = append(pk.verdicts, h.ret)
		case h.hook == kmeta.HookDrop:
			pk.freed, pk.reason = true, h.reason
		}
	}
	var shot, ok, exits int
	for id, pk := range pkts {
		if pk.port != dropPort && pk.port != passPort {
			continue
		}
		if pk.entries != 1 || len(pk.verdicts) != 1 {
			t.Errorf("packet %d to port %d: %d entries and verdicts %v, want one of each; hooks %v", id, pk.port, pk.entries, pk.verdicts, pk.hooks)
			continue
		}
		exits++
		if pk.hooks[0] != "tracepoint:netif_receive_skb" && !strings.HasPrefix(pk.hooks[0], "tracepoint:net_dev") {
			t.Errorf("packet %d starts at %s: the entry of the tc program did not continue the skb's path (hooks %v)", id, pk.hooks[0], pk.hooks)
		}
		v := pk.verdicts[0]
		switch pk.port {
		case dropPort:
			if v != kmeta.TCActShot {
				t.Errorf("packet %d to the dropped port: verdict %s", id, kmeta.VerdictName(kmeta.ProgTC, v))
			}
			shot++
			if !pk.freed {
				t.Errorf("packet %d was shot but not freed at kfree_skb: hooks %v", id, pk.hooks)
			} else if pk.reason != "" && pk.reason != "TC_INGRESS" {
				t.Errorf("packet %d shot: kfree_skb reason %s, want TC_INGRESS", id, pk.reason)
			}
		case passPort:
			if v != kmeta.TCActOK {
				t.Errorf("packet %d to port %d: verdict %s, want TC_ACT_OK", id, passPort, kmeta.VerdictName(kmeta.ProgTC, v))
			}
			ok++
			if pk.freed && pk.reason != "" {
				t.Errorf("packet %d passed by the program was dropped: %s (hooks %v)", id, pk.reason, pk.hooks)
			}
		}
	}
	t.Logf("%s: sent %d to :%d and %d to :%d; read %d; clsact qdisc drops +%d, the program's counts: shot %d, passed %d; recorded exits: %d TC_ACT_SHOT, %d TC_ACT_OK",
		os.Getenv(vmtest.EnvKernel), dropN, dropPort, passN, passPort, got, drops, shotCount, passCount, shot, ok)
	if drops != dropN || shotCount != dropN {
		t.Errorf("oracles disagree with what was sent: qdisc drops %d, program shot %d, sent %d", drops, shotCount, dropN)
	}
	if int64(shot) != drops {
		t.Errorf("%d exits with TC_ACT_SHOT, the clsact qdisc dropped %d", shot, drops)
	}
	if ok != passN || got != passN {
		t.Errorf("%d exits with TC_ACT_OK to port %d and %d read, want %d", ok, passPort, got, passN)
	}

	// The file: the verdicts as pcapng reads them, and a copy for tshark.
	rd, err := pcapng.NewReader(bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	fileShot, fileExits := 0, 0
	for {
		pk, err := rd.ReadPacket()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range pk.Options.Verdicts {
			if v[0] != pcapng.VerdictLinuxTC {
				t.Errorf("verdict of type %d", v[0])
				continue
			}
			fileExits++
			if int64(binary.LittleEndian.Uint64(v[1:])) == kmeta.TCActShot {
				fileShot++
			}
		}
	}
	if fileShot != int(drops) {
		t.Errorf("the file has %d TC_ACT_SHOT verdicts, the qdisc dropped %d", fileShot, drops)
	}
	logRunCosts(t, r, "tc program", func(h *capture.Hook) bool { return h.Prog != nil })
	printRecording("PATHCAP-TC", capture.VerdictCounts{Exits: fileExits, Dropped: fileShot, OracleDrops: int(drops)}, file.Bytes())
}

// printRecording prints the recording file and its counts between the
// markers of prefix, for the host (checkVerdictFile).
func printRecording(prefix string, c capture.VerdictCounts, file []byte) {
	counts, begin, end := capture.VerdictMarkers(prefix)
	line, _ := json.Marshal(c)
	fmt.Printf("%s %s\n%s\n", counts, line, begin)
	enc := base64.StdEncoding.EncodeToString(file)
	for len(enc) > 0 {
		n := min(76, len(enc))
		fmt.Println(enc[:n])
		enc = enc[n:]
	}
	fmt.Println(end)
}

// programObject returns the path of the object name that the host
// compiled for the VM, failing t if the host did not.
func programObject(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv(capture.EnvVMProgramDir)
	if dir == "" {
		t.Fatalf("%s is not set: the host did not compile the test programs", capture.EnvVMProgramDir)
	}
	return filepath.Join(dir, name)
}

// loadDropProgram loads the program prog of the object obj with drop_port
// set, and returns it with its counters.
func loadDropProgram(t *testing.T, obj, prog string, port uint16) (*ebpf.Program, *ebpf.Map) {
	t.Helper()
	spec, err := ebpf.LoadCollectionSpec(obj)
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Variables["drop_port"].Set(port); err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load %s: %v", obj, err)
	}
	t.Cleanup(func() { coll.Close() })
	return coll.Programs[prog], coll.Maps["counts"]
}

// qdiscDrops returns the drops of the clsact qdisc on B's device: the
// kernel counts there every packet an ingress filter shot.
func qdiscDrops(t *testing.T, p *testenv.VethPair) int64 {
	t.Helper()
	out := p.Exec(t, p.NSB, "tc", "-s", "-j", "qdisc", "show", "dev", p.DevB)
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
	t.Fatalf("no clsact qdisc with statistics on %s:\n%s", p.DevB, out)
	return 0
}

// udpDstPort returns the UDP destination port of e's IPv4 bytes, or 0.
func udpDstPort(e *capture.Event) uint16 {
	b := e.Data
	if e.Header == capture.HeaderMAC {
		if len(b) < 14 || b[12] != 8 || b[13] != 0 {
			return 0
		}
		b = b[14:]
	}
	if len(b) < 24 || b[0] != 0x45 || b[9] != 17 {
		return 0
	}
	return binary.BigEndian.Uint16(b[22:])
}

// inNetns runs f on a locked thread in the namespace named ns.
func inNetns(ns string, f func() error) error {
	return testenv.InNamespace(ns, f)
}

// sendUDPTo sends n datagrams to addr from namespace ns.
func sendUDPTo(t *testing.T, ns, addr string, n int) {
	t.Helper()
	err := inNetns(ns, func() error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		for range n {
			if _, err := c.Write([]byte("pathcap tc test")); err != nil {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send UDP to %s: %v", addr, err)
	}
}

// listenUDP opens a UDP socket on addr in namespace ns that reads until it
// has n datagrams and then sends the count to read.
func listenUDP(t *testing.T, ns, addr string, n int, read chan<- int) net.PacketConn {
	t.Helper()
	var c net.PacketConn
	err := inNetns(ns, func() error {
		var err error
		c, err = net.ListenPacket("udp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	go func() {
		buf := make([]byte, 2048)
		got := 0
		for got < n {
			if _, _, err := c.ReadFrom(buf); err != nil {
				break
			}
			got++
		}
		read <- got
	}()
	return c
}
