package wireshark_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/internal/testrec"
)

// TestDroppedPacketsOfARecording checks the dissector on the path view that
// analyze makes of a real recording: the filter pathcap.outcome ==
// "dropped" selects exactly the packets analyze calls dropped, and every
// recorded drop event is found by pathcap.drop_reason in the raw file.
func TestDroppedPacketsOfARecording(t *testing.T) {
	requireTshark(t)
	rec := testrec.Recording(t, "host-veth.pcapng")
	analyze := testenv.BuildCommand(t, "analyze")
	view := filepath.Join(t.TempDir(), "view.pcapng")
	if out, err := exec.Command(analyze, "wireshark", "-o", view, rec).CombinedOutput(); err != nil {
		t.Fatalf("analyze wireshark: %v\n%s", err, out)
	}
	out, err := exec.Command(analyze, "paths", "--json", rec).Output()
	if err != nil {
		t.Fatalf("analyze paths: %v", err)
	}
	var dropped, all []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var p struct {
			ID      uint64 `json:"id"`
			Outcome struct {
				Kind string `json:"kind"`
			} `json:"outcome"`
		}
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatal(err)
		}
		id := strconv.FormatUint(p.ID, 10)
		all = append(all, id)
		if p.Outcome.Kind == "dropped" {
			dropped = append(dropped, id)
		}
	}
	if len(dropped) == 0 || len(dropped) == len(all) {
		t.Fatalf("the recording has %d dropped packets of %d: the test needs some of each", len(dropped), len(all))
	}
	var got []string
	for _, row := range fields(t, view, `pathcap.outcome == "dropped"`, "frame.packet_id") {
		got = append(got, row[1])
	}
	slices.Sort(got)
	slices.Sort(dropped)
	if !slices.Equal(got, dropped) {
		t.Errorf("pathcap.outcome == \"dropped\" selects packets %v, analyze says %v", got, dropped)
	}
	// Every frame of the view is one packet.
	if n := len(fields(t, view, "")); n != len(all) {
		t.Errorf("view has %d frames, analyze reports %d packets", n, len(all))
	}
	// In the raw recording, drop events carry the reason as a field.
	raw := fields(t, rec, "pathcap.drop_reason", "pathcap.drop_reason", "pathcap.hook")
	if len(raw) == 0 {
		t.Fatal("no drop events found through pathcap.drop_reason in the recording")
	}
	for _, row := range raw {
		if row[2] != "tp:kfree_skb" || row[1] == "" {
			t.Errorf("frame %s: drop reason %q at %q", row[0], row[1], row[2])
		}
	}
}
