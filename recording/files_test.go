package recording_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/internal/testrec"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/paths"
	"github.com/pathcap/pathcap/paths/render"
	"github.com/pathcap/pathcap/pcapng"
	"github.com/pathcap/pathcap/recording"
)

// fakeSource delivers events like a capture.Recorder: each after gap, and
// then, unless wait is set, it returns as if its context had ended.
type fakeSource struct {
	events []capture.Event
	gap    time.Duration
	wait   bool // after the events, wait for the context
	lost   uint64
}

func (s *fakeSource) Run(ctx context.Context, fn func(*capture.Event) error) error {
	for i := range s.events {
		if ctx.Err() != nil {
			return nil
		}
		if s.gap > 0 {
			time.Sleep(s.gap)
		}
		ev := s.events[i]
		if err := fn(&ev); err != nil {
			return err
		}
	}
	if s.wait {
		<-ctx.Done()
	}
	return nil
}

func (s *fakeSource) Stats() (capture.Stats, error) {
	return capture.Stats{Events: uint64(len(s.events)), Lost: s.lost}, nil
}

var xmitHook = capture.Hook{Name: "net_dev_xmit", Kind: capture.HookTracepoint}

// packetEvents returns n packets of three events each (queue, transmit on
// one of two devices, then a drop with a kernel stack), interleaved the
// way several CPUs would deliver them.
func packetEvents(n int) []capture.Event {
	frame := make([]byte, 98)
	binary.BigEndian.PutUint16(frame[12:], 0x0800)
	frame[14] = 0x45
	var evs []capture.Event
	at := t0
	for i := range n {
		id := uint64(i + 1)
		ifindex := uint32(2 + i%2)
		for k, hook := range []*capture.Hook{&queueHook, &xmitHook, &freeHook} {
			ev := capture.Event{Hook: hook, Time: at.Add(time.Duration(k) * 3 * time.Microsecond), PacketID: id,
				SKB: 0xffff888100000000 + id<<8, NetNS: 4026532000, Ifindex: ifindex, Protocol: 0x0800, Len: 98, Data: frame}
			copy(ev.Comm[:], "ping")
			if hook == &freeHook {
				ev.HasDrop, ev.DropReason, ev.DropLocation = true, 2, 0xffffffff81000000
				ev.Stack = dropStack
				if i%3 == 0 {
					ev.Stack = rxStack
				}
			}
			evs = append(evs, ev)
		}
		at = at.Add(10 * time.Microsecond)
	}
	return evs
}

var testInfo = recording.Info{Hardware: "x86_64", OS: "Linux test", Application: "pathcap record test",
	Comments: []string{"pathcap recording on host test: record -w out.pcapng"}, Snaplen: 128}

// recordFiles runs a recording of evs into files under a new directory.
func recordFiles(t *testing.T, evs []capture.Event, fo recording.FileOptions, ro recording.RunOptions) (recording.Summary, error) {
	t.Helper()
	if fo.Path == "" {
		fo.Path = filepath.Join(t.TempDir(), "out.pcapng")
	}
	info := testInfo
	info.Recording = recording.NewRecordingID()
	fs, err := recording.CreateFiles(fo, info, 4<<10, fakeNames{}, fakeSymbols{})
	if err != nil {
		t.Fatal(err)
	}
	return recording.RunFiles(context.Background(), &fakeSource{events: evs}, fs, ro)
}

// pathsJSON analyzes files as analyze paths --json does.
func pathsJSON(t *testing.T, files ...string) (string, *paths.Input) {
	t.Helper()
	in, err := paths.Open(files)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var enc render.JSONEncoder
	var out []byte
	if err := paths.Process(in, paths.Options{}, nil, func(p *paths.Packet) error {
		out = enc.Append(out, p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return string(out), in
}

// checkPart checks that a file of a recording is complete on its own and
// returns it: the section header with part number part, an interface
// description for every interface its events use, statistics for each
// counting its events, every kernel stack defined in the file before its
// short forms, mode 0600.
func checkPart(t *testing.T, name string, recID string, part uint64) *testrec.File {
	t.Helper()
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, want 0600", name, st.Mode().Perm())
	}
	f := testrec.Read(t, name)
	var fc kmeta.FileComment
	for _, c := range f.Section.Comments {
		if kmeta.IsFileComment([]byte(c)) {
			if err := kmeta.ParseFileComment([]byte(c), &fc); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	if fc.Recording != recID || fc.Part != part {
		t.Errorf("%s: file comment %+v, want recording %s part %d", name, fc, recID, part)
	}
	if !slices.Contains(f.Section.Comments, testInfo.Comments[0]) {
		t.Errorf("%s: section comments %q lack the recording's", name, f.Section.Comments)
	}
	if len(f.Packets) > 0 && f.Last != pcapng.BlockInterfaceStatistics {
		t.Errorf("%s: last block %v, want the closing statistics", name, f.Last)
	}
	if len(f.Stats) != f.Interfaces {
		t.Errorf("%s: %d statistics blocks for %d interfaces", name, len(f.Stats), f.Interfaces)
	}
	var recv uint64
	for _, s := range f.Stats {
		recv += s.IfRecv
	}
	if recv != uint64(len(f.Packets)) {
		t.Errorf("%s: statistics count %d events, the file holds %d", name, recv, len(f.Packets))
	}
	defined := map[uint64]bool{}
	for _, p := range f.Packets {
		for _, c := range p.Comments[1:] {
			var sc kmeta.StackComment
			if err := kmeta.ParseStackComment([]byte(c), &sc); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if sc.Full {
				defined[sc.ID] = true
			} else if !defined[sc.ID] {
				t.Errorf("%s: stack %d used before its definition in the file", name, sc.ID)
			}
		}
	}
	return f
}

func recordingID(t *testing.T, name string) string {
	t.Helper()
	for _, c := range testrec.Read(t, name).Section.Comments {
		var fc kmeta.FileComment
		if kmeta.ParseFileComment([]byte(c), &fc) == nil {
			return fc.Recording
		}
	}
	t.Fatalf("%s has no file comment", name)
	return ""
}

var partName = regexp.MustCompile(`^out_(\d{5})_\d{8}T\d{6}Z\.pcapng$`)

// TestRotateBySize: a recording split by size gives files each complete
// on their own, numbered in order, that analyze together exactly as the
// same events in one file.
func TestRotateBySize(t *testing.T) {
	evs := packetEvents(120)
	sum, err := recordFiles(t, evs, recording.FileOptions{FileSize: 8 << 10}, recording.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Files) < 4 || !slices.Equal(sum.Files, sum.Kept) {
		t.Fatalf("files %q, kept %q: want 4 or more, all kept", sum.Files, sum.Kept)
	}
	recID := recordingID(t, sum.Files[0])
	var events, size int64
	for i, name := range sum.Files {
		m := partName.FindStringSubmatch(filepath.Base(name))
		if m == nil || m[1] != fmt.Sprintf("%05d", i+1) {
			t.Errorf("file %d is named %s", i+1, filepath.Base(name))
		}
		f := checkPart(t, name, recID, uint64(i+1))
		events += int64(len(f.Packets))
		st, _ := os.Stat(name)
		size += st.Size()
		// Every file but the last reached the size, and passed it by
		// less than an event and the statistics.
		if i < len(sum.Files)-1 && (st.Size() < 8<<10 || st.Size() > 8<<10+2<<10) {
			t.Errorf("%s: %d bytes, want 8 KiB to 10 KiB", name, st.Size())
		}
	}
	if !slices.IsSorted(sum.Files) {
		t.Errorf("file names do not sort in order: %q", sum.Files)
	}
	if events != int64(len(evs)) || uint64(events) != sum.Events || size != sum.Bytes {
		t.Errorf("files hold %d events in %d bytes; summary %d events, %d bytes; %d events recorded", events, size, sum.Events, sum.Bytes, len(evs))
	}

	// The same events in one file analyze the same.
	single, err := recordFiles(t, evs, recording.FileOptions{}, recording.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(single.Files) != 1 || filepath.Base(single.Files[0]) != "out.pcapng" {
		t.Fatalf("without rotation: files %q", single.Files)
	}
	checkPart(t, single.Files[0], recordingID(t, single.Files[0]), 1)
	whole, _ := pathsJSON(t, single.Files[0])
	if n := strings.Count(whole, "\n"); n != 120 {
		t.Fatalf("one file: %d packets, want 120", n)
	}
	// In any order of the arguments.
	rotated, _ := pathsJSON(t, append([]string{sum.Files[2]}, slices.Delete(slices.Clone(sum.Files), 2, 3)...)...)
	if rotated != whole {
		t.Errorf("the rotated files analyze differently from one file")
	}
}

// TestRingKeepsNewest: with MaxFiles, only the newest files stay.
func TestRingKeepsNewest(t *testing.T) {
	sum, err := recordFiles(t, packetEvents(120), recording.FileOptions{FileSize: 4 << 10, MaxFiles: 3}, recording.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Files) < 6 {
		t.Fatalf("%d files written, want 6 or more", len(sum.Files))
	}
	if want := sum.Files[len(sum.Files)-3:]; !slices.Equal(sum.Kept, want) {
		t.Errorf("kept %q, want the newest three %q", sum.Kept, want)
	}
	on, _ := filepath.Glob(filepath.Join(filepath.Dir(sum.Files[0]), "out_*.pcapng"))
	if !slices.Equal(on, sum.Kept) {
		t.Errorf("on disk %q, want %q", on, sum.Kept)
	}
	recID := recordingID(t, sum.Kept[0])
	for i, name := range sum.Kept {
		checkPart(t, name, recID, uint64(len(sum.Files)-3+i+1))
	}
	// The newest files alone still analyze without error: packet ids of
	// the recording, the oldest ones gone.
	out, in := pathsJSON(t, sum.Kept...)
	if len(in.Truncated) != 0 || strings.Count(out, "\n") == 0 || strings.Contains(out, `{"id":1,`) {
		t.Errorf("the ring's files analyze to %d packets (truncated %v), id 1 among them: %v", strings.Count(out, "\n"), in.Truncated, strings.Contains(out, `{"id":1,`))
	}
}

// TestRotateByInterval: a new file every interval, whether events came or
// not.
func TestRotateByInterval(t *testing.T) {
	dir := t.TempDir()
	info := testInfo
	info.Recording = recording.NewRecordingID()
	fs, err := recording.CreateFiles(recording.FileOptions{Path: filepath.Join(dir, "out.pcapng"), Interval: 300 * time.Millisecond}, info, 4<<10, fakeNames{}, fakeSymbols{})
	if err != nil {
		t.Fatal(err)
	}
	// 30 events in the first 600 ms, then nothing until the end at
	// 1.1 s: about four files, the last ones empty.
	src := &fakeSource{events: packetEvents(10), gap: 20 * time.Millisecond, wait: true}
	ctx, cancel := context.WithTimeout(context.Background(), 1100*time.Millisecond)
	defer cancel()
	sum, err := recording.RunFiles(ctx, src, fs, recording.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(sum.Files); n < 3 || n > 5 {
		t.Fatalf("%d files in 1.1 s at one per 300 ms: %q", n, sum.Files)
	}
	events := 0
	for i, name := range sum.Files {
		events += len(checkPart(t, name, info.Recording, uint64(i+1)).Packets)
	}
	if events != 30 {
		t.Errorf("%d events in the files, want 30", events)
	}
}

// TestMaxBytes: the recording stops cleanly once its files hold MaxBytes.
func TestMaxBytes(t *testing.T) {
	const limit = 20 << 10
	evs := packetEvents(200)
	sum, err := recordFiles(t, evs, recording.FileOptions{FileSize: 8 << 10}, recording.RunOptions{MaxBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Stopped != recording.StopSize {
		t.Errorf("stopped: %v, want StopSize", sum.Stopped)
	}
	if sum.Bytes < limit || sum.Bytes > limit+2<<10 || sum.Events >= uint64(len(evs)) {
		t.Errorf("%d events in %d bytes, want the limit %d passed by less than 2 KiB", sum.Events, sum.Bytes, limit)
	}
	var size int64
	var events int
	for i, name := range sum.Files {
		events += len(checkPart(t, name, recordingID(t, name), uint64(i+1)).Packets)
		st, _ := os.Stat(name)
		size += st.Size()
	}
	if size != sum.Bytes || uint64(events) != sum.Events {
		t.Errorf("files: %d events, %d bytes; summary: %d events, %d bytes", events, size, sum.Events, sum.Bytes)
	}
	// One file too, and the limit on events still stops first when lower.
	sum, err = recordFiles(t, evs, recording.FileOptions{}, recording.RunOptions{MaxBytes: limit, MaxEvents: 10})
	if err != nil || sum.Stopped != recording.StopEvents || sum.Events != 10 {
		t.Errorf("with 10 events at most: %+v, %v", sum, err)
	}
}

// TestFileOptionsCheck: options that cannot work are refused before any
// file is created.
func TestFileOptionsCheck(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []recording.FileOptions{
		{Path: ""},
		{Path: "-", FileSize: 10},
		{Path: filepath.Join(dir, "a"), MaxFiles: 3},
		{Path: filepath.Join(dir, "b"), FileSize: -1},
		{Path: filepath.Join(dir, "c"), Interval: -time.Second},
	} {
		if _, err := recording.CreateFiles(o, testInfo, 0, nil, nil); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("files left: %v", left)
	}
}

// TestCreateNarrowsMode: an existing regular file is truncated and made
// private too.
func TestCreateNarrowsMode(t *testing.T) {
	name := filepath.Join(t.TempDir(), "out.pcapng")
	if err := os.WriteFile(name, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(name, 0o644)
	sum, err := recordFiles(t, packetEvents(2), recording.FileOptions{Path: name}, recording.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkPart(t, sum.Files[0], recordingID(t, name), 1)
}

func TestPartName(t *testing.T) {
	at := time.Date(2026, 12, 7, 7, 15, 0, 0, time.FixedZone("CET", 3600))
	for path, want := range map[string]string{
		"out.pcapng":           "out_00001_20261207T061500Z.pcapng",
		"/var/tmp/x.y.pcapng":  "/var/tmp/x.y_00001_20261207T061500Z.pcapng",
		"dir/trace":            "dir/trace_00001_20261207T061500Z",
		"dir/.pcapng":          "dir/.pcapng_00001_20261207T061500Z",
		"rel/dir.d/out.pcapng": "rel/dir.d/out_00001_20261207T061500Z.pcapng",
	} {
		if got := recording.PartName(path, 1, at); got != want {
			t.Errorf("PartName(%q) = %q, want %q", path, got, want)
		}
	}
	if got := recording.PartName("out.pcapng", 123456, at); got != "out_123456_20261207T061500Z.pcapng" {
		t.Errorf("part 123456: %q", got)
	}
}

// TestFullDisk: a recording into a file system that fills up stops with
// ENOSPC; the file ends on a block boundary, every block in it readable,
// without the closing statistics. Written through the page cache and with
// direct I/O (tmpfs takes O_DIRECT since Linux 6.6; before, the direct
// case falls back to the page cache).
func TestFullDisk(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(map[bool]string{false: "buffered", true: "direct"}[direct], func(t *testing.T) {
			dir := testenv.SmallTmpfs(t, "128k")
			sum, err := recordFiles(t, packetEvents(2000), recording.FileOptions{Path: filepath.Join(dir, "out.pcapng"), Direct: direct}, recording.RunOptions{})
			if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), filepath.Join(dir, "out.pcapng")) {
				t.Fatalf("error %v, want ENOSPC naming the file", err)
			}
			f := testrec.Read(t, sum.Files[0]) // fails the test on a cut block
			if len(f.Packets) == 0 || len(f.Stats) != 0 || f.Last == pcapng.BlockInterfaceStatistics {
				t.Errorf("full file: %d events, %d statistics blocks, last block %v", len(f.Packets), len(f.Stats), f.Last)
			}
			st, _ := os.Stat(sum.Files[0])
			if st.Size() < 100<<10 || st.Size() != sum.Bytes {
				t.Errorf("full file: %d bytes, summary %d", st.Size(), sum.Bytes)
			}
			_, in := pathsJSON(t, sum.Files[0])
			if len(in.Truncated) != 0 || len(in.NotClosed) != 1 {
				t.Errorf("analysis of the full file: truncated %v, not closed %v", in.Truncated, in.NotClosed)
			}
		})
	}
}

// TestDiscardKeepsDevices: a recording into a device (-w /dev/null) that
// fails to start removes nothing.
func TestDiscardKeepsDevices(t *testing.T) {
	st0, err := os.Stat(os.DevNull)
	if err != nil || st0.Mode()&os.ModeDevice == 0 {
		t.Skipf("%s is not a device here", os.DevNull)
	}
	fs, err := recording.CreateFiles(recording.FileOptions{Path: os.DevNull}, recording.Info{Snaplen: 64}, 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	fs.Discard()
	st, err := os.Stat(os.DevNull)
	if err != nil || st.Mode()&os.ModeDevice == 0 {
		t.Fatalf("%s after Discard: %v, %v", os.DevNull, st, err)
	}
}
