package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/pathcap/pathcap/paths"
	"github.com/pathcap/pathcap/pcapng"
)

// withNote returns the scenario recording followed by a section holding
// one frame without pathcap metadata (a user's note): right after events
// with metadata, its row must not inherit theirs.
func withNote(t *testing.T) (string, []byte) {
	t.Helper()
	rec, err := os.ReadFile(fixture(t, "scenario.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	buf := bytes.NewBuffer(rec)
	w, err := pcapng.NewWriterSize(buf, &pcapng.Section{UserApplication: "another tool"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := w.AddInterface(&pcapng.Interface{LinkType: pcapng.LinkTypeEthernet, Name: "veth1", TSResolution: pcapng.Nanoseconds})
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 42)
	frame[12], frame[13] = 0x08, 0x00
	note := &pcapng.Packet{InterfaceID: id, Timestamp: time.Unix(1800000000, 0), Data: frame, OriginalLength: 42,
		Options: pcapng.PacketOptions{Comments: [][]byte{[]byte("a user's note")}, PacketID: 99, HasPacketID: true}}
	if err := w.WritePacket(note); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "rec.pcapng")
	if err := os.WriteFile(name, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return name, frame
}

func export(t *testing.T, name string, format ExportFormat) []byte {
	t.Helper()
	in, err := paths.Open([]string{name})
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

func TestExport(t *testing.T) {
	name, _ := withNote(t)
	var rows []Row
	for i, l := range strings.Split(strings.TrimSuffix(string(export(t, name, ExportJSONL)), "\n"), "\n") {
		var r Row
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, l)
		}
		rows = append(rows, r)
	}
	events := 0
	for _, p := range scenarioPackets(t, paths.Options{}) {
		events += len(p.Hops)
	}
	if len(rows) != events+1 {
		t.Fatalf("%d rows for %d events and a note", len(rows), events)
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
		drop.NetNS != 4026532842 || drop.Src != "10.0.0.1" || drop.Dst != "10.0.0.2" || drop.L4Proto != 17 || drop.DstPort != 9 || drop.Proto != 0x0800 || drop.Len != 52 {
		t.Errorf("drop row %+v", drop)
	}
	if note == nil || note.Hook != "" || note.Comm != "" || note.CPU != 0 || note.SKB != 0 || note.Location != "" || note.NetNS != 0 || note.Dev != "veth1" || note.Len != 42 {
		t.Errorf("row without metadata %+v", note)
	}

	pq := filepath.Join(t.TempDir(), "events.parquet")
	os.WriteFile(pq, export(t, name, ExportParquet), 0o644)
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

	in, _ := paths.Open([]string{name})
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
	for _, format := range []ExportFormat{ExportJSONL, ExportParquet} {
		in, _ := paths.Open([]string{fixture(t, "scenario.pcapng")})
		err := Export(in, &failingWriter{n: 100}, format)
		in.Close()
		if err == nil {
			t.Errorf("%s: no error from a failing writer", format)
		}
	}
}

// FuzzRender: whatever the bytes, every output of what Open and Process
// make of them is written without a panic, and the JSON is valid.
func FuzzRender(f *testing.F) {
	for _, name := range []string{"scenario.pcapng", "stacks.pcapng", "other-host.pcapng"} {
		rec, err := os.ReadFile(fixture(f, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rec)
		f.Add(rec[:len(rec)/2])
	}
	f.Add([]byte("not a capture"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		name := filepath.Join(dir, "in.pcapng")
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
		in, err := paths.Open([]string{name})
		if err != nil {
			return
		}
		defer in.Close()
		sum := paths.NewSummary()
		sum.DropStacks = 2
		view, err := NewViewWriter(io.Discard, "fuzz")
		if err != nil {
			t.Fatal(err)
		}
		var line []byte
		var text strings.Builder
		_ = paths.Process(in, paths.Options{KeepData: true, MaxHops: 16, MaxOpen: 8}, nil, func(p *paths.Packet) error {
			sum.Add(p)
			line = AppendJSON(line[:0], p)
			if !json.Valid(line) {
				t.Fatalf("invalid JSON: %s", line)
			}
			text.Reset()
			if err := WritePacketText(&text, p, TextOptions{Color: true, Width: 60, Stacks: true}); err != nil {
				t.Fatal(err)
			}
			_ = view.Write(p)
			return nil
		})
		if err := WriteSummaryText(io.Discard, sum, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		if s := AppendSummaryJSON(nil, sum, 5); !json.Valid(s) {
			t.Fatalf("invalid summary JSON: %s", s)
		}
		in2, err := paths.Open([]string{name})
		if err != nil {
			t.Fatalf("second open: %v", err)
		}
		defer in2.Close()
		var rows bytes.Buffer
		_ = Export(in2, &rows, ExportJSONL)
		for _, l := range bytes.Split(bytes.TrimSuffix(rows.Bytes(), []byte("\n")), []byte("\n")) {
			if len(l) > 0 && !json.Valid(l) {
				t.Fatalf("invalid row: %s", l)
			}
		}
	})
}
