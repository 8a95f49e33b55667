package paths

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"

	"github.com/pathcap/pathcap/pcapng"
)

func scenarioPackets(t *testing.T, opts Options) []*Packet {
	t.Helper()
	got := analyze(t, opts, nil, tempRecording(t, "alpha", scenario()))
	sortPackets(got)
	return got
}

func TestPacketTextAligned(t *testing.T) {
	for _, p := range scenarioPackets(t, Options{}) {
		var b strings.Builder
		if err := WritePacketText(&b, p, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n\n"), "\n")
		if len(lines) != 1+len(p.Hops) {
			t.Fatalf("packet %d: %d lines for %d hops:\n%s", p.ID, len(lines), len(p.Hops), b.String())
		}
		if !strings.HasPrefix(lines[0], "packet ") || !strings.Contains(lines[0], p.Outcome.Kind.String()) {
			t.Errorf("head %q", lines[0])
		}
		// The hop lines' columns line up: "len" is at the same place.
		col := -1
		for i, l := range lines[1:] {
			if !strings.Contains(l, "tp:"+p.Hops[i].Meta.Hook) {
				t.Errorf("hop line %q lacks hook %s", l, p.Hops[i].Meta.Hook)
			}
			c := utf8.RuneCountInString(l[:strings.Index(l, " len ")])
			if col >= 0 && c != col {
				t.Errorf("packet %d: len column at %d and %d:\n%s", p.ID, col, c, b.String())
			}
			col = c
		}
		if strings.Contains(b.String(), "\x1b[") {
			t.Error("colour codes without Color")
		}
	}
	p := scenarioPackets(t, Options{})[4] // the drop
	var b strings.Builder
	WritePacketText(&b, p, TextOptions{Color: true})
	s := b.String()
	if !strings.Contains(s, ansiRed+"dropped: NO_SOCKET at __udp4_lib_rcv+0x4bc"+ansiReset) || !strings.Contains(s, "at __udp4_lib_rcv+0x4bc") {
		t.Errorf("coloured drop:\n%q", s)
	}
	b.Reset()
	WritePacketText(&b, p, TextOptions{Width: 40})
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if utf8.RuneCountInString(l) > 40 {
			t.Errorf("line wider than 40: %q", l)
		}
	}
}

func scenarioSummary(t *testing.T) *Summary {
	s := NewSummary()
	for _, p := range scenarioPackets(t, Options{}) {
		s.Add(p)
	}
	return s
}

func TestSummaryText(t *testing.T) {
	s := scenarioSummary(t)
	nev := len(scenario())
	if s.Packets != 15 || s.Events != uint64(nev) {
		t.Fatalf("summary %d packets %d events", s.Packets, s.Events)
	}
	var b strings.Builder
	if err := WriteSummaryText(&b, s, TextOptions{TopPaths: 3}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		fmt.Sprintf("Summary: 15 packets, %d events, 5.01s", nev),
		"Outcomes:", "  transmitted          5   33.3%", "  delivered            4   26.7%", "  unknown              3   20.0%",
		"  dropped              2   13.3%", "  consumed             1    6.7%",
		"Drop reasons:", "  NETFILTER_DROP         1", "                         1  at nf_hook_slow+0x9a",
		"  NO_SOCKET              1", "                         1  at __udp4_lib_rcv+0x4bc",
		"Most common paths:", "          2  net_dev_queue > net_dev_start_xmit > net_dev_xmit\n          2  netif_receive_skb\n",
		"Per-hop latency:", "p50", "p90", "p99", "max",
		"  netif_receive_skb > consume_skb", "Devices and namespaces:", "  veth1      netns 4026532842 (ns-server)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out[strings.Index(out, "Most common paths:"):strings.Index(out, "Per-hop latency:")], "\n") != 4 {
		t.Errorf("TopPaths 3 not honoured:\n%s", out)
	}
	// The latency table's header lines up with its rows.
	lat := strings.Split(out[strings.Index(out, "Per-hop latency:"):], "\n")
	for _, col := range []string{"count", "p50", "p90", "p99", "max"} {
		end := strings.Index(lat[0], col) + len(col)
		for _, line := range lat[1:] {
			if line == "" || strings.HasPrefix(line, "Devices") {
				break
			}
			row := []rune(line)
			if end > len(row) || row[end-1] == ' ' || (end < len(row) && row[end] != ' ') {
				t.Errorf("column %s ends at %d; row %q", col, end, row)
			}
		}
	}
	b.Reset()
	WriteSummaryText(&b, s, TextOptions{Color: true})
	if !strings.Contains(b.String(), ansiBold+"Outcomes:"+ansiReset) {
		t.Errorf("no colour:\n%q", b.String())
	}
	// Colour codes take no room: the counts stay in their columns.
	plain := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(b.String(), "")
	var nb strings.Builder
	WriteSummaryText(&nb, s, TextOptions{})
	if plain != nb.String() {
		t.Errorf("coloured summary differs from the plain one once the codes are removed:\n%s\n---\n%s", plain, nb.String())
	}
}

// summaryJSON is the documented "stats --json" schema.
type summaryJSON struct {
	Packets  uint64            `json:"packets"`
	Events   uint64            `json:"events"`
	First    int64             `json:"first"`
	Last     int64             `json:"last"`
	Outcomes map[string]uint64 `json:"outcomes"`
	Drops    []struct {
		Reason    string `json:"reason"`
		Count     uint64 `json:"count"`
		Locations []struct {
			Location string `json:"location"`
			Count    uint64 `json:"count"`
		} `json:"locations"`
		// With --stacks N.
		Stacks []struct {
			Count uint64   `json:"count"`
			Stack []string `json:"stack"`
		} `json:"stacks"`
		StackLost *uint64 `json:"stack_lost"`
	} `json:"drops"`
	Paths []struct {
		Path  string `json:"path"`
		Count uint64 `json:"count"`
	} `json:"paths"`
	Latency []struct {
		From  string `json:"from"`
		To    string `json:"to"`
		Count uint64 `json:"count"`
		P50   int64  `json:"p50_ns"`
		P90   int64  `json:"p90_ns"`
		P99   int64  `json:"p99_ns"`
		Max   int64  `json:"max_ns"`
	} `json:"latency"`
	Devices []struct {
		Dev    string `json:"dev"`
		NetNS  uint32 `json:"netns"`
		NSName string `json:"netns_name"`
		Events uint64 `json:"events"`
	} `json:"devices"`
}

func TestSummaryJSON(t *testing.T) {
	s := scenarioSummary(t)
	var got summaryJSON
	dec := json.NewDecoder(bytes.NewReader(AppendSummaryJSON(nil, s, 0)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Packets != s.Packets || got.Events != s.Events || got.First != T0.Add(ms(1)).UnixNano() || got.Last != s.Last {
		t.Errorf("totals %+v", got)
	}
	want := map[string]uint64{"delivered": 4, "transmitted": 5, "dropped": 2, "consumed": 1, "unknown": 3}
	for k, n := range want {
		if got.Outcomes[k] != n {
			t.Errorf("outcome %s: %d, want %d", k, got.Outcomes[k], n)
		}
	}
	if len(got.Drops) != 2 || got.Drops[0].Reason != "NETFILTER_DROP" || got.Drops[1].Reason != "NO_SOCKET" ||
		got.Drops[1].Locations[0].Location != "__udp4_lib_rcv+0x4bc" || got.Drops[1].Count != 1 {
		t.Errorf("drops %+v", got.Drops)
	}
	var paths uint64
	for _, p := range got.Paths {
		paths += p.Count
	}
	if paths != 15 {
		t.Errorf("path counts sum to %d", paths)
	}
	var hops, events uint64
	for _, l := range got.Latency {
		hops += l.Count
		if !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
			t.Errorf("latency %+v", l)
		}
	}
	for _, d := range got.Devices {
		events += d.Events
	}
	if hops != s.Events-s.Packets || events != s.Events {
		t.Errorf("latency counts %d, device events %d", hops, events)
	}
}

func TestViewWriter(t *testing.T) {
	pkts := scenarioPackets(t, Options{KeepData: true})
	var buf bytes.Buffer
	v, err := NewViewWriter(&buf, "pathcap analyze test")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := v.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := pcapng.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for {
		p, err := r.ReadPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want := pkts[i]
		i++
		if !p.Options.HasPacketID || p.Options.PacketID != want.ID || !bytes.Equal(p.Data, want.Data) || p.Timestamp.UnixNano() != want.Start() {
			t.Errorf("frame %d: id %d data %d bytes", i, p.Options.PacketID, len(p.Data))
		}
		c := p.Options.Comments
		if len(c) != 1+len(want.Hops) || !strings.HasPrefix(string(c[0]), "pathcap-path/1 id=") {
			t.Fatalf("frame %d: comments %q", i, c)
		}
		if !strings.Contains(string(c[0]), " outcome="+want.Outcome.Kind.String()) || !strings.Contains(string(c[0]), " path="+want.PathString()) {
			t.Errorf("path comment %q", c[0])
		}
		for j, h := range c[1:] {
			if !strings.HasPrefix(string(h), "pathcap-hop/1 n=") || !strings.Contains(string(h), " hook=tp:"+want.Hops[j].Meta.Hook) {
				t.Errorf("hop comment %q", h)
			}
		}
		if want.ID == 5 && !strings.Contains(string(c[0]), "reason=NO_SOCKET loc=__udp4_lib_rcv+0x4bc") {
			t.Errorf("drop comment %q", c[0])
		}
		if want.ID == 8 && !strings.Contains(string(c[2]), `changed=dev,addr,port flow="198.51.100.7:40008 > 10.0.0.2:8080 TCP"`) {
			t.Errorf("NAT hop comment %q", c[2])
		}
	}
	if i != len(pkts) {
		t.Errorf("%d frames for %d packets", i, len(pkts))
	}
}

func TestSelector(t *testing.T) {
	f := tempRecording(t, "alpha", scenario())
	ids := func(sel *Selector) []uint64 {
		var out []uint64
		ps := analyze(t, Options{}, sel, f)
		sortPackets(ps)
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	start := T0.UnixNano()
	isDNS := func(b []byte) bool { fl := parseFlow(b); return fl.HasPorts && (fl.DstPort == 53 || fl.SrcPort == 53) }
	for _, c := range []struct {
		name string
		sel  *Selector
		want []uint64
	}{
		{"nil", nil, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 14}},
		{"ids", &Selector{IDs: map[uint64]bool{3: true, 9: true, 77: true}}, []uint64{3, 9}},
		{"dropped", &Selector{Outcomes: map[OutcomeKind]bool{Dropped: true}}, []uint64{5, 13}},
		{"unknown or consumed", &Selector{Outcomes: map[OutcomeKind]bool{Unknown: true, Consumed: true}}, []uint64{6, 7, 14, 14}},
		{"reason", &Selector{Reasons: map[string]bool{"NO_SOCKET": true}}, []uint64{5}},
		{"hook name", &Selector{Hook: regexp.MustCompile("kfree")}, []uint64{5, 13}},
		{"hook label", &Selector{Hook: regexp.MustCompile("^tp:skb_copy")}, []uint64{1, 9, 12}},
		{"since", &Selector{Since: start + int64(ms(12))}, []uint64{12, 13, 14, 14}},
		{"until", &Selector{Until: start + int64(ms(3))}, []uint64{1, 2}},
		{"since and until", &Selector{Since: start + int64(ms(5)), Until: start + int64(ms(7))}, []uint64{5, 6}},
		{"filter", &Selector{Filter: isDNS}, []uint64{1}},
		{"all at once", &Selector{Outcomes: map[OutcomeKind]bool{Dropped: true}, Hook: regexp.MustCompile("netif_rx"), Until: start + int64(ms(10))}, []uint64{5}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ids(c.sel); !equalIDs(got, c.want) {
				t.Errorf("ids %v, want %v", got, c.want)
			}
		})
	}
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestExport(t *testing.T) {
	evs := scenario()
	// An event without pathcap metadata right after one with: its row
	// must not inherit the previous event's metadata.
	evs = append(evs, srv(ev{id: 99, at: ms(14) + us(1), comment: []byte("a user's note"), data: udp4Frame("10.0.0.1", "10.0.0.2", 1, 2, nil)}))
	f := tempRecording(t, "alpha", evs)
	export := func(format ExportFormat) []byte {
		in, err := Open([]string{f})
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		var b bytes.Buffer
		if err := Export(in, &b, format); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	var rows []Row
	for i, l := range strings.Split(strings.TrimSuffix(string(export(ExportJSONL)), "\n"), "\n") {
		var r Row
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, l)
		}
		rows = append(rows, r)
	}
	if len(rows) != len(evs) {
		t.Fatalf("%d rows for %d events", len(rows), len(evs))
	}
	var drop, note *Row
	for i := range rows {
		r := &rows[i]
		if r.File != 0 || r.Frame != int64(i+1) || r.TS == 0 {
			t.Errorf("row %d: %+v", i, r)
		}
		if r.Hook == "kfree_skb" && r.ID == 5 {
			drop = r
		}
		if r.ID == 99 {
			note = r
		}
	}
	if drop == nil || drop.Reason != "NO_SOCKET" || drop.Location != "__udp4_lib_rcv+0x4bc" || drop.Kind != "tp" || drop.Dev != "veth1" ||
		drop.NetNS != nsServer || drop.Src != "10.0.0.1" || drop.Dst != "10.0.0.2" || drop.L4Proto != 17 || drop.DstPort != 9 || drop.Proto != 0x0800 || drop.Len != 52 {
		t.Errorf("drop row %+v", drop)
	}
	if note == nil || note.Hook != "" || note.Comm != "" || note.CPU != 0 || note.SKB != 0 || note.Location != "" || note.NetNS != 0 || note.Dev != "veth1" || note.Len != 42 {
		t.Errorf("row without metadata %+v", note)
	}

	pq := filepath.Join(t.TempDir(), "events.parquet")
	os.WriteFile(pq, export(ExportParquet), 0o644)
	back, err := parquet.ReadFile[Row](pq)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(rows) {
		t.Fatalf("parquet: %d rows, want %d", len(back), len(rows))
	}
	for i := range rows {
		if back[i] != rows[i] {
			t.Errorf("row %d: parquet %+v, jsonl %+v", i, back[i], rows[i])
		}
	}

	in, _ := Open([]string{f})
	defer in.Close()
	if err := Export(in, io.Discard, "csv"); err == nil {
		t.Error("csv accepted")
	}
}

// failingWriter fails after n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestExportWriteError(t *testing.T) {
	f := tempRecording(t, "alpha", scenario())
	for _, format := range []ExportFormat{ExportJSONL, ExportParquet} {
		in, _ := Open([]string{f})
		err := Export(in, &failingWriter{n: 100}, format)
		in.Close()
		if err == nil {
			t.Errorf("%s: no error from a failing writer", format)
		}
	}
}
