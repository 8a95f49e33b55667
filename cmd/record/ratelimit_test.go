package main_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/internal/testenv"
)

// TestRecordRateLimitIsCounted sends echo requests across a veth pair for three seconds
// with record --max-rate far below the flood's rate, at one hook where
// each request is seen once (net_dev_queue in the sender's namespace), and
// checks the accounting against ping's own count of requests sent: every
// request is either recorded, lost to a full ring, or skipped by the
// in-kernel budget; the skips are on stderr, in the events' skipped= keys,
// in the ISB comment, and in analyze stats.
func TestRecordRateLimitIsCounted(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.BuildCommand(t, "record")
	analyze := testenv.BuildCommand(t, "analyze")
	pair := testenv.NewVethPair(t)
	const rate = 100
	rec := startRecord(t, bin, "--hooks", "net_dev_queue", "--netns", fmt.Sprint(pair.InodeA),
		"--max-rate", fmt.Sprint(rate), "-s", "64", "icmp[icmptype] = icmp-echo")
	// 1,500 requests 2 ms apart: at least three one-second budget
	// windows, so that events recorded after skips carry skipped= (500
	// requests took just under one window once, in CI, and no event
	// followed the skips).
	out, err := exec.Command("ip", "netns", "exec", pair.NSA, "ping", "-q", "-i", "0.002", "-c", "1500", "-w", "30", pair.IPB).CombinedOutput()
	if err != nil {
		t.Logf("ping: %v", err)
	}
	m := regexp.MustCompile(`(\d+) packets transmitted`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no count from ping: %s", out)
	}
	sent, _ := strconv.ParseUint(string(m[1]), 10, 64)
	rec.stop(t)

	sm := regexp.MustCompile(`(\d+) events written, (\d+) lost`).FindStringSubmatch(rec.stderr.String())
	if sm == nil {
		t.Fatalf("no summary on stderr: %s", rec.stderr.String())
	}
	written, _ := strconv.ParseUint(sm[1], 10, 64)
	lost, _ := strconv.ParseUint(sm[2], 10, 64)
	var skipped uint64
	if km := regexp.MustCompile(`(\d+) hits were not recorded because the rate limit was reached`).FindStringSubmatch(rec.stderr.String()); km != nil {
		skipped, _ = strconv.ParseUint(km[1], 10, 64)
	}
	t.Logf("ping sent %d requests; record: %d written, %d lost, %d skipped", sent, written, lost, skipped)
	if skipped == 0 {
		t.Fatalf("a flood of %d requests at --max-rate %d skipped nothing: %s", sent, rate, rec.stderr.String())
	}
	if written+lost+skipped != sent {
		t.Errorf("written %d + lost %d + skipped %d = %d, want ping's %d", written, lost, skipped, written+lost+skipped, sent)
	}

	events, stats := readRecording(t, rec.file)
	if uint64(len(events)) != written {
		t.Errorf("file has %d events, stderr says %d", len(events), written)
	}
	var keys uint64
	for _, e := range events {
		keys += e.meta.Skipped
	}
	// Skips after a CPU's last event are in the total only.
	if keys == 0 || keys > skipped {
		t.Errorf("skipped= keys sum to %d, want between 1 and %d", keys, skipped)
	}
	comment := ""
	for _, s := range stats {
		for _, c := range s.Comments {
			comment += string(c)
		}
	}
	if !strings.Contains(comment, fmt.Sprintf("pathcap: %d hits not recorded", skipped)) {
		t.Errorf("no ISB comment with the %d skipped hits: %q", skipped, comment)
	}

	js, err := exec.Command(analyze, "stats", "--json", rec.file).Output()
	if err != nil {
		t.Fatalf("analyze stats: %v", err)
	}
	var sum struct {
		Skipped uint64 `json:"skipped_events"`
		Lost    uint64 `json:"lost_events"`
	}
	if err := json.Unmarshal(js, &sum); err != nil {
		t.Fatalf("analyze stats --json: %v: %s", err, js)
	}
	if sum.Skipped != keys {
		t.Errorf("analyze stats skipped_events %d, want the keys' %d", sum.Skipped, keys)
	}
	text, err := exec.Command(analyze, "stats", rec.file).Output()
	if err != nil {
		t.Fatalf("analyze stats: %v", err)
	}
	if !strings.Contains(string(text), fmt.Sprintf("%d hits skipped (--max-rate)", keys)) {
		t.Errorf("analyze stats does not show the skipped hits:\n%s", text)
	}
}
