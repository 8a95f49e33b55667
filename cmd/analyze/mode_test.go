package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pathcap/pathcap/internal/testenv"
)

// TestOutputFilesArePrivate: the files analyze writes hold recorded data
// and are readable by their owner only (mode 0600), whatever the umask.
func TestOutputFilesArePrivate(t *testing.T) {
	bin := testenv.BuildCommand(t, "analyze")
	dir := t.TempDir()
	for _, args := range [][]string{
		{"wireshark", "-o", filepath.Join(dir, "paths.pcapng"), scenarioFile},
		{"export", "--format", "jsonl", "-o", filepath.Join(dir, "packets.jsonl"), scenarioFile},
	} {
		run(t, bin, "", args...).expect(t, 0)
		fi, err := os.Stat(args[len(args)-2])
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("analyze %s wrote mode %v, want 0600", args[0], fi.Mode().Perm())
		}
	}
}
