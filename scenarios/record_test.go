package scenarios

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/kallsyms"
	"github.com/pathcap/pathcap/internal/netdev"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/paths"
	"github.com/pathcap/pathcap/paths/render"
	"github.com/pathcap/pathcap/pcapng"
	"github.com/pathcap/pathcap/recording"
)

// session is one recording in progress, the way record makes one:
// capture.Recorder into recording.Writer, into a file.
type session struct {
	rec    *capture.Recorder
	file   string
	cancel context.CancelFunc
	done   chan error
	sum    recording.Summary
}

// startRecording attaches the recorder (every tracepoint, and the
// backend's functions) and starts writing; it returns once events flow.
func startRecording(t testing.TB, backend string, changed bool) *session {
	t.Helper()
	rec, err := capture.NewRecorder(capture.Config{Backend: backend, Snaplen: 128, BytesChanged: changed})
	if err != nil {
		t.Fatalf("recorder (backend %s): %v", backend, err)
	}
	t.Cleanup(func() { rec.Close() })
	if backend != capture.BackendAuto && rec.Backend() != backend {
		t.Fatalf("asked for backend %s, got %s", backend, rec.Backend())
	}
	table, err := kallsyms.Load()
	if err != nil {
		t.Fatalf("kallsyms: %v", err)
	}
	names := netdev.NewResolver()
	t.Cleanup(func() { names.Close() })
	s := &session{rec: rec, file: filepath.Join(t.TempDir(), "scenarios.pcapng"), done: make(chan error, 1)}
	f, err := os.Create(s.file)
	if err != nil {
		t.Fatal(err)
	}
	w, err := recording.NewWriter(f, recording.Info{
		Hardware:     "x86_64",
		OS:           "Linux",
		Application:  "pathcap scenarios (backend " + rec.Backend() + ")",
		Snaplen:      128,
		Recording:    recording.NewRecordingID(),
		BytesChanged: changed,
	}, 64<<10, names, symbols{table})
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		sum, err := recording.Run(ctx, rec, w, nil, recording.RunOptions{})
		s.sum = sum
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		s.done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	t.Logf("recording with backend %s (%s)", rec.Backend(), rec.BackendNote())
	return s
}

// stop ends the recording and fails t if events were lost: a lost event
// could turn any outcome into another.
func (s *session) stop(t testing.TB) {
	t.Helper()
	time.Sleep(time.Second) // late frees (deferred skb frees, timers)
	s.cancel()
	if err := <-s.done; err != nil {
		t.Fatalf("recording: %v", err)
	}
	t.Logf("recorded %d events, %d lost, %d hooks", s.sum.Events, s.sum.Lost, len(s.rec.Hooks()))
	if s.sum.Lost != 0 {
		t.Fatalf("the recording lost %d events: outcomes cannot be trusted", s.sum.Lost)
	}
}

// symbols adapts a kallsyms table to recording.Symbolizer.
type symbols struct{ t *kallsyms.Table }

func (s symbols) AppendSymbol(dst []byte, addr uint64) ([]byte, bool) {
	sym, ok := s.t.Resolve(addr)
	if !ok {
		return dst, false
	}
	return sym.AppendTo(dst), true
}

// ipInfo is what the scenarios select packets by, parsed from the first
// event of a packet whose bytes hold a whole IPv4 header.
type ipInfo struct {
	Valid    bool
	Src, Dst netip.Addr
	Proto    uint8
	TTL      uint8
	DF       bool
	TotLen   int
	SrcPort  uint16
	DstPort  uint16
	ICMPType uint8
	TCPFlags uint8
	Payload  int // transport payload bytes (UDP, TCP), from the IP length
}

// tcpSYN is the SYN flag of the TCP header.
const tcpSYN = 0x02

// parseIPv4 reads an Ethernet frame (real or synthesized by the recorder).
func parseIPv4(b []byte) ipInfo {
	var i ipInfo
	if len(b) < 14+20 || binary.BigEndian.Uint16(b[12:]) != 0x0800 {
		return i
	}
	b = b[14:]
	ihl := int(b[0]&0xf) * 4
	if b[0]>>4 != 4 || ihl < 20 || len(b) < ihl {
		return i
	}
	i.TotLen = int(binary.BigEndian.Uint16(b[2:]))
	if i.TotLen < ihl {
		return i
	}
	i.Valid = true
	i.DF = b[6]&0x40 != 0
	i.TTL = b[8]
	i.Proto = b[9]
	i.Src = netip.AddrFrom4([4]byte(b[12:16]))
	i.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	l4 := b[ihl:]
	switch i.Proto {
	case 1:
		if len(l4) >= 8 {
			i.ICMPType = l4[0]
		}
	case 17:
		if len(l4) >= 4 {
			i.SrcPort, i.DstPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
			i.Payload = i.TotLen - ihl - 8
		}
	case 6:
		if len(l4) >= 14 {
			i.SrcPort, i.DstPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
			i.TCPFlags = l4[13]
			i.Payload = i.TotLen - ihl - int(l4[12]>>4)*4
		}
	}
	return i
}

// pkt is one analyzed packet, copied out of the analyzer.
type pkt struct {
	ID, Parent uint64
	// Attached: a clone of a packet of the recording, part of that
	// packet's outcome (paths.Packet.Attached), not a packet on the wire
	// of its own.
	Attached bool
	Children []uint64
	Outcome  paths.Outcome
	Info     ipInfo
	NetNS    []uint32 // namespaces of its hops, in order of first appearance
	Hooks    []string
	HopNetNS []uint32 // each hop's namespace
	// Merged reports that two consecutive hops carry different flows
	// (addresses, ports or protocols) though no scenario translates or
	// encapsulates: two skbs under one tracking id.
	Merged bool
	Text   string // analyze's text report of the packet
	// Clones are the packets whose ids are in Children (diagnostics).
	Clones []*pkt
}

// inNetns reports whether one of the packet's hops was in namespace ns.
func (p *pkt) inNetns(ns *netns) bool { return slices.Contains(p.NetNS, ns.Inode) }

// analyze reads the recording back and rebuilds every packet's path with
// paths.Analyzer, as analyze does.
func analyze(t testing.TB, file string) []*pkt {
	t.Helper()
	in, err := paths.Open([]string{file})
	if err != nil {
		t.Fatalf("open the recording: %v", err)
	}
	defer in.Close()
	// The first parsable IPv4 header of each open tracking id; an id's
	// entry is taken when its packet completes.
	infos := map[uint64]ipInfo{}
	var out []*pkt
	var text bytes.Buffer
	tw := render.NewTextWriter(&text, render.TextOptions{})
	a := paths.NewAnalyzer(paths.Options{}, func(p *paths.Packet) error {
		text.Reset()
		if err := tw.WritePacket(p); err != nil {
			return err
		}
		q := &pkt{
			ID: p.ID, Parent: p.Parent, Attached: p.Attached, Children: slices.Clone(p.Children),
			Outcome: p.Outcome, Info: infos[p.ID], Text: text.String(),
		}
		delete(infos, p.ID)
		for i := range p.Hops {
			h := &p.Hops[i]
			if !slices.Contains(q.NetNS, h.Meta.NetNS) {
				q.NetNS = append(q.NetNS, h.Meta.NetNS)
			}
			q.Hooks = append(q.Hooks, h.HookName())
			q.HopNetNS = append(q.HopNetNS, h.Meta.NetNS)
			if h.Changed&(paths.ChangedAddr|paths.ChangedPort|paths.ChangedProto) != 0 {
				q.Merged = true
			}
		}
		out = append(out, q)
		return nil
	})
	for {
		ev, err := in.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read the recording: %v", err)
		}
		if ev.HasID {
			if _, ok := infos[ev.ID]; !ok {
				if i := parseIPv4(ev.Data); i.Valid {
					infos[ev.ID] = i
				}
			}
		}
		if err := a.Add(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	byID := map[uint64]*pkt{}
	for _, p := range out {
		byID[p.ID] = p
	}
	for _, p := range out {
		for _, c := range p.Children {
			if q := byID[c]; q != nil {
				p.Clones = append(p.Clones, q)
			}
		}
		// A packet whose own skb never carried its headers (TCP keeps
		// the original for retransmission and transmits clones) is known
		// by its clones' headers.
		for _, c := range p.Clones {
			if !p.Info.Valid && c.Info.Valid {
				p.Info = c.Info
			}
		}
	}
	return out
}

// outcomeKey names an outcome for counting: "delivered", "dropped
// NO_SOCKET", ...
func outcomeKey(o *paths.Outcome) string {
	if o.Kind == paths.Dropped {
		return "dropped " + o.Reason
	}
	if undecidable(o) {
		return undecidedKey
	}
	return o.Kind.String()
}

// undecidedKey is the outcome of packets whose delivery tracepoints cannot
// show: received, never dropped, then freed where no tracepoint fires.
const undecidedKey = "unknown (not dropped, not visible to tracepoints)"

// undecidable reports, on the tracepoint backend, an outcome that the
// kernel's tracepoints cannot decide: the packet was received and not
// dropped (the kfree_skb tracepoint is always recorded), and a socket's
// receive path copied and freed it where no tracepoint fires (6.18:
// copy_linear_skb and skb_attempt_defer_free for UDP, __kfree_skb for TCP).
// docs/OUTCOMES.md lists where the suite accepts it; function backends
// must decide every one.
func undecidable(o *paths.Outcome) bool {
	return suiteBackend == capture.BackendTracepoint && o.Kind == paths.Unknown &&
		(o.Why == paths.NotDroppedAfterReceive || o.Why == paths.FreedUnseen)
}

// suiteBackend is the backend of the suite running (under suiteMu).
var suiteBackend string

// tally counts the packets by outcomeKey.
func tally(ps []*pkt) map[string]int64 {
	m := map[string]int64{}
	for _, p := range ps {
		m[outcomeKey(&p.Outcome)]++
	}
	return m
}

// expectOutcome checks that exactly want of ps ended with outcome key and
// that no packet of ps ended otherwise; it reports each mismatching
// packet with analyze's path text.
func expectOutcome(t testing.TB, what string, ps []*pkt, key string, want int64) {
	t.Helper()
	expectOutcomes(t, what, ps, map[string]int64{key: want})
}

// expectOutcomes checks that analyze's outcome counts of ps are exactly
// want; on a mismatch it lists the packets and shows the path text of the
// first ones whose outcome is not wanted.
func expectOutcomes(t testing.TB, what string, ps []*pkt, want map[string]int64) {
	t.Helper()
	got := tally(ps)
	if n := got[undecidedKey]; n > 0 && want["delivered"] > 0 {
		// On tracepoints, a delivery the kernel does not show counts
		// against the delivered oracle (never against a drop), and says
		// so.
		t.Logf("%s: %d of the delivered packets are not visible to tracepoints after they were received (not dropped)", what, n)
		got["delivered"] += n
		delete(got, undecidedKey)
	}
	if maps.Equal(got, want) {
		t.Logf("%s: analyze %v = oracle", what, got)
		return
	}
	t.Errorf("%s: the oracle says %v, analyze found %d packets: %v", what, want, len(ps), got)
	var ghosts []*pkt
	for _, p := range ps {
		if p.ghost() {
			ghosts = append(ghosts, p)
		}
	}
	if len(ghosts) > 0 {
		t.Errorf("%s: %d of these packets start at a memory-free hook (%s): events of an skb after its free tracepoint, under a new id", what, len(ghosts), ghosts[0].Hooks[0])
	}
	t.Logf("the packets:\n%s", describe(ps))
	shown := map[string]int{}
	for _, p := range ps {
		k := outcomeKey(&p.Outcome)
		if _, ok := want[k]; !ok && shown[k] < 2 {
			t.Errorf("mismatching packet (%s):\n%s", k, p.Text)
			for _, c := range p.Clones {
				t.Logf("its clone %d (%s):\n%s", c.ID, outcomeKey(&c.Outcome), c.Text)
			}
			shown[k]++
		}
	}
}

// ghost reports whether the packet's path starts at a hook that frees an
// skb's memory: such a path can only be the tail of another packet.
func (p *pkt) ghost() bool {
	if len(p.Hooks) == 0 {
		return false
	}
	switch p.Hooks[0] {
	case "skb_release_head_state", "skb_release_data", "skb_release_all", "skb_free_head", "kfree_skbmem":
		return true
	}
	return false
}

// originals keeps the packets that are not clones attached to another
// one (their fates are part of that one's outcome), and match sel.
func originals(ps []*pkt, sel func(*pkt) bool) []*pkt {
	var out []*pkt
	for _, p := range ps {
		if !p.Attached && p.Info.Valid && sel(p) {
			out = append(out, p)
		}
	}
	return out
}

// transmittedIn reports whether the packet left a device in namespace ns
// (a transmit hook there).
func (p *pkt) transmittedIn(ns *netns) bool {
	for i, h := range p.Hooks {
		if p.HopNetNS[i] == ns.Inode && kmeta.ClassOf(h) == kmeta.ClassTransmit {
			return true
		}
	}
	return false
}

// describe lists packets briefly for logs.
func describe(ps []*pkt) string {
	var b strings.Builder
	for i, p := range ps {
		if i == 40 {
			fmt.Fprintf(&b, "  ... %d more\n", len(ps)-i)
			break
		}
		hooks := p.Hooks
		if len(hooks) > 8 {
			hooks = append(slices.Clone(hooks[:3]), append([]string{"..."}, hooks[len(hooks)-4:]...)...)
		}
		fmt.Fprintf(&b, "  id %d parent %d children %v: %s (%d hops: %s)\n", p.ID, p.Parent, p.Children,
			outcomeKey(&p.Outcome), len(p.Hooks), strings.Join(hooks, ">"))
	}
	return b.String()
}

// suiteMu serialises suites within a process: each attaches every hook.
var suiteMu sync.Mutex

// volume is what a recording cost, for the comparison of --bytes all and
// changed (docs/BENCHMARKS.md, bytes per followed packet).
type volume struct {
	fileBytes int64 // the file's size
	events    int   // packet blocks
	same      int   // of which bytes=same (captured length 0)
	captured  int64 // captured bytes, all blocks together
	followed  int   // distinct tracking ids
}

// measureVolume reads a recording's packet blocks.
func measureVolume(t testing.TB, file string) volume {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	v := volume{fileBytes: st.Size()}
	r, err := pcapng.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[uint64]bool{}
	parser := kmeta.NewParser()
	var m kmeta.Event
	for {
		typ, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", file, err)
		}
		if !typ.IsPacket() {
			continue
		}
		p := r.Packet()
		v.events++
		v.captured += int64(len(p.Data))
		if p.Options.HasPacketID {
			ids[p.Options.PacketID] = true
		}
		if len(p.Options.Comments) > 0 && parser.Parse(p.Options.Comments[0], &m) == nil && m.BytesSame {
			if len(p.Data) != 0 {
				t.Errorf("a bytes=same block with %d captured bytes", len(p.Data))
			}
			v.same++
		}
	}
	v.followed = len(ids)
	return v
}

// logVolume logs what the recording cost per followed packet: file bytes,
// captured bytes, and ring buffer bytes reserved (a record of 128 bytes,
// and the snap length of 128 unless the bytes were the same; 8 bytes of
// ring header each).
func logVolume(t testing.TB, file string) volume {
	t.Helper()
	v := measureVolume(t, file)
	if v.followed == 0 {
		t.Fatalf("no packet followed in %s", file)
	}
	ring := int64(v.events)*(128+8) + int64(v.events-v.same)*128
	n := float64(v.followed)
	t.Logf("volume: %d events (%d without bytes, bytes=same), %d packets followed; per followed packet: %.0f file bytes, %.0f captured bytes, %.0f ring bytes reserved, %.1f events",
		v.events, v.same, v.followed, float64(v.fileBytes)/n, float64(v.captured)/n, float64(ring)/n, float64(v.events)/n)
	return v
}
