package paths

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/pcapng"
)

// splitRecording writes events as parts of one recording (the same
// section header in each file, as rotation does), cut before the given
// event indexes.
func splitRecording(t *testing.T, dir, host string, events []ev, cuts ...int) []string {
	t.Helper()
	var names []string
	start := 0
	for i, end := range append(cuts, len(events)) {
		name := filepath.Join(dir, "trace.pcapng."+string(rune('0'+i)))
		writeRecording(t, name, host, events[start:end])
		names = append(names, name)
		start = end
	}
	return names
}

func TestRotatedFilesJoin(t *testing.T) {
	dir := t.TempDir()
	evs := scenario()
	whole := analyze(t, Options{}, nil, writeRecording(t, filepath.Join(dir, "whole.pcapng"), "alpha", evs))
	want := dump(whole)

	// Cut inside packet 1 (after its 4th event) and inside packet 5.
	cut5 := 0
	for i, e := range evs {
		if e.id == 5 && e.hook == "netif_rx" {
			cut5 = i
		}
	}
	for _, cuts := range [][]int{{4}, {4, cut5}, {1, 2, 3}} {
		parts := splitRecording(t, t.TempDir(), "alpha", evs, cuts...)
		// Every file of the set is one recording.
		in, err := Open(parts)
		if err != nil {
			t.Fatal(err)
		}
		files := map[int]bool{}
		last := int64(0)
		for {
			e, err := in.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Recording != 0 {
				t.Errorf("file %d frame %d: recording %d, want 0", e.File, e.Frame, e.Recording)
			}
			files[e.File] = true
			if e.File != 0 && e.Time < last && e.ID != 13 {
				t.Errorf("events not merged by time: %d after %d", e.Time, last)
			}
			last = max(last, e.Time)
		}
		in.Close()
		if len(files) != len(parts) {
			t.Errorf("events from %d files, want %d", len(files), len(parts))
		}
		got := dump(analyze(t, Options{}, nil, parts...))
		if got != want {
			t.Errorf("cuts %v: split recording analyzed differently:\n%s\nwant\n%s", cuts, got, want)
		}
		// The order of the names does not matter.
		rev := append([]string(nil), parts...)
		for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
			rev[i], rev[j] = rev[j], rev[i]
		}
		if got := dump(analyze(t, Options{}, nil, rev...)); got != want {
			t.Errorf("cuts %v, files reversed: analyzed differently", cuts)
		}
	}
	checkScenario(t, analyze(t, Options{}, nil, splitRecording(t, t.TempDir(), "alpha", evs, 4, cut5)...))
}

func TestDifferentRecordingsNotJoined(t *testing.T) {
	dir := t.TempDir()
	u := udp4Frame("10.0.0.1", "10.0.0.2", 1, 2, nil)
	a := writeRecording(t, filepath.Join(dir, "alpha.pcapng"), "alpha", []ev{
		cli(ev{id: 1, at: ms(1), hook: "net_dev_queue", data: u}),
		cli(ev{id: 1, at: ms(1) + us(20), hook: "net_dev_xmit", data: u}),
	})
	b := writeRecording(t, filepath.Join(dir, "beta.pcapng"), "beta", []ev{
		srv(ev{id: 1, at: ms(1) + us(10), hook: "netif_receive_skb", data: u}),
		srv(ev{id: 1, at: ms(1) + us(30), hook: "kfree_skb", reason: "NO_SOCKET", data: u}),
	})
	got := analyze(t, Options{}, nil, a, b)
	sortPackets(got)
	if len(got) != 2 {
		t.Fatalf("%d packets, want 2 (ids collide across recordings)", len(got))
	}
	if got[0].ID != 1 || got[0].PathString() != "net_dev_queue>net_dev_xmit" || got[0].Outcome.Kind != Transmitted {
		t.Errorf("alpha's packet: %s %v", got[0].PathString(), got[0].Outcome.Kind)
	}
	if got[1].ID != 1 || got[1].PathString() != "netif_receive_skb>kfree_skb" || got[1].Outcome.Kind != Dropped {
		t.Errorf("beta's packet: %s %v", got[1].PathString(), got[1].Outcome.Kind)
	}
	if got[0].Hops[0].File != 0 || got[1].Hops[0].File != 1 {
		t.Errorf("files %d %d", got[0].Hops[0].File, got[1].Hops[0].File)
	}
	in, err := Open([]string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	recs := map[int]int{}
	for {
		e, err := in.Next()
		if err != nil {
			break
		}
		recs[e.File] = e.Recording
	}
	if recs[0] == recs[1] {
		t.Errorf("both files have recording key %d", recs[0])
	}

	// The same with both recordings as sections of one file.
	var buf bytes.Buffer
	r := newRecorder(t, &buf, "alpha")
	r.write(&ev{id: 1, at: ms(1), hook: "net_dev_queue", data: u, dev: "veth0", netns: nsClient, ifindex: 2})
	if err := r.w.NewSection(recordingSection("beta")); err != nil {
		t.Fatal(err)
	}
	r.ifaces = map[[2]uint32]uint32{}
	r.write(&ev{id: 1, at: ms(1) + us(5), hook: "netif_rx", data: u, dev: "veth1", netns: nsServer, ifindex: 2})
	r.finish()
	two := filepath.Join(dir, "two-sections.pcapng")
	os.WriteFile(two, buf.Bytes(), 0o644)
	if got := analyze(t, Options{}, nil, two); len(got) != 2 {
		t.Errorf("two sections: %d packets, want 2", len(got))
	}
}

// TestTruncatedInput: a recording cut inside a block yields every event
// before the cut, and reports the file, the offset and ErrTruncated.
func TestTruncatedInput(t *testing.T) {
	f := tempRecording(t, "alpha", scenario())
	data, _ := os.ReadFile(f)
	offs := blockOffsets(t, data)
	cut := offs[len(offs)/2].start + 30 // inside a block
	complete := 0
	for _, o := range offs {
		if o.end <= cut && o.packet {
			complete++
		}
	}
	name := filepath.Join(t.TempDir(), "cut.pcapng")
	os.WriteFile(name, data[:cut], 0o644)
	pkts, err := analyzeErr(Options{}, nil, name)
	if err == nil || !errors.Is(err, pcapng.ErrTruncated) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "offset") {
		t.Fatalf("err %v", err)
	}
	events := 0
	for _, p := range pkts {
		events += len(p.Hops)
	}
	if events != complete {
		t.Errorf("%d events analyzed, want the %d complete ones", events, complete)
	}
}

type blockSpan struct {
	start, end int
	packet     bool
}

// blockOffsets lists the blocks of a pcap-ng file.
func blockOffsets(t testing.TB, data []byte) []blockSpan {
	t.Helper()
	r, err := pcapng.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var out []blockSpan
	for {
		typ, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, blockSpan{start: int(r.Offset()), packet: typ.IsPacket()})
	}
	for i := range out {
		if i+1 < len(out) {
			out[i].end = out[i+1].start
		} else {
			out[i].end = len(data)
		}
	}
	return out
}

func TestProgressAndPeek(t *testing.T) {
	dir := t.TempDir()
	parts := splitRecording(t, dir, "alpha", scenario(), 10)
	in, err := Open(parts)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var size int64
	for _, p := range parts {
		st, _ := os.Stat(p)
		size += st.Size()
	}
	if read, total := in.Progress(); read > size || total != size {
		t.Errorf("before: %d of %d, want at most %d of %d", read, total, size, size)
	}
	// Peek does not consume: Next returns the same event, every time.
	for i := 0; ; i++ {
		p1, err := in.Peek()
		if err == io.EOF {
			if _, err := in.Next(); err != io.EOF {
				t.Errorf("Next after Peek's EOF: %v", err)
			}
			if i != len(scenario()) {
				t.Errorf("%d events, want %d", i, len(scenario()))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p2, _ := in.Peek()
		t1, id1 := p1.Time, p1.ID
		e, err := in.Next()
		if err != nil || e != p2 || e.Time != t1 || e.ID != id1 {
			t.Fatalf("event %d: Peek gave %d/%d, Next %v", i, t1, id1, err)
		}
	}
	if read, total := in.Progress(); read != size || total != size {
		t.Errorf("after: %d of %d, want %d of %d", read, total, size, size)
	}
}

// TestStickyError: after a corrupt block, every call reports the error.
func TestStickyError(t *testing.T) {
	data := recordingBytes(t, "alpha", scenario())
	offs := blockOffsets(t, data)
	mid := offs[len(offs)/2]
	data[mid.start+4] = 0x13 // a length that is not a multiple of 4
	name := filepath.Join(t.TempDir(), "bad.pcapng")
	os.WriteFile(name, data, 0o644)
	in, err := Open([]string{name})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var first error
	n := 0
	for {
		_, err := in.Next()
		if err != nil {
			first = err
			break
		}
		n++
	}
	if first == io.EOF || !strings.Contains(first.Error(), name) || !strings.Contains(first.Error(), fmt.Sprintf("offset %d", mid.start)) {
		t.Fatalf("error %v", first)
	}
	for i := 0; i < 3; i++ {
		if _, err := in.Next(); err != first {
			t.Errorf("call %d after the error: %v", i, err)
		}
		if _, err := in.Peek(); err != first {
			t.Errorf("Peek after the error: %v", err)
		}
	}
	if _, err := analyzeErr(Options{}, nil, name); err == nil {
		t.Error("Process: no error")
	}
}

// TestNotClosed: a recording of record that ends without its closing
// statistics is read in full and listed in NotClosed, once; a truncated
// one is in Truncated only; files of other tools, and recordings without
// any interface, are not checked.
func TestNotClosed(t *testing.T) {
	dir := t.TempDir()
	u := udp4Frame("10.0.0.1", "10.0.0.2", 1, 2, nil)
	write := func(name, app string, finish bool, events int) string {
		var b bytes.Buffer
		r := newRecorder(t, &b, "alpha")
		if app != "" {
			sec := recordingSection("alpha")
			sec.UserApplication = app
			var err error
			b.Reset()
			if r.w, err = pcapng.NewWriterSize(&b, sec, 0); err != nil {
				t.Fatal(err)
			}
		}
		for i := range events {
			r.write(&ev{id: uint64(i + 1), at: ms(i), hook: "netif_receive_skb", data: u, dev: "veth0", netns: nsServer, ifindex: 2})
		}
		if finish {
			r.finish()
		} else if err := r.w.Flush(); err != nil {
			t.Fatal(err)
		}
		name = filepath.Join(dir, name)
		if err := os.WriteFile(name, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return name
	}
	clean := write("clean.pcapng", "", true, 3)
	killed := write("killed.pcapng", "", false, 3)
	empty := write("empty.pcapng", "", false, 0)
	other := write("other.pcapng", "dumpcap (Wireshark) 4.4.2", false, 3)
	data, _ := os.ReadFile(killed)
	cut := filepath.Join(dir, "cut.pcapng")
	os.WriteFile(cut, data[:len(data)-10], 0o644)

	for _, c := range []struct {
		files               []string
		events              int
		notClosed, truncate []string
	}{
		{[]string{clean}, 3, nil, nil},
		{[]string{killed}, 3, []string{killed}, nil},
		{[]string{clean, killed}, 6, []string{killed}, nil},
		{[]string{empty}, 0, nil, nil},
		{[]string{other}, 3, nil, nil},
		{[]string{cut}, 2, nil, []string{cut}},
	} {
		in, err := Open(c.files)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			if _, err := in.Next(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			n++
		}
		in.Close()
		names := func(errs []error) (out []string) {
			for _, e := range errs {
				var ie *InputError
				if !errors.As(e, &ie) {
					t.Fatalf("%v is not an InputError", e)
				}
				out = append(out, ie.File)
			}
			return out
		}
		if n != c.events || fmt.Sprint(names(in.NotClosed)) != fmt.Sprint(c.notClosed) || fmt.Sprint(names(in.Truncated)) != fmt.Sprint(c.truncate) {
			t.Errorf("%q: %d events, not closed %v, truncated %v; want %d, %v, %v", c.files, n, in.NotClosed, in.Truncated, c.events, c.notClosed, c.truncate)
		}
		for _, e := range in.NotClosed {
			if !errors.Is(e, ErrNotClosed) {
				t.Errorf("%v is not ErrNotClosed", e)
			}
		}
	}
}

// TestFileCommentJoins: files with the same pathcap-file recording are one
// recording whatever else their headers say; the same headers with
// different recordings are two.
func TestFileCommentJoins(t *testing.T) {
	sec := func(rec string, part uint64, extra string) *pcapng.Section {
		s := recordingSection("alpha")
		s.Comments = append(s.Comments, "pathcap-file/1 recording="+rec+" part="+fmt.Sprint(part))
		if extra != "" {
			s.Comments = append(s.Comments, extra)
		}
		return s
	}
	a1, a2, b1 := sec("aa", 1, ""), sec("aa", 2, ""), sec("bb", 1, "")
	if recordingKey(a1) != recordingKey(a2) {
		t.Error("two parts of one recording have different keys")
	}
	if recordingKey(a1) == recordingKey(b1) {
		t.Error("two recordings with the same command line have the same key")
	}
	if recordingKey(recordingSection("alpha")) == recordingKey(a1) || recordingKey(recordingSection("alpha")) != recordingKey(recordingSection("alpha")) {
		t.Error("headers without a file comment are keyed by the whole header")
	}
}
