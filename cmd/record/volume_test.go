package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/testenv"
)

// TestRecordVolumeNote: a recording that nothing bounds says once, after
// its first second, how much it writes and how to bound it; a bounded one
// (here by a filter) does not.
func TestRecordVolumeNote(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.BuildCommand(t, "record")
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"icmp"}, false},
	} {
		dir := t.TempDir()
		ready := filepath.Join(dir, "ready")
		cmd := exec.Command(bin, append([]string{"--backend", "tracepoint", "--ready-file", ready, "-w", filepath.Join(dir, "out.pcapng")}, tc.args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(ready); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("record did not get ready: %s", stderr.String())
			}
		}
		// More than the first second of recording.
		time.Sleep(2 * time.Second)
		_ = cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("record %q: %v\n%s", tc.args, err, stderr.String())
		}
		got := strings.Count(stderr.String(), "record: nothing bounds this recording: ")
		if tc.want && (got != 1 || !strings.Contains(stderr.String(), "-C with -W bound it")) || !tc.want && got != 0 {
			t.Errorf("record %q: %d volume notes, want %v:\n%s", tc.args, got, tc.want, stderr.String())
		}
	}
}
