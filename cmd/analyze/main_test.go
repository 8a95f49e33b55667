package main

// End-to-end tests of the analyze binary on the crafted recordings of
// testdata/crafted (made by the paths tests' helpers; see
// paths/testdata_test.go).

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/pathcap/pathcap/internal/pcapfilter"
	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/internal/testrec"
	"github.com/pathcap/pathcap/paths/render"
	"github.com/pathcap/pathcap/pcapng"
)

var (
	scenarioFile = filepath.Join("..", "..", "testdata", "crafted", "scenario.pcapng")
	partFiles    = []string{
		filepath.Join("..", "..", "testdata", "crafted", "scenario-part2.pcapng"),
		filepath.Join("..", "..", "testdata", "crafted", "scenario-part3.pcapng"),
		filepath.Join("..", "..", "testdata", "crafted", "scenario-part1.pcapng"),
	}
	otherHostFile = filepath.Join("..", "..", "testdata", "crafted", "other-host.pcapng")
)

// The scenario's packets (paths/helpers_test.go), in start order.
var (
	scenarioIDs    = []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 14}
	scenarioEvents = 44
)

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the binary with args (stdin from the named file when not
// empty) and checks that it never panics.
func run(t *testing.T, bin, stdin string, args ...string) result {
	t.Helper()
	return runEnv(t, bin, nil, stdin, args...)
}

// runEnv is run with more environment variables.
func runEnv(t *testing.T, bin string, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// No NO_COLOR or TERM from the caller's environment.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	if stdin != "" {
		f, err := os.Open(stdin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdin = f
	}
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run analyze %q: %v", args, err)
	}
	if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") {
		t.Fatalf("analyze %q panicked:\n%s", args, r.stderr)
	}
	return r
}

// expect checks the exit code and that stderr contains every string.
func (r result) expect(t *testing.T, code int, stderr ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d; stderr:\n%s", r.code, code, r.stderr)
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
	if code == 0 && r.stderr != "" {
		t.Errorf("unexpected stderr:\n%s", r.stderr)
	}
}

func TestAnalyze(t *testing.T) {
	if _, err := os.Stat(scenarioFile); err != nil {
		t.Fatalf("%v (go test ./paths -run TestTestdata -update writes it)", err)
	}
	bin := testenv.BuildCommand(t, "analyze")
	for _, c := range []struct {
		name string
		fn   func(*testing.T, string)
	}{
		{"Usage", testUsage},
		{"NotPcapng", testNotPcapng},
		{"Truncated", testTruncated},
		{"NotClosed", testNotClosed},
		{"Corrupted", testCorrupted},
		{"Report", testReport},
		{"PathsJSON", testPathsJSON},
		{"StatsJSON", testStatsJSON},
		{"Wireshark", testWireshark},
		{"Export", testExport},
		{"Selection", testSelection},
		{"RotatedAndHosts", testRotatedAndHosts},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, bin) })
	}
}

func testUsage(t *testing.T, bin string) {
	for _, args := range [][]string{
		{},
		{"report"},
		{"paths", "--json"},
		{"--bogus", scenarioFile},
		{"stats", "--bogus", scenarioFile},
		{"--outcome", "lost", scenarioFile},
		{"paths", "--outcome", "dropped,lost", scenarioFile},
		{"--hook", "(unclosed", scenarioFile},
		{"--since", "yesterday", scenarioFile},
		{"--until", "2025-13-45", scenarioFile},
		{"--id", "five", scenarioFile},
		{"export", "--format", "csv", "-o", "-", scenarioFile},
		{"export", "--format", "parquet", "-o", "-", scenarioFile},
		{"wireshark", scenarioFile}, // -o is required
	} {
		r := run(t, bin, "", args...)
		r.expect(t, 2, "analyze: ")
		if r.stdout != "" {
			t.Errorf("%q: usage error wrote to stdout:\n%s", args, r.stdout)
		}
		if strings.Count(r.stderr, "\n") > 2 {
			t.Errorf("%q: long usage message:\n%s", args, r.stderr)
		}
	}
	// Help and version are not errors.
	for _, args := range [][]string{{"--help"}, {"report", "--help"}, {"--version"}} {
		r := run(t, bin, "", args...)
		r.expect(t, 0)
		if r.stdout == "" {
			t.Errorf("%q: no output", args)
		}
	}
}

func testNotPcapng(t *testing.T, bin string) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("10.0.0.1 > 10.0.0.2: ICMP echo request\n"), 0o644)
	empty := filepath.Join(dir, "empty.pcapng")
	os.WriteFile(empty, nil, 0o644)
	// A classic pcap file: global header and one Ethernet frame.
	classic := filepath.Join(dir, "classic.pcap")
	var pc []byte
	pc = binary.LittleEndian.AppendUint32(pc, 0xa1b2c3d4)
	pc = binary.LittleEndian.AppendUint16(pc, 2)
	pc = binary.LittleEndian.AppendUint16(pc, 4)
	pc = append(pc, make([]byte, 8)...)
	pc = binary.LittleEndian.AppendUint32(pc, 65535)
	pc = binary.LittleEndian.AppendUint32(pc, 1)
	pc = append(pc, make([]byte, 8)...)
	pc = binary.LittleEndian.AppendUint32(pc, 14)
	pc = binary.LittleEndian.AppendUint32(pc, 14)
	pc = append(pc, make([]byte, 14)...)
	os.WriteFile(classic, pc, 0o644)
	missing := filepath.Join(dir, "missing.pcapng")

	for _, c := range []struct {
		file string
		msg  []string
	}{
		{text, []string{text, "not a pcap-ng file"}},
		{empty, []string{empty, "empty", "not a pcap-ng file"}},
		{classic, []string{classic, "not a pcap-ng file", "classic pcap"}},
		{missing, []string{missing, "no such file"}},
	} {
		for _, args := range [][]string{{c.file}, {"paths", "--json", c.file}, {"stats", "--json", c.file}, {"export", "-o", "-", c.file}} {
			r := run(t, bin, "", args...)
			r.expect(t, 1, c.msg...)
			if r.stdout != "" {
				t.Errorf("%q: stdout %q", args, r.stdout)
			}
		}
		// The second file is bad: nothing is written either.
		out := filepath.Join(dir, "view.pcapng")
		run(t, bin, "", "wireshark", "-o", out, scenarioFile, c.file).expect(t, 1, c.msg...)
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s left behind", out)
		}
	}
	// Standard input that is not pcap-ng.
	run(t, bin, text, "paths", "--json", "-").expect(t, 1, "-: ", "not a pcap-ng file")
}

// blocks returns the start offsets of the blocks of a pcap-ng file and
// whether each is a packet.
func blocks(t *testing.T, data []byte) (starts []int, isPacket []bool) {
	t.Helper()
	r, err := pcapng.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for {
		typ, err := r.Next()
		if err == io.EOF {
			return append(starts, len(data)), isPacket
		}
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, int(r.Offset()))
		isPacket = append(isPacket, typ.IsPacket())
	}
}

func testTruncated(t *testing.T, bin string) {
	data, err := os.ReadFile(scenarioFile)
	if err != nil {
		t.Fatal(err)
	}
	starts, isPacket := blocks(t, data)
	dir := t.TempDir()
	for _, k := range []int{len(isPacket) / 2, len(isPacket) - 1} {
		cut := starts[k] + (starts[k+1]-starts[k])/2
		complete := 0
		for i := 0; i < k; i++ {
			if isPacket[i] {
				complete++
			}
		}
		name := filepath.Join(dir, fmt.Sprintf("cut%d.pcapng", k))
		os.WriteFile(name, data[:cut], 0o644)
		msg := []string{name + ": did not end cleanly: its last block is cut short", "truncated", "offset " + strconv.Itoa(starts[k])}

		r := run(t, bin, "", "paths", "--json", name)
		r.expect(t, 3, msg...)
		if n := strings.Count(r.stderr, "\n"); n != 1 {
			t.Errorf("stderr has %d lines, want one:\n%s", n, r.stderr)
		}
		events := 0
		for _, p := range decodePaths(t, r.stdout) {
			events += len(p.Hops)
		}
		if events != complete {
			t.Errorf("cut in block %d: %d events analyzed, want the %d complete ones", k, events, complete)
		}
		r = run(t, bin, "", "stats", "--json", name)
		r.expect(t, 3, msg...)
		if s := decodeStats(t, r.stdout); s.Events != uint64(complete) {
			t.Errorf("stats: %d events, want %d", s.Events, complete)
		}
		r = run(t, bin, "", name)
		r.expect(t, 3, msg...)
		if !strings.Contains(r.stdout, "Summary:") {
			t.Errorf("report of a truncated file has no summary:\n%s", r.stdout)
		}
		r = run(t, bin, "", "export", "-o", "-", name)
		r.expect(t, 3, msg...)
		if n := strings.Count(r.stdout, "\n"); n != complete {
			t.Errorf("export: %d rows, want %d", n, complete)
		}
		// Into a file too: the rows that could be read are kept, in
		// either format (with exit status 3).
		rows := filepath.Join(dir, "rows.jsonl")
		run(t, bin, "", "export", "-o", rows, name).expect(t, 3, msg...)
		if b, err := os.ReadFile(rows); err != nil {
			t.Errorf("export -o FILE of a truncated input: %v", err)
		} else if string(b) != r.stdout {
			t.Errorf("export -o FILE of a truncated input differs from -o -")
		}
		pq := filepath.Join(dir, "rows.parquet")
		run(t, bin, "", "export", "--format", "parquet", "-o", pq, name).expect(t, 3, msg...)
		if back, err := parquet.ReadFile[render.Row](pq); err != nil {
			t.Errorf("export --format parquet of a truncated input: %v", err)
		} else if len(back) != complete {
			t.Errorf("export --format parquet: %d rows, want %d", len(back), complete)
		}
		// The view of what was complete is kept (with exit status 3).
		out := filepath.Join(dir, "view.pcapng")
		run(t, bin, "", "wireshark", "-o", out, name).expect(t, 3, msg...)
		if n := len(readView(t, out)); n == 0 {
			t.Errorf("view of the complete part has no frames")
		}
	}
}

// testNotClosed: a recording without its closing interface statistics
// (record killed, or its output failed) is analyzed in full, and analyze
// says so in one line and exits with status 3; the same for one part of
// rotated files, the others clean.
func testNotClosed(t *testing.T, bin string) {
	data, err := os.ReadFile(scenarioFile)
	if err != nil {
		t.Fatal(err)
	}
	starts, isPacket := blocks(t, data)
	end := 0 // after the last packet: the statistics cut off
	for i, p := range isPacket {
		if p {
			end = starts[i+1]
		}
	}
	if end == len(data) {
		t.Fatalf("%s does not end with statistics", scenarioFile)
	}
	name := filepath.Join(t.TempDir(), "killed.pcapng")
	if err := os.WriteFile(name, data[:end], 0o644); err != nil {
		t.Fatal(err)
	}
	msg := name + ": did not end cleanly: no closing interface statistics blocks"
	for _, args := range [][]string{{"paths", "--json"}, {"stats", "--json"}, {"report"}, {"export", "-o", "-"}} {
		whole := run(t, bin, "", append(args, scenarioFile)...)
		whole.expect(t, 0)
		r := run(t, bin, "", append(args, name)...)
		r.expect(t, 3, msg)
		if n := strings.Count(r.stderr, "\n"); n != 1 {
			t.Errorf("%q: stderr has %d lines, want one:\n%s", args, n, r.stderr)
		}
		if r.stdout != whole.stdout {
			t.Errorf("%q: the output differs from the complete file's", args)
		}
	}
	// Rotated parts: only the unfinished one is named.
	parts := slices.Clone(partFiles)
	last := filepath.Join(t.TempDir(), "part3-killed.pcapng")
	pdata, err := os.ReadFile(parts[1]) // scenario-part3
	if err != nil {
		t.Fatal(err)
	}
	pstarts, pPacket := blocks(t, pdata)
	pend := 0
	for i, p := range pPacket {
		if p {
			pend = pstarts[i+1]
		}
	}
	os.WriteFile(last, pdata[:pend], 0o644)
	parts[1] = last
	r := run(t, bin, "", append([]string{"paths", "--json"}, parts...)...)
	r.expect(t, 3, last+": did not end cleanly")
	if n := strings.Count(r.stderr, "\n"); n != 1 {
		t.Errorf("rotated parts: stderr has %d lines, want one:\n%s", n, r.stderr)
	}
	if want := run(t, bin, "", "paths", "--json", scenarioFile); r.stdout != want.stdout {
		t.Errorf("rotated parts with an unfinished one analyze differently from the whole")
	}
}

func testCorrupted(t *testing.T, bin string) {
	data, err := os.ReadFile(scenarioFile)
	if err != nil {
		t.Fatal(err)
	}
	starts, isPacket := blocks(t, data)
	k := len(isPacket) / 2
	for !isPacket[k] {
		k++
	}
	at := starts[k]
	end := starts[k+1]
	dir := t.TempDir()
	for _, c := range []struct {
		name   string
		mangle func(b []byte)
		msg    string
	}{
		{"length not a multiple of 4", func(b []byte) { binary.LittleEndian.PutUint32(b[at+4:], 0x13) }, "multiple of 4"},
		{"trailing length", func(b []byte) { binary.LittleEndian.PutUint32(b[end-4:], 0x40) }, "trailing block length"},
		{"huge length", func(b []byte) { binary.LittleEndian.PutUint32(b[at+4:], 0xfffffff0) }, "exceeds"},
		{"captured length beyond the block", func(b []byte) { binary.LittleEndian.PutUint32(b[at+20:], 0xffff) }, ""},
		{"zeros", func(b []byte) { clear(b[at : at+16]) }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(data)
			c.mangle(b)
			name := filepath.Join(dir, "bad.pcapng")
			os.WriteFile(name, b, 0o644)
			msg := []string{name, "offset " + strconv.Itoa(at), c.msg}
			for _, args := range [][]string{{name}, {"paths", "--json", name}, {"stats", "--json", name}} {
				run(t, bin, "", args...).expect(t, 1, msg...)
			}
			for _, cmd := range [][]string{{"wireshark"}, {"export", "--format", "parquet"}, {"export", "--format", "jsonl"}} {
				out := filepath.Join(dir, "out")
				os.WriteFile(out, []byte("an earlier result"), 0o644)
				args := append(append(cmd, "-o", out), name)
				run(t, bin, "", args...).expect(t, 1, msg...)
				if b, _ := os.ReadFile(out); string(b) != "an earlier result" {
					t.Errorf("%q: the earlier output was replaced or removed", args)
				}
				os.Remove(out)
				run(t, bin, "", args...).expect(t, 1, msg...)
				if _, err := os.Stat(out); err == nil {
					t.Errorf("%q: partial output left behind", args)
				}
				if m, _ := filepath.Glob(filepath.Join(dir, ".out*")); len(m) > 0 {
					t.Errorf("temporary files left behind: %v", m)
				}
			}
		})
	}
}

// packetLines returns the ids of the "packet N" head lines of a report.
func packetLines(s string) []uint64 {
	var ids []uint64
	for _, m := range regexp.MustCompile(`(?m)^packet (\d+)  `).FindAllStringSubmatch(s, -1) {
		id, _ := strconv.ParseUint(m[1], 10, 64)
		ids = append(ids, id)
	}
	return ids
}

func testReport(t *testing.T, bin string) {
	def := run(t, bin, "", scenarioFile)
	def.expect(t, 0)
	rep := run(t, bin, "", "report", scenarioFile)
	rep.expect(t, 0)
	if def.stdout != rep.stdout {
		t.Error("analyze FILE and analyze report FILE differ")
	}
	out := rep.stdout
	if ids := packetLines(out); !slices.Equal(ids, scenarioIDs) {
		t.Errorf("packets %v, want %v", ids, scenarioIDs)
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour codes in piped output")
	}
	for _, want := range []string{
		"packet 5  dropped: NO_SOCKET at __udp4_lib_rcv+0x4bc  (4 hops, 41.0µs)  10.0.0.1:40005 > 10.0.0.2:9 UDP",
		"    +41.0µs  tp:kfree_skb          veth1  netns ns-server  len 52     drop NO_SOCKET  at __udp4_lib_rcv+0x4bc",
		"packet 6  consumed at icmp_rcv+0x1a2",
		"packet 7  unknown (last seen at netif_receive_skb: not dropped (a drop would show), but no hook saw it after it was received: a socket's receive path that frees where no tracepoint fires; a function backend shows where)",
		"packet 3  transmitted on eth0",
		"changed dev,addr,port: 198.51.100.7:40008 > 10.0.0.2:8080 TCP",
		"clones: [10]", "clone of 9", "clone of 999",
		// 10 is a clone of 9, counted apart.
		fmt.Sprintf("Summary: 14 packets (and 1 clone), %d events, 5.01s", scenarioEvents),
		"Outcomes:\n  delivered            4   28.6%\n  transmitted          4   28.6%\n  unknown              3   21.4%\n  dropped              2   14.3%\n  consumed             1    7.1%\n  clones: 1 (1 transmitted), part of their packets' outcomes\n",
		"Drop reasons:\n  NETFILTER_DROP         1\n                           1  at nf_hook_slow+0x9a\n  NO_SOCKET              1\n                           1  at __udp4_lib_rcv+0x4bc\n",
		"Most common paths:\n", "Per-hop latency:", "count       p50       p90       p99       max\n",
		"Devices and namespaces:\n  veth1      netns 4026532842 (ns-server)              17 events\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// Each packet's hop lines are aligned.
	for _, block := range strings.Split(out[:strings.Index(out, "Summary:")], "\n\n") {
		col := -1
		for _, l := range strings.Split(block, "\n")[1:] {
			c := len([]rune(l[:strings.Index(l, " len ")]))
			if col >= 0 && c != col {
				t.Errorf("misaligned hops:\n%s", block)
				break
			}
			col = c
		}
	}
	col := run(t, bin, "", "--color", scenarioFile)
	col.expect(t, 0)
	if !strings.Contains(col.stdout, "\x1b[31mdropped: NO_SOCKET") || !strings.Contains(col.stdout, "\x1b[1mSummary:\x1b[0m") {
		t.Error("--color: no colour codes")
	}
	if plain := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(col.stdout, ""); plain != out {
		t.Error("--color output differs from the plain one beyond the colour codes")
	}
	// NO_COLOR does not override an explicit --color; --no-color wins.
	if r := runEnv(t, bin, []string{"NO_COLOR=1"}, "", "--color", scenarioFile); r.stdout != col.stdout {
		t.Error("NO_COLOR overrides --color")
	}
	if r := run(t, bin, "", "--color", "--no-color", scenarioFile); r.stdout != out {
		t.Error("--no-color does not turn colour off")
	}
	sum := run(t, bin, "", "report", "--summary-only", scenarioFile)
	sum.expect(t, 0)
	if packetLines(sum.stdout) != nil || sum.stdout != out[strings.Index(out, "Summary:"):] {
		t.Errorf("--summary-only:\n%s", sum.stdout)
	}
	st := run(t, bin, "", "stats", scenarioFile)
	st.expect(t, 0)
	if st.stdout != sum.stdout {
		t.Error("stats differs from report --summary-only")
	}
	// Standard input.
	in := run(t, bin, scenarioFile, "-")
	in.expect(t, 0)
	if in.stdout != out {
		t.Error("report of standard input differs")
	}
}

// packetJSON is the documented "paths --json" schema (docs/FORMAT.md).
type packetJSON = render.PacketJSON

func decodePaths(t *testing.T, s string) []packetJSON {
	t.Helper()
	var out []packetJSON
	if s == "" {
		return nil
	}
	for i, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		var p packetJSON
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("line %d is not the documented JSON: %v\n%s", i+1, err, l)
		}
		out = append(out, p)
	}
	return out
}

func pathIDs(ps []packetJSON) []uint64 {
	var ids []uint64
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	return ids
}

func testPathsJSON(t *testing.T, bin string) {
	r := run(t, bin, "", "paths", "--json", scenarioFile)
	r.expect(t, 0)
	ps := decodePaths(t, r.stdout)
	if ids := pathIDs(ps); !slices.Equal(ids, scenarioIDs) {
		t.Fatalf("ids %v, want %v", ids, scenarioIDs)
	}
	kinds := map[uint64]string{1: "delivered", 2: "delivered", 3: "transmitted", 4: "transmitted", 5: "dropped", 6: "consumed", 7: "unknown",
		8: "transmitted", 9: "delivered", 10: "transmitted", 11: "transmitted", 12: "delivered", 13: "dropped", 14: "unknown"}
	for _, p := range ps {
		if p.Outcome.Kind != kinds[p.ID] {
			t.Errorf("packet %d: outcome %q, want %q", p.ID, p.Outcome.Kind, kinds[p.ID])
		}
		for j, h := range p.Hops {
			if h.Hook == "" || h.Kind != "tp" || h.TS == 0 || h.NetNS == 0 || h.Len == 0 {
				t.Errorf("packet %d hop %d: %+v", p.ID, j, h)
			}
			if j > 0 && h.TS < p.Hops[j-1].TS {
				t.Errorf("packet %d: hops out of order", p.ID)
			}
		}
	}
	drop := ps[4]
	if drop.Outcome.Reason != "NO_SOCKET" || drop.Outcome.Location != "__udp4_lib_rcv" || drop.Outcome.LocationOffset != "__udp4_lib_rcv+0x4bc" || drop.Outcome.Hook != "kfree_skb" {
		t.Errorf("drop outcome %+v", drop.Outcome)
	}
	nat := ps[7]
	if c := nat.Hops[1].Changed; !slices.Contains(c, "addr") || !slices.Contains(c, "port") {
		t.Errorf("NAT hop changed %v", c)
	}
	if ps[8].Children == nil || ps[9].Parent != 9 {
		t.Errorf("clones: %v %d", ps[8].Children, ps[9].Parent)
	}
	// Same from standard input.
	in := run(t, bin, scenarioFile, "paths", "--json", "-")
	in.expect(t, 0)
	if in.stdout != r.stdout {
		t.Error("standard input analyzed differently")
	}
}

// statsJSON is the documented "stats --json" schema.
type statsJSON = render.SummaryJSON

func decodeStats(t *testing.T, s string) statsJSON {
	t.Helper()
	var st statsJSON
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("stats --json: %v\n%s", err, s)
	}
	return st
}

func testStatsJSON(t *testing.T, bin string) {
	r := run(t, bin, "", "stats", "--json", scenarioFile)
	r.expect(t, 0)
	st := decodeStats(t, r.stdout)
	// The same counts as the text report.
	rep := run(t, bin, "", "stats", scenarioFile).stdout
	if !strings.Contains(rep, fmt.Sprintf("Summary: %d packets (and %d clone), %d events", st.Packets, st.Clones, st.Events)) || st.Packets != 14 || st.Clones != 1 {
		t.Errorf("report and JSON totals differ: %d %d\n%s", st.Packets, st.Events, rep)
	}
	for k, n := range st.Outcomes {
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^  %s +%d `, k, n)).MatchString(rep) {
			t.Errorf("outcome %s %d not in the report", k, n)
		}
	}
	for _, d := range st.Drops {
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^  %s +%d$`, d.Reason, d.Count)).MatchString(rep) {
			t.Errorf("drop %s %d not in the report", d.Reason, d.Count)
		}
		for _, l := range d.Locations {
			if !strings.Contains(rep, fmt.Sprintf("%d  at %s", l.Count, l.Location)) {
				t.Errorf("location %s not in the report", l.Location)
			}
		}
	}
	for _, l := range st.Latency {
		if !strings.Contains(rep, fmt.Sprintf("  %s > %s ", l.From, l.To)) {
			t.Errorf("latency %s > %s not in the report", l.From, l.To)
		}
	}
	for _, d := range st.Devices {
		if d.Dev != "" && !regexp.MustCompile(fmt.Sprintf(`(?m)^  %s +netns %d .* %d events$`, regexp.QuoteMeta(d.Dev), d.NetNS, d.Events)).MatchString(rep) {
			t.Errorf("device %s not in the report", d.Dev)
		}
	}
	if top := decodeStats(t, run(t, bin, "", "stats", "--json", "--top", "2", scenarioFile).stdout); len(top.Paths) != 2 {
		t.Errorf("--top 2: %d paths", len(top.Paths))
	}
}

// viewFrame is one frame of a path view.
type viewFrame struct {
	id       uint64
	comments []string
}

func readView(t *testing.T, name string) []viewFrame {
	t.Helper()
	var out []viewFrame
	for i, p := range testrec.Read(t, name).Packets {
		if !p.Options.HasPacketID {
			t.Errorf("frame %d without epb_packetid", i+1)
		}
		out = append(out, viewFrame{id: p.Options.PacketID, comments: p.Comments})
	}
	return out
}

func testWireshark(t *testing.T, bin string) {
	out := filepath.Join(t.TempDir(), "view.pcapng")
	run(t, bin, "", "wireshark", "-o", out, scenarioFile).expect(t, 0)
	frames := readView(t, out)
	paths := decodePaths(t, run(t, bin, "", "paths", "--json", scenarioFile).stdout)
	if len(frames) != len(paths) {
		t.Fatalf("%d frames for %d packets", len(frames), len(paths))
	}
	for i, f := range frames {
		p := paths[i]
		if f.id != p.ID || len(f.comments) != 1+len(p.Hops) {
			t.Fatalf("frame %d: id %d, %d comments; packet %d has %d hops", i+1, f.id, len(f.comments), p.ID, len(p.Hops))
		}
		if !strings.HasPrefix(f.comments[0], fmt.Sprintf("pathcap-path/1 id=%d outcome=%s ", p.ID, p.Outcome.Kind)) {
			t.Errorf("path comment %q", f.comments[0])
		}
		for j, c := range f.comments[1:] {
			if !strings.HasPrefix(c, fmt.Sprintf("pathcap-hop/1 n=%d ", j+1)) || !strings.Contains(c, " hook=tp:"+p.Hops[j].Hook+" ") {
				t.Errorf("hop comment %q", c)
			}
		}
	}
	// Standard output.
	r := run(t, bin, "", "wireshark", "-o", "-", scenarioFile)
	r.expect(t, 0)
	if b, _ := os.ReadFile(out); r.stdout != string(b) {
		t.Error("-o - wrote something else")
	}

	tshark := testenv.RequireTool(t, "tshark")
	cmd := exec.Command(tshark, "-r", out, "-T", "fields", "-E", "aggregator=|", "-e", "frame.packet_id", "-e", "frame.comment")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if l != "" && !strings.HasPrefix(l, "Running as user \"root\"") {
			t.Errorf("tshark warns: %s", l)
		}
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != len(frames) {
		t.Fatalf("tshark shows %d frames, want %d", len(lines), len(frames))
	}
	for i, l := range lines {
		id, comments, _ := strings.Cut(l, "\t")
		if id != strconv.FormatUint(frames[i].id, 10) {
			t.Errorf("tshark frame %d: packet_id %s, want %d", i+1, id, frames[i].id)
		}
		if got := strings.Split(comments, "|"); !slices.Equal(got, frames[i].comments) {
			t.Errorf("tshark frame %d comments:\n%q\nwant\n%q", i+1, got, frames[i].comments)
		}
	}
}

func testExport(t *testing.T, bin string) {
	r := run(t, bin, "", "export", "--format", "jsonl", "-o", "-", scenarioFile)
	r.expect(t, 0)
	var rows []render.Row
	for i, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		var row render.Row
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&row); err != nil {
			t.Fatalf("row %d: %v\n%s", i+1, err, l)
		}
		rows = append(rows, row)
	}
	if len(rows) != scenarioEvents {
		t.Fatalf("%d rows, want one per event (%d)", len(rows), scenarioEvents)
	}
	drops := 0
	for _, row := range rows {
		if row.Hook == "kfree_skb" {
			drops++
			if row.Reason == "" || row.Location == "" {
				t.Errorf("drop row %+v", row)
			}
		}
	}
	if drops != 2 {
		t.Errorf("%d kfree_skb rows", drops)
	}
	dir := t.TempDir()
	jsonl := filepath.Join(dir, "events.jsonl")
	run(t, bin, "", "export", "-o", jsonl, scenarioFile).expect(t, 0)
	if b, _ := os.ReadFile(jsonl); string(b) != r.stdout {
		t.Error("export -o FILE differs from -o -")
	}
	pq := filepath.Join(dir, "events.parquet")
	run(t, bin, "", "export", "--format", "parquet", "-o", pq, scenarioFile).expect(t, 0)
	back, err := parquet.ReadFile[render.Row](pq)
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
	if st, _ := os.Stat(pq); st.Mode().Perm() != 0o600 {
		t.Errorf("output mode %v", st.Mode())
	}
}

func testSelection(t *testing.T, bin string) {
	first := "2025-11-25T08:00:00.001Z" // the scenario's first event
	cases := []struct {
		flags []string
		want  []uint64
	}{
		{[]string{"--id", "5"}, []uint64{5}},
		{[]string{"--id", "3,9", "--id", "77"}, []uint64{3, 9}},
		{[]string{"--outcome", "dropped"}, []uint64{5, 13}},
		{[]string{"--outcome", "unknown,consumed"}, []uint64{6, 7, 14, 14}},
		{[]string{"--reason", "NO_SOCKET"}, []uint64{5}},
		{[]string{"--reason", "skb_drop_reason_netfilter_drop"}, []uint64{13}},
		{[]string{"--hook", "kfree"}, []uint64{5, 13}},
		{[]string{"--hook", "^tp:skb_copy"}, []uint64{1, 9, 12}},
		{[]string{"--since", "2025-11-25T08:00:00.012Z"}, []uint64{12, 13, 14, 14}},
		{[]string{"--since", "11ms"}, []uint64{12, 13, 14, 14}},
		{[]string{"--until", "2ms"}, []uint64{1, 2}},
		{[]string{"--since", "4ms", "--until", "6ms"}, []uint64{5, 6}},
		{[]string{"--since", first, "--until", "2025-11-25T08:00:00.003Z"}, []uint64{1, 2}},
		{[]string{"--until", "2025-11-25T09:00:00+01:00"}, []uint64{}},
		{[]string{"--since", "3s"}, []uint64{14}},
		{[]string{"--outcome", "dropped", "--hook", "net_dev_xmit"}, []uint64{5}},
	}
	if pcapfilter.Available() {
		cases = append(cases,
			struct {
				flags []string
				want  []uint64
			}{[]string{"--filter", "udp port 53"}, []uint64{1}},
			struct {
				flags []string
				want  []uint64
			}{[]string{"--filter", "ip6"}, []uint64{12}},
			struct {
				flags []string
				want  []uint64
			}{[]string{"--filter", "tcp dst port 8080", "--outcome", "transmitted"}, []uint64{8}})
	} else {
		t.Log("--filter not tested: this build has no libpcap")
	}
	dir := t.TempDir()
	for _, c := range cases {
		name := strings.Join(c.flags, " ")
		want := c.want
		if len(want) == 0 {
			want = nil
		}
		args := func(cmd ...string) []string { return append(append(cmd, c.flags...), scenarioFile) }

		r := run(t, bin, "", args("paths", "--json")...)
		r.expect(t, 0)
		if got := pathIDs(decodePaths(t, r.stdout)); !slices.Equal(got, want) {
			t.Errorf("paths %s: %v, want %v", name, got, want)
		}
		r = run(t, bin, "", args("report")...)
		r.expect(t, 0)
		if got := packetLines(r.stdout); !slices.Equal(got, want) {
			t.Errorf("report %s: %v, want %v", name, got, want)
		}
		if !strings.Contains(r.stdout, fmt.Sprintf("Summary: %d packets", len(want))) {
			t.Errorf("report %s: summary does not count %d packets", name, len(want))
		}
		r = run(t, bin, "", args("stats", "--json")...)
		r.expect(t, 0)
		if got := decodeStats(t, r.stdout).Packets; got != uint64(len(want)) {
			t.Errorf("stats %s: %d packets, want %d", name, got, len(want))
		}
		out := filepath.Join(dir, "view.pcapng")
		run(t, bin, "", args("wireshark", "-o", out)...).expect(t, 0)
		var got []uint64
		for _, f := range readView(t, out) {
			got = append(got, f.id)
		}
		if !slices.Equal(got, want) {
			t.Errorf("wireshark %s: %v, want %v", name, got, want)
		}
	}
	// Durations count from the first event of standard input too.
	r := run(t, bin, scenarioFile, "paths", "--json", "--since", "4ms", "--until", "6ms", "-")
	r.expect(t, 0)
	if got := pathIDs(decodePaths(t, r.stdout)); !slices.Equal(got, []uint64{5, 6}) {
		t.Errorf("standard input --since 4ms --until 6ms: %v", got)
	}
	if !pcapfilter.Available() {
		run(t, bin, "", "--filter", "udp port 53", scenarioFile).expect(t, 1, "libpcap")
	} else {
		run(t, bin, "", "--filter", "udp port", scenarioFile).expect(t, 2, "bad filter expression")
	}
}

func testRotatedAndHosts(t *testing.T, bin string) {
	whole := run(t, bin, "", "paths", "--json", scenarioFile)
	whole.expect(t, 0)
	parts := run(t, bin, "", append([]string{"paths", "--json"}, partFiles...)...)
	parts.expect(t, 0)
	if parts.stdout != whole.stdout {
		t.Errorf("rotated parts analyzed differently:\n%s\nwant\n%s", parts.stdout, whole.stdout)
	}
	both := run(t, bin, "", "paths", "--json", scenarioFile, otherHostFile)
	both.expect(t, 0)
	ps := decodePaths(t, both.stdout)
	if len(ps) != 17 {
		t.Fatalf("%d packets, want 17", len(ps))
	}
	var ones []packetJSON
	for _, p := range ps {
		if p.ID == 1 {
			ones = append(ones, p)
		}
	}
	if len(ones) != 2 || len(ones[0].Hops)+len(ones[1].Hops) != 7+2 {
		t.Errorf("id 1 of two hosts: %d packets", len(ones))
	}
}

// TestFilterWithoutCgo: a build without cgo has no libpcap; --filter says
// so clearly and fails with status 1.
func TestFilterWithoutCgo(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "analyze-nocgo")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/analyze")
	cmd.Dir = testenv.ModuleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"--filter", "udp port 53", scenarioFile},
		{"paths", "--json", "--filter", "udp port 53", scenarioFile},
		{"wireshark", "-o", filepath.Join(t.TempDir(), "v.pcapng"), "--filter", "udp", scenarioFile},
	} {
		r := run(t, bin, "", args...)
		r.expect(t, 1, "--filter", "libpcap", "cgo")
		if r.stdout != "" {
			t.Errorf("%q: output %q", args, r.stdout)
		}
	}
	// Everything else works.
	r := run(t, bin, "", "paths", "--json", "--reason", "NO_SOCKET", scenarioFile)
	r.expect(t, 0)
	if got := pathIDs(decodePaths(t, r.stdout)); !slices.Equal(got, []uint64{5}) {
		t.Errorf("ids %v", got)
	}
}

func TestWithDefaultCommand(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	for _, c := range []struct{ in, want []string }{
		{[]string{"analyze"}, []string{"analyze"}},
		{[]string{"analyze", "f.pcapng"}, []string{"analyze", "report", "f.pcapng"}},
		{[]string{"analyze", "--color", "f.pcapng"}, []string{"analyze", "report", "--color", "f.pcapng"}},
		{[]string{"analyze", "paths", "f"}, []string{"analyze", "paths", "f"}},
		{[]string{"analyze", "--help"}, []string{"analyze", "--help"}},
		{[]string{"analyze", "-v"}, []string{"analyze", "-v"}},
	} {
		if got := withDefaultCommand(app, c.in); !slices.Equal(got, c.want) {
			t.Errorf("withDefaultCommand(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	var b bytes.Buffer
	if exitCode(nil, &b) != 0 || exitCode(usagef("x"), &b) != 2 || exitCode(fmt.Errorf("y"), &b) != 1 ||
		exitCode(&uncleanError{lines: []string{"a: z", "b: w"}}, &b) != 3 || b.String() != "analyze: x\nanalyze: y\nanalyze: a: z\nanalyze: b: w\n" {
		t.Errorf("exitCode: %q", b.String())
	}
}
