package wireshark_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/testenv"
)

// TestWireshark44 runs this package's tests a second time, with the tshark
// 4.4 of a Debian trixie chroot (scripts/wireshark/trixie-chroot.sh makes
// it once, under ~/.cache/pathcap-wireshark/trixie) run as nobody: the
// test binary runs itself with chrootEnv set. It skips when the chroot
// cannot be made (not root, no debootstrap, no network), and fails then
// when CI is set.
func TestWireshark44(t *testing.T) {
	if os.Getenv(chrootEnv) != "" {
		t.Skipf("%s is set: this is the run with the chroot's tshark", chrootEnv)
	}
	testenv.RequireRoot(t)
	script := filepath.Join(testenv.ModuleRoot(t), "scripts", "wireshark", "trixie-chroot.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, script)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		testenv.SkipOrFail(t, "no trixie chroot with tshark 4.4 (%s: %v):\n%s", script, err, stderr.String())
	}
	root := strings.TrimSpace(string(out))
	ready, err := os.ReadFile(filepath.Join(root, ".pathcap-ready"))
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(ready))
	t.Logf("chroot %s (%s): %s", root, time.Since(start).Round(time.Millisecond), version)
	if !strings.HasPrefix(version, "TShark (Wireshark) 4.4.") {
		t.Fatalf("the chroot's tshark is %q, want 4.4", version)
	}

	args := []string{"-test.run", ".", "-test.skip", "^TestWireshark44$", "-test.v", "-test.count", "1", "-test.timeout", "15m"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	run := exec.Command(os.Args[0], args...)
	run.Env = append(os.Environ(), chrootEnv+"="+root)
	start = time.Now()
	output, err := run.CombinedOutput()
	// The top-level results, and the subtests' failures.
	counts := map[string][]string{}
	for _, m := range regexp.MustCompile(`(?m)^--- (PASS|FAIL|SKIP): (\S+)`).FindAllStringSubmatch(string(output), -1) {
		counts[m[1]] = append(counts[m[1]], m[2])
	}
	t.Logf("tshark 4.4 run (%s): %d passed, %d failed %v, %d skipped %v",
		time.Since(start).Round(time.Millisecond), len(counts["PASS"]), len(counts["FAIL"]), counts["FAIL"],
		len(counts["SKIP"]), counts["SKIP"])
	// What the profile test found with 4.4.
	for _, line := range strings.Split(string(output), "\n") {
		if strings.Contains(line, "the profile: ") {
			t.Log("tshark 4.4: " + strings.TrimSpace(line))
		}
	}
	if err != nil || len(counts["FAIL"]) > 0 {
		t.Fatalf("the tests fail with tshark 4.4 (%v):\n%s", err, output)
	}
	if len(counts["PASS"]) == 0 {
		t.Fatalf("no test passed with tshark 4.4:\n%s", output)
	}
	for _, name := range counts["SKIP"] {
		t.Errorf("%s skipped with tshark 4.4", name)
	}
}
