package main_test

// End-to-end tests of record's files: rotation (-C, -G, -W), the size
// limit (--max-size), file modes, and what is left after kill -9, a full
// disk and a closed output pipe, checked with tshark and analyze.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/internal/testrec"
	"github.com/pathcap/pathcap/pcapng"
)

// TestMain removes the binaries built once for the tests of this file.
func TestMain(m *testing.M) {
	code := m.Run()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	os.Exit(code)
}

// builds holds the commands built for this package's tests, each built
// once (a build takes seconds).
var builds struct {
	sync.Mutex
	dir  string
	bins map[string]string
}

// build returns the path of ./cmd/NAME, built once for all tests.
func build(t *testing.T, name string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	if bin, ok := builds.bins[name]; ok {
		return bin
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "pathcap-record-test-")
		if err != nil {
			t.Fatal(err)
		}
		builds.dir, builds.bins = dir, map[string]string{}
	}
	bin := filepath.Join(builds.dir, name)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/"+name)
	cmd.Dir = testenv.ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	builds.bins[name] = bin
	return bin
}

// fileHooks are the tracepoints these tests attach: enough for whole
// paths across a veth pair, few enough to load fast.
const fileHooks = "net_dev_queue,net_dev_start_xmit,net_dev_xmit,netif_rx,netif_receive_skb,kfree_skb,consume_skb"

// syncBuffer is a bytes.Buffer that a running process may write while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// recordProc is a running record process.
type recordProc struct {
	cmd    *exec.Cmd
	stderr syncBuffer
	ready  string
	done   chan struct{}
	err    error // set when done is closed
}

// launch starts record with args and --ready-file, standard output to
// stdout (nil: discarded), and waits until every hook is attached.
func launch(t *testing.T, bin string, stdout io.Writer, args ...string) *recordProc {
	t.Helper()
	p := &recordProc{ready: filepath.Join(t.TempDir(), "ready"), done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"--ready-file", p.ready, "--backend", "tracepoint", "--hooks", fileHooks}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(p.ready); err == nil {
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("record %q exited before it was ready: %v\n%s", args, p.err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("record did not get ready: %s", p.stderr.String())
		}
	}
}

// wait waits for the process to end by itself and returns its exit status
// (-1 when a signal ended it).
func (p *recordProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("record still runs after %v:\n%s", timeout, p.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// interrupt stops the process with SIGINT and checks that it exits 0.
func (p *recordProc) interrupt(t *testing.T) {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // let the last events reach the ring
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("record exited with %d after SIGINT:\n%s", code, p.stderr.String())
	}
}

var summaryLine = regexp.MustCompile(`record: (\d+) events written, (\d+) lost, (\d+) bytes(?: in (\d+) files)?`)

// summary returns the counts of record's last line.
func summary(t *testing.T, stderr string) (events, bytes int64, files int) {
	t.Helper()
	m := summaryLine.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no summary on stderr:\n%s", stderr)
	}
	events, _ = strconv.ParseInt(m[1], 10, 64)
	bytes, _ = strconv.ParseInt(m[3], 10, 64)
	files, _ = strconv.Atoi(m[4])
	return events, bytes, files
}

// tsharkFrames returns the number of frames tshark reads in a file,
// failing on any warning.
func tsharkFrames(t *testing.T, name string) int {
	t.Helper()
	return strings.Count(tshark(t, "-r", name, "-T", "fields", "-e", "frame.number"), "\n")
}

// capinfosFrames returns the number of frames capinfos reads in each file
// (one run for all), failing on any warning.
func capinfosFrames(t *testing.T, names ...string) map[string]int {
	t.Helper()
	bin := testenv.RequireTool(t, "capinfos")
	cmd := exec.Command(bin, append([]string{"-c", "-T", "-r"}, names...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("capinfos: %v\n%s", err, stderr.String())
	}
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, n, ok := strings.Cut(line, "\t")
		c, err := strconv.Atoi(n)
		if !ok || err != nil {
			t.Fatalf("capinfos: %q", line)
		}
		counts[name] = c
	}
	return counts
}

// checkFiles checks files that record closed: mode 0600, capinfos reads
// each without a warning (and tshark too, those in dissect), each ends
// with interface statistics that count its events. It returns the number
// of events of each.
func checkFiles(t *testing.T, names []string, dissect ...string) []int {
	t.Helper()
	counts := capinfosFrames(t, names...)
	var events []int
	for _, name := range names {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", name, st.Mode().Perm())
		}
		f := testrec.Read(t, name)
		n := len(f.Packets)
		if counts[name] != n {
			t.Errorf("%s: capinfos reads %d frames, this reader %d", name, counts[name], n)
		}
		if slices.Contains(dissect, name) {
			if tn := tsharkFrames(t, name); tn != n {
				t.Errorf("%s: tshark reads %d frames, this reader %d", name, tn, n)
			}
		}
		var recv uint64
		for _, s := range f.Stats {
			recv += s.IfRecv
		}
		if f.Interfaces > 0 && (f.Last != pcapng.BlockInterfaceStatistics || len(f.Stats) != f.Interfaces || recv != uint64(n)) {
			t.Errorf("%s: last block %v, %d statistics blocks for %d interfaces counting %d events of %d", name, f.Last, len(f.Stats), f.Interfaces, recv, n)
		}
		events = append(events, n)
	}
	return events
}

// analyzeRun runs analyze and returns its output, stderr and exit status.
func analyzeRun(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// packetPath is what these tests compare of analyze paths --json.
type packetPath struct {
	ID   uint64 `json:"id"`
	Hops []struct {
		Hook string `json:"hook"`
		TS   int64  `json:"ts"`
	} `json:"hops"`
}

func decodePaths(t *testing.T, out string) []packetPath {
	t.Helper()
	var ps []packetPath
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var p packetPath
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		ps = append(ps, p)
	}
	return ps
}

// pathKeys returns each packet as "id: hook>hook>...", sorted.
func pathKeys(ps []packetPath) []string {
	var keys []string
	for _, p := range ps {
		var hooks []string
		for _, h := range p.Hops {
			hooks = append(hooks, h.Hook)
		}
		keys = append(keys, fmt.Sprintf("%d: %s", p.ID, strings.Join(hooks, ">")))
	}
	slices.Sort(keys)
	return keys
}

// parts returns the rotated files of out.pcapng in dir, in name order.
func parts(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "out_*.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^out_\d{5}_\d{8}T\d{6}Z\.pcapng$`)
	for _, n := range names {
		if !re.MatchString(filepath.Base(n)) {
			t.Errorf("rotated file %s is not named out_NNNNN_YYYYMMDDTHHMMSSZ.pcapng", n)
		}
	}
	return names
}

// TestRecordRotatedFiles: -C splits a recording into files each complete
// on its own (tshark reads each, the frames add up to what record says it
// wrote); analyze joins them into the same paths, with the same packet
// ids, as a second recorder writing one file of the same traffic.
func TestRecordRotatedFiles(t *testing.T) {
	testenv.RequireRoot(t)
	bin := build(t, "record")
	abin := build(t, "analyze")
	pair := testenv.NewVethPair(t)
	pair.Exec(t, pair.NSA, "ping", "-c", "1", "-W", "2", pair.IPB) // resolve the neighbour first
	dir := t.TempDir()
	rotDir := filepath.Join(dir, "rot")
	if err := os.Mkdir(rotDir, 0o700); err != nil {
		t.Fatal(err)
	}
	one := filepath.Join(dir, "one.pcapng")
	// Both recorders see the same packets, none before both are ready
	// (no ARP), so they give them the same ids.
	filter := "icmp and host " + pair.IPB
	rot := launch(t, bin, nil, "-w", filepath.Join(rotDir, "out.pcapng"), "-C", "40k", "--duration", "60s", filter)
	single := launch(t, bin, nil, "-w", one, "--duration", "60s", filter)
	pair.Exec(t, pair.NSA, "ping", "-c", "40", "-i", "0.01", "-q", pair.IPB)
	rot.interrupt(t)
	single.interrupt(t)

	events, size, nfiles := summary(t, rot.stderr.String())
	files := parts(t, rotDir)
	if len(files) < 3 || len(files) != nfiles {
		t.Fatalf("%d files (record says %d), want 3 or more:\n%s", len(files), nfiles, rot.stderr.String())
	}
	var frames int
	var bytes int64
	counts := checkFiles(t, files, files...) // tshark reads every one
	for i, f := range files {
		frames += counts[i]
		st, _ := os.Stat(f)
		bytes += st.Size()
	}
	if int64(frames) != events || bytes != size {
		t.Errorf("the files hold %d frames in %d bytes; record wrote %d events, %d bytes", frames, bytes, events, size)
	}
	if st, err := os.Stat(rot.ready); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("ready file: %v, mode %v; want 0600", err, st.Mode().Perm())
	}

	// The rotated set, in any order, analyzes like the single file.
	rev := slices.Clone(files)
	slices.Reverse(rev)
	out, stderr, code := analyzeRun(t, abin, append([]string{"paths", "--json"}, rev...)...)
	if code != 0 || stderr != "" {
		t.Fatalf("analyze paths of the rotated files: exit %d\n%s", code, stderr)
	}
	got := decodePaths(t, out)
	ids := map[uint64]bool{}
	for _, p := range got {
		if ids[p.ID] {
			t.Errorf("packet %d is split into two paths", p.ID)
		}
		ids[p.ID] = true
	}
	wantOut, stderr, code := analyzeRun(t, abin, "paths", "--json", one)
	if code != 0 {
		t.Fatalf("analyze paths of the single file: exit %d\n%s", code, stderr)
	}
	want := decodePaths(t, wantOut)
	if len(got) < 80 {
		t.Errorf("%d paths, want 80 or more for 40 pings", len(got))
	}
	if g, w := pathKeys(got), pathKeys(want); !slices.Equal(g, w) {
		t.Errorf("rotated files: %d paths, single file: %d; they differ:\n%s\nwant\n%s", len(g), len(w), strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

// TestRecordRing: -W 3 leaves exactly the three newest files.
func TestRecordRing(t *testing.T) {
	testenv.RequireRoot(t)
	bin := build(t, "record")
	pair := testenv.NewVethPair(t)
	dir := t.TempDir()
	rec := launch(t, bin, nil, "-w", filepath.Join(dir, "out.pcapng"), "-C", "4k", "-W", "3", "--duration", "60s", "host "+pair.IPB)
	pair.Exec(t, pair.NSA, "ping", "-c", "20", "-i", "0.01", "-q", pair.IPB)
	rec.interrupt(t)
	_, _, nfiles := summary(t, rec.stderr.String())
	files := parts(t, dir)
	if nfiles < 6 || len(files) != 3 {
		t.Fatalf("%d files written, %v kept; want 6 or more written, 3 kept:\n%s", nfiles, files, rec.stderr.String())
	}
	for i, f := range files {
		if want := fmt.Sprintf("out_%05d_", nfiles-2+i); !strings.HasPrefix(filepath.Base(f), want) {
			t.Errorf("kept %s, want %s...", filepath.Base(f), want)
		}
	}
	checkFiles(t, files, files[0])
	if !strings.Contains(rec.stderr.String(), fmt.Sprintf("in %d files, the newest 3 kept: %s .. %s", nfiles, filepath.Base(files[0]), filepath.Base(files[2]))) {
		t.Errorf("stderr does not name the kept files:\n%s", rec.stderr.String())
	}
	if left, _ := os.ReadDir(dir); len(left) != 3 {
		t.Errorf("directory holds %d entries, want the 3 files", len(left))
	}
}

// TestRecordRotateEverySecond: -G 1s starts a file every second.
func TestRecordRotateEverySecond(t *testing.T) {
	testenv.RequireRoot(t)
	bin := build(t, "record")
	pair := testenv.NewVethPair(t)
	dir := t.TempDir()
	rec := launch(t, bin, nil, "-w", filepath.Join(dir, "out.pcapng"), "-G", "1s", "--duration", "60s", "host "+pair.IPB)
	start := time.Now()
	pair.Exec(t, pair.NSA, "ping", "-c", "16", "-i", "0.2", "-q", pair.IPB)
	rec.interrupt(t)
	elapsed := time.Since(start)
	files := parts(t, dir)
	if lo, hi := int(elapsed.Seconds())-1, int(elapsed.Seconds())+2; len(files) < lo || len(files) > hi || len(files) < 3 {
		t.Fatalf("%d files in %.1f s with -G 1s", len(files), elapsed.Seconds())
	}
	events, _, _ := summary(t, rec.stderr.String())
	frames, withEvents := 0, 0
	for _, n := range checkFiles(t, files, files[1]) {
		frames += n
		if n > 0 {
			withEvents++
		}
	}
	if int64(frames) != events || withEvents < 3 {
		t.Errorf("%d frames (%d files with events), record wrote %d events", frames, withEvents, events)
	}
}

// TestRecordMaxSize: --max-size ends the recording by itself, cleanly,
// with exit status 0 and the reason on stderr.
func TestRecordMaxSize(t *testing.T) {
	testenv.RequireRoot(t)
	bin := build(t, "record")
	abin := build(t, "analyze")
	pair := testenv.NewVethPair(t)
	dir := t.TempDir()
	rec := launch(t, bin, nil, "-w", filepath.Join(dir, "out.pcapng"), "-C", "12k", "--max-size", "32k", "--duration", "60s", "host "+pair.IPB)
	flood := exec.Command("ip", "netns", "exec", pair.NSA, "ping", "-f", "-q", "-w", "20", pair.IPB)
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = flood.Process.Kill(); _ = flood.Wait() }()
	if code := rec.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("record exited with %d:\n%s", code, rec.stderr.String())
	}
	if !strings.Contains(rec.stderr.String(), "record: stopped: the recording reached --max-size 32 KiB") {
		t.Errorf("stderr does not say why record stopped:\n%s", rec.stderr.String())
	}
	_, size, _ := summary(t, rec.stderr.String())
	files := parts(t, dir)
	if len(files) == 0 {
		t.Fatalf("no files:\n%s", rec.stderr.String())
	}
	var total int64
	checkFiles(t, files, files[len(files)-1])
	for _, f := range files {
		st, _ := os.Stat(f)
		total += st.Size()
	}
	if len(files) < 3 || total != size || total < 32<<10 || total > 36<<10 {
		t.Errorf("%d files of %d bytes (record says %d), want 3 or more of 32 KiB to 36 KiB", len(files), total, size)
	}
	if _, stderr, code := analyzeRun(t, abin, append([]string{"stats"}, files...)...); code != 0 || stderr != "" {
		t.Errorf("analyze stats: exit %d\n%s", code, stderr)
	}
}

// readComplete returns the packets of every complete block of a file and
// whether it ends inside a block.
func readComplete(t *testing.T, name string) (packets int, cut bool) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapng.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	for {
		typ, err := r.Next()
		if err == io.EOF {
			return packets, false
		}
		if errors.Is(err, pcapng.ErrTruncated) {
			return packets, true
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if typ.IsPacket() {
			packets++
		}
	}
}

// icmpEchoRequests counts the echo requests at net_dev_queue in a file's
// complete blocks.
func icmpEchoRequests(t *testing.T, name string) int {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcapng.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		p, err := r.ReadPacket()
		if err != nil {
			return n
		}
		proto, _, _, off, ok := ipv4(p.Data)
		if ok && proto == 1 && len(p.Data) > off && p.Data[off] == 8 && len(p.Options.Comments) > 0 &&
			bytes.Contains(p.Options.Comments[0], []byte("hook=tp:net_dev_queue ")) {
			n++
		}
	}
}

// TestRecordKilled: events reach the file within a second while record
// runs; after kill -9 every complete block is readable by tshark and
// analyze, and analyze says the recording did not end cleanly (exit 3).
func TestRecordKilled(t *testing.T) {
	testenv.RequireRoot(t)
	bin := build(t, "record")
	abin := build(t, "analyze")
	tsharkBin := testenv.RequireTool(t, "tshark")
	pair := testenv.NewVethPair(t)
	pair.Exec(t, pair.NSA, "ping", "-c", "1", "-W", "2", pair.IPB)
	name := filepath.Join(t.TempDir(), "out.pcapng")
	rec := launch(t, bin, nil, "-w", name, "--duration", "60s", "host "+pair.IPB)
	pair.Exec(t, pair.NSA, "ping", "-c", "5", "-i", "0.05", "-q", pair.IPB)
	time.Sleep(time.Second)
	if n := icmpEchoRequests(t, name); n != 5 {
		t.Errorf("1 s after the pings, the file holds %d of their 5 echo requests", n)
	}

	// Killed in the middle of a flood.
	flood := exec.Command("ip", "netns", "exec", pair.NSA, "ping", "-f", "-q", "-w", "10", pair.IPB)
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = flood.Process.Kill(); _ = flood.Wait() }()
	time.Sleep(700 * time.Millisecond)
	if err := rec.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := rec.wait(t, 10*time.Second); code != -1 {
		t.Fatalf("record after SIGKILL: exit status %d", code)
	}
	complete, cut := readComplete(t, name)
	if complete < 10 {
		t.Fatalf("%d complete events after kill -9", complete)
	}

	// tshark reads every complete block; at most it says the last one is
	// cut short.
	cmd := exec.Command(tsharkBin, "-r", name, "-T", "fields", "-e", "frame.number")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if line != "" && !strings.Contains(line, "Running as user") && !strings.Contains(line, "cut short in the middle of a packet") {
			t.Errorf("tshark: %s", line)
		}
	}
	if cut != strings.Contains(stderr.String(), "cut short") || (err != nil) != cut {
		t.Errorf("tshark: %v, %q; this reader finds the last block cut: %v", err, stderr.String(), cut)
	}
	if n := strings.Count(string(out), "\n"); n != complete {
		t.Errorf("tshark reads %d frames, this reader %d complete events", n, complete)
	}

	paths, aerr, code := analyzeRun(t, abin, "paths", "--json", name)
	if code != 3 || strings.Count(aerr, "\n") != 1 || !strings.HasPrefix(aerr, "analyze: "+name+": did not end cleanly: ") {
		t.Errorf("analyze paths: exit %d, stderr:\n%s", code, aerr)
	}
	hops := 0
	for _, p := range decodePaths(t, paths) {
		hops += len(p.Hops)
	}
	if hops != complete {
		t.Errorf("analyze shows %d events, the file holds %d complete ones", hops, complete)
	}
}

// TestRecordFullDisk: a full file system stops record with one line on
// stderr and exit status 5 (output); every BPF program is detached, and the file
// ends on its last whole block, readable to its end by tshark.
func TestRecordFullDisk(t *testing.T) {
	testenv.RequireRoot(t)
	bin := build(t, "record")
	abin := build(t, "analyze")
	pair := testenv.NewVethPair(t)
	// Just over the 1 MiB that record wants free to start.
	dir := testenv.SmallTmpfs(t, "1280k")
	name := filepath.Join(dir, "out.pcapng")
	before := onSkbPrograms(t)
	rec := launch(t, bin, nil, "-w", name, "--duration", "60s", "host "+pair.IPB)
	flood := exec.Command("ip", "netns", "exec", pair.NSA, "ping", "-f", "-q", "-w", "20", pair.IPB)
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = flood.Process.Kill(); _ = flood.Wait() }()
	if code := rec.wait(t, 20*time.Second); code != 5 {
		t.Fatalf("record on a full disk: exit status %d, want 5:\n%s", code, rec.stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(rec.stderr.String()), "\n")
	last := lines[len(lines)-1]
	m := regexp.MustCompile(`^record: ` + regexp.QuoteMeta(name) + `: no space left on device: recording stopped after (\d+) events; the file holds every whole block written, without its closing statistics$`).FindStringSubmatch(last)
	if m == nil {
		t.Fatalf("last line on stderr: %q", last)
	}
	recorded, _ := strconv.Atoi(m[1])
	frames := tsharkFrames(t, name) // no warning: the file ends on a whole block
	if packets, cut := readComplete(t, name); cut || packets != frames || frames == 0 || frames > recorded {
		t.Errorf("full file: %d frames for tshark, %d for this reader (cut %v); record says %d events", frames, packets, cut, recorded)
	}
	if _, aerr, code := analyzeRun(t, abin, "stats", name); code != 3 || !strings.Contains(aerr, name+": did not end cleanly: no closing interface statistics") {
		t.Errorf("analyze stats: exit %d\n%s", code, aerr)
	}
	checkDetached(t, before)
}

// checkDetached checks that no on_skb program is loaded that was not
// loaded before (the kernel frees them after an RCU grace period).
func checkDetached(t *testing.T, before map[int]bool) {
	t.Helper()
	var left []int
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		left = left[:0]
		for id := range onSkbPrograms(t) {
			if !before[id] {
				left = append(left, id)
			}
		}
		if len(left) == 0 || time.Now().After(end) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("BPF programs %v of the recorder are still loaded 10 s after it exited", left)
	}
}

// TestRecordClosedPipe: record -w - | head -c 1000: record stops with one
// line on stderr and exit status 5 (output; not killed by SIGPIPE), and detaches
// everything; head got the start of a pcap-ng stream.
func TestRecordClosedPipe(t *testing.T) {
	testenv.RequireRoot(t)
	head := testenv.RequireTool(t, "head")
	bin := build(t, "record")
	pair := testenv.NewVethPair(t)
	before := onSkbPrograms(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	hc := exec.Command(head, "-c", "1000")
	var got bytes.Buffer
	hc.Stdin, hc.Stdout = pr, &got
	if err := hc.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	rec := launch(t, bin, pw, "-w", "-", "--duration", "60s", "host "+pair.IPB)
	pw.Close()
	flood := exec.Command("ip", "netns", "exec", pair.NSA, "ping", "-f", "-q", "-w", "20", pair.IPB)
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = flood.Process.Kill(); _ = flood.Wait() }()
	if code := rec.wait(t, 20*time.Second); code != 5 {
		t.Fatalf("record into a closed pipe: exit status %d, want 5:\n%s", code, rec.stderr.String())
	}
	if err := hc.Wait(); err != nil {
		t.Errorf("head: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(rec.stderr.String()), "\n")
	if last := lines[len(lines)-1]; !regexp.MustCompile(`^record: standard output: broken pipe \(its reader went away\): recording stopped after \d+ events$`).MatchString(last) {
		t.Errorf("last line on stderr: %q", last)
	}
	if got.Len() != 1000 || binary.LittleEndian.Uint32(got.Bytes()) != uint32(pcapng.BlockSectionHeader) {
		t.Errorf("head got %d bytes starting %x, want 1000 of a pcap-ng stream", got.Len(), got.Bytes()[:min(8, got.Len())])
	}
	checkDetached(t, before)
}
