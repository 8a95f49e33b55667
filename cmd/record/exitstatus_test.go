package main_test

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/pcapng"
)

// mountTmpfs mounts a tmpfs with options opts on a fresh directory and
// unmounts it when t ends.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	testenv.Run(t, "mount", "-t", "tmpfs", "-o", opts, "pathcap-test", dir)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file into dir until its filesystem is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			return
		}
	}
}

// sharedDir returns a fresh directory under the system's temporary
// directory with mode perm, owned by uid.
func sharedDir(t *testing.T, perm os.FileMode, uid int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pathcap-out")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRecordExitStatuses provokes, for real, each failure that record
// checks before it loads anything, and checks the exit status, the message,
// that no output file was left and that no hook was attached: 2 for a
// --functions pattern that matches no kernel function, 3 without the
// privileges (as nobody, as nobody with CAP_BPF only, as root without
// CAP_BPF, -Z without root), 4 without kernel BTF (hidden in a mount
// namespace of its own), 5 for an output directory nobody may not write,
// a read-only filesystem and a full one.
func TestRecordExitStatuses(t *testing.T) {
	testenv.RequireRoot(t)
	setpriv := testenv.RequireTool(t, "setpriv")
	unshare := testenv.RequireTool(t, "unshare")
	bin := testenv.BuildCommand(t, "record")
	binNobody := copyForNobody(t, bin)
	// asNobody runs the binary as uid and gid 65534 with the capabilities
	// caps ("" for none at all).
	asNobody := func(caps string, args ...string) *exec.Cmd {
		a := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}
		if caps == "" {
			a = append(a, "--inh-caps=-all", "--bounding-set=-all")
		} else {
			a = append(a, "--inh-caps="+caps, "--ambient-caps="+caps)
		}
		return exec.Command(setpriv, append(append(a, binNobody), args...)...)
	}
	for _, tc := range []struct {
		name   string
		dir    func(t *testing.T) string // where the output goes
		cmd    func(out string) *exec.Cmd
		status int
		want   []string
		absent []string
	}{{
		name: "2 usage: --functions matches no kernel function",
		dir:  func(t *testing.T) string { return t.TempDir() },
		cmd: func(out string) *exec.Cmd {
			return exec.Command(bin, "--functions", "^pathcap_no_such_function$", "-w", out)
		},
		status: 2,
		want:   []string{`--functions "^pathcap_no_such_function$" matches none of the`},
	}, {
		name:   "3 permission: not root, no capability",
		dir:    func(t *testing.T) string { return sharedDir(t, 0o777, 0) },
		cmd:    func(out string) *exec.Cmd { return asNobody("", "-w", out) },
		status: 3,
		want:   []string{"permission denied", "uid 65534 lacks CAP_BPF (to create BPF maps and load programs) and CAP_PERFMON (", "setcap cap_bpf,cap_perfmon+ep"},
	}, {
		name:   "3 permission: CAP_BPF without CAP_PERFMON",
		dir:    func(t *testing.T) string { return sharedDir(t, 0o777, 0) },
		cmd:    func(out string) *exec.Cmd { return asNobody("+bpf", "-w", out) },
		status: 3,
		want:   []string{"uid 65534 lacks CAP_PERFMON (to load tracing programs"},
		absent: []string{"CAP_BPF ("},
	}, {
		name: "3 permission: root without CAP_BPF",
		dir:  func(t *testing.T) string { return t.TempDir() },
		cmd: func(out string) *exec.Cmd {
			return exec.Command(setpriv, "--bounding-set=-bpf,-sys_admin", bin, "-w", out)
		},
		status: 3,
		want:   []string{"uid 0 lacks CAP_BPF (", "bounding set"},
		absent: []string{"CAP_PERFMON ("},
	}, {
		name:   "3 permission: -Z without root",
		dir:    func(t *testing.T) string { return sharedDir(t, 0o777, 0) },
		cmd:    func(out string) *exec.Cmd { return asNobody("+bpf,+perfmon", "-Z", "nobody", "-w", out) },
		status: 3,
		want:   []string{"-Z nobody: record must start as root"},
	}, {
		name: "4 kernel: no BTF",
		dir:  func(t *testing.T) string { return t.TempDir() },
		cmd: func(out string) *exec.Cmd {
			// /sys/kernel/btf hidden under an empty tmpfs, in a mount
			// namespace of the command's own.
			return exec.Command(unshare, "--mount", "--propagation", "private", "--",
				"sh", "-c", `mount -t tmpfs -o size=64k pathcap-nobtf /sys/kernel/btf && exec "$@"`, "sh", bin, "-w", out)
		},
		status: 4,
		want:   []string{"kernel BTF not available", "CONFIG_DEBUG_INFO_BTF"},
	}, {
		name:   "5 output: directory not writable",
		dir:    func(t *testing.T) string { return sharedDir(t, 0o500, 65534) },
		cmd:    func(out string) *exec.Cmd { return asNobody("", "-w", out) },
		status: 5,
		want:   []string{"create output", "is not writable for uid 65534", "permission denied"},
	}, {
		name:   "5 output: read-only filesystem",
		dir:    func(t *testing.T) string { return mountTmpfs(t, "ro,size=4m") },
		cmd:    func(out string) *exec.Cmd { return exec.Command(bin, "-w", out) },
		status: 5,
		want:   []string{"create output", "read-only file system"},
	}, {
		name: "5 output: filesystem full",
		dir: func(t *testing.T) string {
			dir := mountTmpfs(t, "size=2m")
			fill(t, dir)
			return dir
		},
		cmd:    func(out string) *exec.Cmd { return exec.Command(bin, "-w", out) },
		status: 5,
		want:   []string{"create output", "filesystem full: 0 bytes free in"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(tc.dir(t), "rec.pcapng")
			start := time.Now()
			status, msg := runRecordStatus(t, tc.cmd(out))
			t.Logf("exit status %d after %v:\n%s", status, time.Since(start).Round(time.Millisecond), msg)
			if status != tc.status {
				t.Errorf("exit status %d, want %d", status, tc.status)
			}
			for _, s := range tc.want {
				if !strings.Contains(msg, s) {
					t.Errorf("the message lacks %q", s)
				}
			}
			for _, s := range append(tc.absent, "hooks attached") {
				if strings.Contains(msg, s) {
					t.Errorf("the message has %q", s)
				}
			}
			if _, err := os.Lstat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: %v, want no output file", out, err)
			}
		})
	}
}

// TestRecordOutputFillsUp records ICMP on a tmpfs of 1.5 MiB until it is
// full: record stops with exit status 5 and says why, and the blocks it
// wrote before stay in the file, readable.
func TestRecordOutputFillsUp(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.BuildCommand(t, "record")
	pair := testenv.NewVethPair(t)
	dir := mountTmpfs(t, "size=1536k")
	out := filepath.Join(dir, "rec.pcapng")
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(bin, "-w", out, "--ready-file", ready, "--duration", "60s", "-s", "1500",
		"--netns", pair.NSA, "--hooks", "net_dev_queue,netif_receive_skb", "icmp")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("record did not get ready: %s", stderr.String())
		}
	}
	// About 1,000 events of 1.4 KB fill the filesystem.
	flood := exec.Command("ip", "netns", "exec", pair.NSA, "ping", "-f", "-q", "-c", "3000", "-s", "1400", "127.0.0.1")
	if b, err := flood.CombinedOutput(); err != nil {
		t.Fatalf("ping -f: %v\n%s", err, b)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("record still runs 20 s after the filesystem filled up:\n%s", stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 5 {
		t.Errorf("record: %v, want exit status 5", err)
	}
	if !strings.Contains(stderr.String(), "no space left on device") {
		t.Errorf("stderr does not say the filesystem is full:\n%s", stderr.String())
	}
	t.Logf("stderr:\n%s", stderr.String())

	// What was written stays, block by block.
	packets, tail := readablePackets(t, out)
	if tail != nil {
		t.Logf("after %d packet blocks: %v (the block cut short by the full filesystem)", packets, tail)
	}
	if packets < 100 {
		t.Errorf("%d packet blocks readable in the full file, want the hundreds written before it filled up", packets)
	}
}

// readablePackets reads a recording that may end in a block cut short and
// returns the number of packet blocks read before the end, and the error
// that ended the reading if it was not the end of the file. It fails t if
// the file or its section header is unreadable.
func readablePackets(t *testing.T, path string) (int, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the recording is gone: %v", err)
	}
	defer f.Close()
	r, err := pcapng.NewReader(f)
	if err != nil {
		t.Fatalf("the recording's section header is unreadable: %v", err)
	}
	packets := 0
	for {
		typ, err := r.Next()
		if err == io.EOF {
			return packets, nil
		}
		if err != nil {
			return packets, err
		}
		if typ == pcapng.BlockEnhancedPacket {
			packets++
		}
	}
}
