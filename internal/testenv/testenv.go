// Package testenv holds helpers for tests that need root, tools or network
// namespaces: they skip with a reason when what they need is missing, and
// fail instead when the CI environment variable is set, so that CI can
// never pass by skipping.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// SkipOrFail skips t with the message, or fails it when CI is set.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI: "+format, args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot skips (or fails in CI) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root (BPF, network namespaces); run the tests as root")
	}
}

// RequireTool returns the path of a command, skipping (or failing in CI)
// when it is not installed.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		SkipOrFail(t, "%s not installed (make setup installs it): %v", name, err)
	}
	return p
}

// Run runs a command and fails t if it fails; it returns the combined output.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ModuleRoot returns the repository's top directory (where go.mod is).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BuildCommand builds ./cmd/NAME into a temporary directory and returns the
// binary's path.
func BuildCommand(t testing.TB, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/"+name)
	cmd.Dir = ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	return bin
}

// VethPair is two network namespaces joined by a veth pair, with A at
// 10.N.M.1/24 and B at 10.N.M.2/24.
type VethPair struct {
	NSA, NSB           string // namespace names (under /run/netns)
	DevA, DevB         string // device names, each in its namespace
	IPA, IPB           string
	InodeA, InodeB     uint32 // namespace inodes
	IfindexA, IfindexB uint32
}

var pairs atomic.Uint32

// NewVethPair creates a VethPair (needs root and iproute2) and removes it
// when t ends.
func NewVethPair(t testing.TB) *VethPair {
	t.Helper()
	RequireRoot(t)
	RequireTool(t, "ip")
	seq := pairs.Add(1)
	id := fmt.Sprintf("%d%d", os.Getpid()%10000, seq)
	subnet := fmt.Sprintf("10.%d.%d", 100+os.Getpid()%100, seq%250)
	p := &VethPair{
		NSA:  "pcta" + id,
		NSB:  "pctb" + id,
		DevA: "pcta" + id,
		DevB: "pctb" + id,
		IPA:  subnet + ".1",
		IPB:  subnet + ".2",
	}
	for _, ns := range []string{p.NSA, p.NSB} {
		Run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	Run(t, "ip", "link", "add", p.DevA, "netns", p.NSA, "type", "veth", "peer", "name", p.DevB, "netns", p.NSB)
	for _, side := range []struct{ ns, dev, ip string }{{p.NSA, p.DevA, p.IPA}, {p.NSB, p.DevB, p.IPB}} {
		Run(t, "ip", "-n", side.ns, "addr", "add", side.ip+"/24", "dev", side.dev)
		Run(t, "ip", "-n", side.ns, "link", "set", side.dev, "up")
		Run(t, "ip", "-n", side.ns, "link", "set", "lo", "up")
	}
	p.InodeA, p.InodeB = NamespaceInode(t, p.NSA), NamespaceInode(t, p.NSB)
	p.IfindexA, p.IfindexB = ifindex(t, p.NSA, p.DevA), ifindex(t, p.NSB, p.DevB)
	return p
}

// NamespaceInode returns the inode of /run/netns/NAME.
func NamespaceInode(t testing.TB, name string) uint32 {
	t.Helper()
	fi, err := os.Stat("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(fi.Sys().(*syscall.Stat_t).Ino)
}

func ifindex(t testing.TB, ns, dev string) uint32 {
	t.Helper()
	out := Run(t, "ip", "netns", "exec", ns, "cat", "/sys/class/net/"+dev+"/ifindex")
	n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(n)
}

// Exec runs a command in namespace ns and fails t if it fails.
func (p *VethPair) Exec(t testing.TB, ns string, name string, args ...string) string {
	t.Helper()
	return Run(t, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// SmallTmpfs mounts a tmpfs of the given size (mount's size=, e.g. "256k")
// on a new directory and returns it; it is unmounted when t ends. It needs
// root: a full file system in a test.
func SmallTmpfs(t testing.TB, size string) string {
	t.Helper()
	RequireRoot(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		SkipOrFail(t, "mount a tmpfs on %s: %v: %s", dir, err, strings.TrimSpace(string(out)))
	}
	// Registered after TempDir's removal, so it runs before it.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
