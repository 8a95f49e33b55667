package main_test

import (
	"encoding/json"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/testenv"
)

// udpNoPorts is Udp NoPorts of /proc/net/snmp in namespace ns: datagrams
// the kernel dropped for want of a socket.
func udpNoPorts(t *testing.T, ns string) uint64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/snmp").Output()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "Udp: ") {
			continue
		}
		f := strings.Fields(line)[1:]
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "NoPorts" && i < len(f) {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("no Udp NoPorts in /proc/net/snmp of %s", ns)
	return 0
}

// TestRecordFlightRecorder: a steady stream of pings across a veth pair,
// and once, at a time the recorder cannot know, one datagram to a closed
// port. record --stop-on for that drop, into a ring of three files, stops
// by itself --stop-after later; the files hold the drop (the only one:
// the kernel's own counter says so), pings from before it (the ring when
// the trigger matched) and pings from after it (no file is removed after
// the trigger).
func TestRecordFlightRecorder(t *testing.T) {
	testenv.RequireRoot(t)
	bin := build(t, "record")
	abin := build(t, "analyze")
	pair := testenv.NewVethPair(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "ring.pcapng")
	const after = 1500 * time.Millisecond
	rec := launch(t, bin, nil, "-w", out, "-C", "64k", "-W", "3",
		"--stop-on", "reason=NO_SOCKET,filter=udp port 7777", "--stop-after", after.String(),
		"--duration", "60s", "host "+pair.IPB)
	pings := exec.Command("ip", "netns", "exec", pair.NSA, "ping", "-q", "-i", "0.02", "-w", "30", pair.IPB)
	if err := pings.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pings.Process.Kill(); _ = pings.Wait() }()

	before := udpNoPorts(t, pair.NSB)
	time.Sleep(time.Duration(1000+rand.IntN(2000)) * time.Millisecond)
	sent := time.Now()
	send := exec.Command("ip", "netns", "exec", pair.NSA, "bash", "-c", "echo once > /dev/udp/"+pair.IPB+"/7777")
	if b, err := send.CombinedOutput(); err != nil {
		t.Fatalf("send: %v: %s", err, b)
	}
	if code := rec.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("record: exit status %d:\n%s", code, rec.stderr.String())
	}
	took := time.Since(sent)
	drops := udpNoPorts(t, pair.NSB) - before
	if drops != 1 {
		t.Fatalf("the kernel counted %d datagrams to closed ports, want 1", drops)
	}
	stderr := rec.stderr.String()
	if !strings.Contains(stderr, "--stop-on reason=NO_SOCKET,filter=udp port 7777 matched: tp:kfree_skb") ||
		!strings.Contains(stderr, "record: stopped: "+after.String()+" after --stop-on matched") {
		t.Errorf("stderr does not tell the trigger:\n%s", stderr)
	}
	if took < after || took > after+5*time.Second {
		t.Errorf("record stopped %v after the drop, want about %v", took, after)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "ring_*.pcapng"))
	// The three of the ring when the trigger matched, and every file
	// after it: none is removed from then on.
	if len(files) < 3 {
		t.Fatalf("%d files in the ring, want at least the 3 of -W: %v", len(files), files)
	}

	// The drop, once, and pings around it.
	js, aerr, code := analyzeRun(t, abin, append([]string{"stats", "--json"}, files...)...)
	if code != 0 {
		t.Fatalf("analyze stats: exit %d: %s", code, aerr)
	}
	var sum struct {
		Drops []struct {
			Reason string `json:"reason"`
			Count  uint64 `json:"count"`
		} `json:"drops"`
	}
	if err := json.Unmarshal([]byte(js), &sum); err != nil {
		t.Fatal(err)
	}
	var noSocket uint64
	for _, d := range sum.Drops {
		if d.Reason == "NO_SOCKET" {
			noSocket += d.Count
		}
	}
	if noSocket != drops {
		t.Errorf("analyze finds %d NO_SOCKET drops in the ring, the kernel counted %d", noSocket, drops)
	}
	paths, _, _ := analyzeRun(t, abin, append([]string{"paths", "--json"}, files...)...)
	var dropAt, firstPing, lastPing int64
	for _, line := range strings.Split(strings.TrimSpace(paths), "\n") {
		var q struct {
			Start   int64 `json:"start"`
			Outcome struct {
				Reason string `json:"reason"`
			} `json:"outcome"`
		}
		if err := json.Unmarshal([]byte(line), &q); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		switch {
		case q.Outcome.Reason == "NO_SOCKET":
			dropAt = q.Start
		case firstPing == 0 || q.Start < firstPing:
			firstPing = q.Start
		}
		lastPing = max(lastPing, q.Start)
	}
	if dropAt == 0 {
		t.Fatalf("no NO_SOCKET drop among the paths")
	}
	beforeDrop := time.Duration(dropAt - firstPing)
	afterDrop := time.Duration(lastPing - dropAt)
	t.Logf("ring: %d files; packets from %v before the drop to %v after it; record stopped %v after the send", len(files), beforeDrop, afterDrop, took)
	if beforeDrop < 200*time.Millisecond {
		t.Errorf("the ring holds only %v before the drop", beforeDrop)
	}
	if afterDrop < after/2 || afterDrop > after+time.Second {
		t.Errorf("the ring holds %v after the drop, want about %v", afterDrop, after)
	}
}
