package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/internal/testenv"
)

// routed is three namespaces, A — R — B, R forwarding between two veth
// pairs, with A's and B's addresses.
type routed struct {
	nsA, nsR, nsB string
	devA, devB    string // A's device, B's device
	devR1, devR2  string // R's devices towards A and B
	ipA, ipB      string
}

// newRouted builds A — R — B (needs root and iproute2) and removes it when
// t ends.
func newRouted(t *testing.T) *routed {
	t.Helper()
	id := strconv.Itoa(os.Getpid() % 100000)
	net := fmt.Sprintf("10.%d", 200+os.Getpid()%50)
	r := &routed{nsA: "pcbA" + id, nsR: "pcbR" + id, nsB: "pcbB" + id,
		devA: "pcba" + id, devR1: "pcbr" + id, devR2: "pcbs" + id, devB: "pcbb" + id,
		ipA: net + ".1.1", ipB: net + ".2.2"}
	for _, ns := range []string{r.nsA, r.nsR, r.nsB} {
		testenv.Run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		testenv.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	testenv.Run(t, "ip", "link", "add", r.devA, "netns", r.nsA, "type", "veth", "peer", "name", r.devR1, "netns", r.nsR)
	testenv.Run(t, "ip", "link", "add", r.devR2, "netns", r.nsR, "type", "veth", "peer", "name", r.devB, "netns", r.nsB)
	for _, a := range []struct{ ns, dev, addr string }{
		{r.nsA, r.devA, r.ipA + "/24"}, {r.nsR, r.devR1, net + ".1.254/24"},
		{r.nsR, r.devR2, net + ".2.254/24"}, {r.nsB, r.devB, r.ipB + "/24"},
	} {
		testenv.Run(t, "ip", "-n", a.ns, "addr", "add", a.addr, "dev", a.dev)
		testenv.Run(t, "ip", "-n", a.ns, "link", "set", a.dev, "up")
	}
	testenv.Run(t, "ip", "-n", r.nsA, "route", "add", "default", "via", net+".1.254")
	testenv.Run(t, "ip", "-n", r.nsB, "route", "add", "default", "via", net+".2.254")
	testenv.Run(t, "ip", "netns", "exec", r.nsR, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return r
}

// pathSignatures runs analyze paths on file and returns each packet's JSON
// without what differs between two recorders of the same traffic (tracking
// ids, times, skb addresses, tasks, stacks), sorted.
func pathSignatures(t *testing.T, analyze, file string) []string {
	t.Helper()
	out, err := exec.Command(analyze, "paths", file).Output()
	if err != nil {
		t.Fatalf("analyze paths %s: %v", file, err)
	}
	var sigs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var v any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("analyze paths: %v: %s", err, line)
		}
		b, err := json.Marshal(stripVolatile(v))
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, string(b))
	}
	slices.Sort(sigs)
	return sigs
}

// stripVolatile removes the keys whose values depend on the recorder or
// the moment rather than on the packet's path.
func stripVolatile(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range []string{"id", "start", "duration_ns", "ts", "dt_ns", "skb", "cpu", "pid", "tid", "comm",
			"parent", "children", "clones", "via_clone", "stack_id", "stack", "derived", "lost"} {
			delete(v, k)
		}
		for k, x := range v {
			v[k] = stripVolatile(x)
		}
	case []any:
		for i, x := range v {
			v[i] = stripVolatile(x)
		}
	}
	return v
}

// TestRecordBytesChanged records pings forwarded A — R — B twice at once,
// with --bytes all and --bytes changed (two recorders see the same hits),
// and checks the changed recording with tshark and analyze: every
// bytes=same block has a captured length of 0 and the original length of
// the packet, the bytes are recorded again after R's forwarding decremented
// the TTL, and analyze's paths equal those of the all recording.
func TestRecordBytesChanged(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tool := range []string{"ip", "ping", "tshark"} {
		testenv.RequireTool(t, tool)
	}
	record := testenv.BuildCommand(t, "record")
	analyze := testenv.BuildCommand(t, "analyze")
	r := newRouted(t)
	// Neighbours resolved before the recording: only the pings in it.
	testenv.Run(t, "ip", "netns", "exec", r.nsA, "ping", "-c", "1", "-W", "2", r.ipB)

	filter := "icmp and host " + r.ipA
	all := startRecord(t, record, "--bytes", "all", filter)
	changed := startRecord(t, record, "--bytes", "changed", filter)
	const pings = 50
	testenv.Run(t, "ip", "netns", "exec", r.nsA, "ping", "-c", strconv.Itoa(pings), "-i", "0.01", "-W", "2", r.ipB)
	// Both stopped at once: one stopped later sees packets the other
	// does not (two more in one CI run).
	stopTogether(t, all, changed)

	// tshark reads the file without a complaint; bytes=same blocks have
	// no bytes but the packet's length.
	out := tshark(t, "-r", changed.file, "-T", "fields", "-E", "separator=|",
		"-e", "frame.packet_id", "-e", "frame.cap_len", "-e", "frame.len", "-e", "frame.interface_name",
		"-e", "ip.ttl", "-e", "icmp.type", "-e", "frame.comment")
	var same, withBytes, ttl63 int
	// What each packet's bytes say, carried forward as a reader does:
	// ICMP type and TTL.
	type carried struct{ icmp, ttl string }
	last := map[string]carried{}
	ttl := map[string]map[string]bool{} // device: TTLs of echo requests there
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(line, "|", 7)
		if len(f) != 7 {
			t.Fatalf("tshark line %q", line)
		}
		capLen, _ := strconv.Atoi(f[1])
		origLen, _ := strconv.Atoi(f[2])
		c := carried{f[5], f[4]}
		if strings.Contains(f[6], " bytes=same") {
			same++
			if capLen != 0 || origLen == 0 {
				t.Errorf("a bytes=same block with captured length %d, length %d: %s", capLen, origLen, line)
			}
			var ok bool
			if c, ok = last[f[0]]; !ok {
				t.Errorf("a bytes=same block of packet %s before any block of it with bytes: %s", f[0], line)
			}
		} else {
			withBytes++
			if capLen == 0 {
				t.Errorf("a block without bytes=same and without bytes: %s", line)
			}
			last[f[0]] = c
			if c.icmp == "8" && c.ttl == "63" {
				ttl63++
			}
		}
		if c.icmp == "8" {
			if ttl[f[3]] == nil {
				ttl[f[3]] = map[string]bool{}
			}
			ttl[f[3]][c.ttl] = true
		}
	}
	if same == 0 {
		t.Errorf("no block with bytes=same among %d", withBytes)
	}
	t.Logf("--bytes changed: %d blocks with bytes, %d without (bytes=same); %d echo requests recorded with TTL 63", withBytes, same, ttl63)
	// The echo requests leave A with TTL 64 and reach B with 63: R's
	// forwarding changed the bytes, and they were recorded again.
	if ttl63 < pings {
		t.Errorf("%d blocks with bytes of echo requests with TTL 63, want at least one per ping (%d)", ttl63, pings)
	}
	for dev, want := range map[string]string{r.devA: "64", r.devR1: "64", r.devR2: "63", r.devB: "63"} {
		if got := ttl[dev]; len(got) != 1 || !got[want] {
			t.Errorf("echo requests on %s: TTLs %v (carried forward), want only %s", dev, got, want)
		}
	}

	// analyze: the same paths, outcomes, flows, lengths and changes.
	wantSigs := pathSignatures(t, analyze, all.file)
	gotSigs := pathSignatures(t, analyze, changed.file)
	if len(wantSigs) < 2*pings {
		t.Errorf("analyze found %d packets in the --bytes all recording, want at least %d", len(wantSigs), 2*pings)
	}
	if !slices.Equal(gotSigs, wantSigs) {
		t.Errorf("analyze paths differ between --bytes all (%d packets) and --bytes changed (%d packets)\nall:     %s\nchanged: %s",
			len(wantSigs), len(gotSigs), strings.Join(wantSigs[:min(3, len(wantSigs))], "\n         "), strings.Join(gotSigs[:min(3, len(gotSigs))], "\n         "))
	}
	sa, sc := fileSize(t, all.file), fileSize(t, changed.file)
	t.Logf("file bytes: --bytes all %d, --bytes changed %d (%.2fx)", sa, sc, float64(sa)/float64(sc))
}

func fileSize(t *testing.T, name string) int64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
