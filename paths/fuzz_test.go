package paths

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recordingBytes returns the events written as one recording.
func recordingBytes(t testing.TB, host string, events []ev) []byte {
	var b bytes.Buffer
	r := newRecorder(t, &b, host)
	for i := range events {
		r.write(&events[i])
	}
	r.flush()
	return b.Bytes()
}

// FuzzAnalyze: whatever the bytes, Open and Process never panic, and every
// JSON line they lead to is valid JSON.
func FuzzAnalyze(f *testing.F) {
	u := udp4Frame("10.0.0.1", "10.0.0.2", 1, 2, nil)
	scen := recordingBytes(f, "alpha", scenario())
	f.Add(scen)
	f.Add(scen[:len(scen)/2])
	f.Add(recordingBytes(f, "beta", []ev{
		srv(ev{id: 1, at: ms(1), hook: "netif_receive_skb", data: u}),
		srv(ev{id: 2, parent: 1, at: ms(1), hook: "netif_receive_skb", data: u[:20]}),
		srv(ev{id: 1, at: ms(2), hook: "kfree_skb", reason: "NO_SOCKET", loc: "__udp4_lib_rcv+0x4bc", data: u}),
		srv(ev{id: 3, at: ms(3), hook: "netif_rx", data: u, comment: []byte(`pathcap/1 hook=tp:netif_rx dev="\xff" netns=1 ifindex=2 skb=0x1 len=0 proto=0x0800 cpu=0 pid=0 tid=0 comm=""`)}),
		srv(ev{noID: true, at: ms(4), hook: "netif_rx", data: nil}),
	}))
	f.Add([]byte("not a capture"))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		name := filepath.Join(dir, "in.pcapng")
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
		in, err := Open([]string{name})
		if err != nil {
			return
		}
		defer in.Close()
		sum := NewSummary()
		view, err := NewViewWriter(io.Discard, "fuzz")
		if err != nil {
			t.Fatal(err)
		}
		var line []byte
		var text strings.Builder
		_ = Process(in, Options{KeepData: true, MaxHops: 16, MaxOpen: 8}, nil, func(p *Packet) error {
			sum.Add(p)
			line = AppendJSON(line[:0], p)
			if !json.Valid(line) {
				t.Fatalf("invalid JSON: %s", line)
			}
			text.Reset()
			if err := WritePacketText(&text, p, TextOptions{Color: true, Width: 60}); err != nil {
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

		in2, err := Open([]string{name})
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
