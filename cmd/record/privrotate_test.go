package main_test

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pathcap/pathcap/internal/testenv"
)

// TestRecordRotatesAfterDrop: with -Z nobody and a ring of small files in
// a directory nobody may write, the files created after the drop belong
// to nobody, the ring removes the oldest as nobody, and every file left is
// a whole recording (capinfos reads each).
func TestRecordRotatesAfterDrop(t *testing.T) {
	testenv.RequireRoot(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		testenv.SkipOrFail(t, "no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	capinfos, err := exec.LookPath("capinfos")
	if err != nil {
		testenv.SkipOrFail(t, "no capinfos: %v", err)
	}
	bin := testenv.BuildCommand(t, "record")
	pair := testenv.NewVethPair(t)
	dir := filepath.Join(t.TempDir(), "ring")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	// t.TempDir and its parent are private to root: nobody needs to
	// reach dir.
	for _, d := range []string{filepath.Dir(dir), filepath.Dir(filepath.Dir(dir))} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out.pcapng")
	rec := launch(t, bin, nil, "-Z", "nobody", "-w", out, "-C", "16k", "-W", "3", "--duration", "60s", "host "+pair.IPB)
	pair.Exec(t, pair.NSA, "ping", "-q", "-c", "200", "-i", "0.005", "-W", "2", pair.IPB)
	select {
	case <-rec.done:
		t.Fatalf("record ended by itself: %v\n%s", rec.err, rec.stderr.String())
	default:
	}
	rec.interrupt(t)

	stderr := rec.stderr.String()
	m := regexp.MustCompile(`in (\d+) files, the newest 3 kept`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no rotation summary on stderr:\n%s", stderr)
	}
	if n, _ := strconv.Atoi(m[1]); n <= 3 {
		t.Fatalf("%d files written, want more than -W 3 (so that the ring removed some):\n%s", n, stderr)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "out_*.pcapng"))
	if len(files) != 3 {
		t.Fatalf("%d files left, want 3: %v", len(files), files)
	}
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if int(sys.Uid) != uid || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: owner %d mode %v, want nobody's (%d) and 0600", f, sys.Uid, st.Mode().Perm(), uid)
		}
		if b, err := exec.Command(capinfos, "-c", f).CombinedOutput(); err != nil || !strings.Contains(string(b), "Number of packets") {
			t.Errorf("capinfos %s: %v\n%s", f, err, b)
		}
	}
}
