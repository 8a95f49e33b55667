package main_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/testenv"
)

// threadCreds are the credential lines of one thread's status file.
type threadCreds struct {
	tid                    string
	uid, gid               []int // real, effective, saved, filesystem
	groups                 []int
	capEff, capPrm, capAmb uint64
	capBnd                 string
	raw                    string
}

// processCreds reads /proc/PID/task/*/status: the credentials of every
// thread of process pid.
func processCreds(pid int) ([]threadCreds, error) {
	paths, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(paths) == 0 {
		return nil, fmt.Errorf("no threads of process %d: %v", pid, err)
	}
	var all []threadCreds
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		c := threadCreds{tid: filepath.Base(filepath.Dir(p)), raw: string(b)}
		ints := func(s string) []int {
			var out []int
			for _, f := range strings.Fields(s) {
				n, err := strconv.Atoi(f)
				if err != nil {
					return nil
				}
				out = append(out, n)
			}
			return out
		}
		hex := func(s string) uint64 {
			v, err := strconv.ParseUint(strings.TrimSpace(s), 16, 64)
			if err != nil {
				return ^uint64(0)
			}
			return v
		}
		sc := bufio.NewScanner(strings.NewReader(c.raw))
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			switch k {
			case "Uid":
				c.uid = ints(v)
			case "Gid":
				c.gid = ints(v)
			case "Groups":
				c.groups = ints(v)
			case "CapEff":
				c.capEff = hex(v)
			case "CapPrm":
				c.capPrm = hex(v)
			case "CapAmb":
				c.capAmb = hex(v)
			case "CapBnd":
				c.capBnd = strings.TrimSpace(v)
			}
		}
		all = append(all, c)
	}
	return all, nil
}

// droppedTo reports whether every thread runs as uid:gid with exactly the
// supplementary groups groups and no effective, permitted or ambient
// capability; if not, it says why.
func droppedTo(threads []threadCreds, uid, gid int, groups []int) error {
	for _, c := range threads {
		if len(c.uid) != 4 || len(c.gid) != 4 {
			return fmt.Errorf("thread %s: unreadable status:\n%s", c.tid, c.raw)
		}
		for i := range 4 {
			if c.uid[i] != uid || c.gid[i] != gid {
				return fmt.Errorf("thread %s: Uid %v Gid %v, want %d and %d", c.tid, c.uid, c.gid, uid, gid)
			}
		}
		got := slices.Sorted(slices.Values(c.groups))
		if !slices.Equal(got, groups) {
			return fmt.Errorf("thread %s: Groups %v, want %v", c.tid, got, groups)
		}
		if c.capEff != 0 || c.capPrm != 0 || c.capAmb != 0 {
			return fmt.Errorf("thread %s: CapEff %#x CapPrm %#x CapAmb %#x, want none", c.tid, c.capEff, c.capPrm, c.capAmb)
		}
	}
	return nil
}

// TestRecordDropsPrivileges runs record -Z nobody as root and watches the
// running process: once the hooks are attached every thread's uid, gid and
// groups are nobody's and no capability is effective, permitted or ambient.
// Only then is traffic made (ping on lo in a namespace of its own, with a
// filter that keeps only ICMP there), so every event in the file was read
// from the ring buffer after the drop. The recording ends cleanly (the loss
// counters, a map lookup, are read after the drop too), and the output and
// ready files are mode 0600.
func TestRecordDropsPrivileges(t *testing.T) {
	testenv.RequireRoot(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		testenv.SkipOrFail(t, "no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	var groups []int
	gids, err := nobody.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range append(gids, nobody.Gid) {
		n, _ := strconv.Atoi(g)
		if !slices.Contains(groups, n) {
			groups = append(groups, n)
		}
	}
	slices.Sort(groups)

	bin := testenv.BuildCommand(t, "record")
	pair := testenv.NewVethPair(t)
	rec := startRecord(t, bin, "-Z", "nobody", "--netns", pair.NSA, "--hooks", "net_dev_queue,netif_receive_skb", "icmp")
	pid := rec.cmd.Process.Pid

	// The drop follows the ready file closely: wait for it.
	var threads []threadCreds
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		threads, err = processCreds(pid)
		if err != nil {
			t.Fatalf("record: %v\n%s", err, rec.stderr.String())
		}
		if err = droppedTo(threads, uid, gid, groups); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("record did not drop its privileges within 10 s: %v\n%s", err, rec.stderr.String())
		}
	}
	t.Logf("record (pid %d): %d threads, all uid %d gid %d groups %v, CapEff/CapPrm/CapAmb 0, CapBnd %s",
		pid, len(threads), uid, gid, groups, threads[0].capBnd)

	const pings = 3
	pair.Exec(t, pair.NSA, "ping", "-c", strconv.Itoa(pings), "-i", "0.2", "-W", "2", "127.0.0.1")
	rec.stop(t)

	if want := "privileges dropped: running as nobody (uid " + nobody.Uid; !strings.Contains(rec.stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, rec.stderr.String())
	}
	events, stats := readRecording(t, rec.file)
	loopback := netip.MustParseAddr("127.0.0.1")
	var echoes int
	for _, e := range events {
		proto, src, dst, _, ok := ipv4(e.data)
		if !ok || proto != 1 || src != loopback || dst != loopback {
			t.Errorf("event at %s of %d bytes is not ICMP on 127.0.0.1", e.meta.Hook, len(e.data))
			continue
		}
		if e.meta.NetNS != pair.InodeA || e.iface.Name != "lo" {
			t.Errorf("event at %s on %q in netns %d, want lo in %d", e.meta.Hook, e.iface.Name, e.meta.NetNS, pair.InodeA)
		}
		echoes++
	}
	// A request and a reply per ping, each at both hooks.
	if echoes < 4*pings {
		t.Errorf("%d ICMP events recorded after the drop, want at least %d\n%s", echoes, 4*pings, rec.stderr.String())
	}
	if len(stats) == 0 {
		t.Error("no interface statistics: the loss counters were not read after the drop")
	}
	for _, p := range []string{rec.file, filepath.Join(filepath.Dir(rec.file), "ready")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
}

// TestRecordDropUnknownUser: an unknown -Z user is a usage error found
// before the output is created or anything is loaded.
func TestRecordDropUnknownUser(t *testing.T) {
	bin := testenv.BuildCommand(t, "record")
	out := filepath.Join(t.TempDir(), "rec.pcapng")
	status, msg := runRecordStatus(t, exec.Command(bin, "-Z", "pathcap-no-such-user", "-w", out))
	if status != 2 || !strings.Contains(msg, `-Z "pathcap-no-such-user": no such user`) {
		t.Errorf("exit status %d, want 2:\n%s", status, msg)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the output was created: %v", err)
	}
	if strings.Contains(msg, "hooks attached") {
		t.Errorf("hooks were attached:\n%s", msg)
	}
}

// runRecordStatus runs cmd and returns its exit status and combined output;
// it fails t if cmd could not be run at all.
func runRecordStatus(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee) && ee.Exited():
		return ee.ExitCode(), out.String()
	}
	t.Fatalf("%v: %v\n%s", cmd.Args, err, out.String())
	return -1, ""
}

// copyForNobody copies the binary bin into a fresh directory that every
// user may enter, so that it can be run as nobody, and returns its path.
func copyForNobody(t *testing.T, bin string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pathcap-bin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(dir, filepath.Base(bin))
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
