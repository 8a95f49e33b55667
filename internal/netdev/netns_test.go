package netdev

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireNetnsTools skips the test when it cannot create namespaces, or
// fails it if the environment variable CI is set, since CI must run it.
func requireNetnsTools(t *testing.T) {
	t.Helper()
	skip := func(reason string) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf("cannot run under CI: %s", reason)
		}
		t.Skipf("skipping: %s", reason)
	}
	if os.Geteuid() != 0 {
		skip("creating network namespaces requires root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skip("the ip command (iproute2) is not installed")
	}
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// addNetns creates a named namespace "pcX-<random>" that is deleted when
// the test ends, and returns its name and inode.
func addNetns(t *testing.T, x string) (string, uint32) {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "pc" + x + "-" + hex.EncodeToString(b[:])
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	ino, err := NamespaceInode(filepath.Join(DefaultNetnsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return name, ino
}

// ifindex returns the ifindex of a device in a named namespace.
func ifindex(t *testing.T, netns, dev string) uint32 {
	t.Helper()
	out := run(t, "ip", "-n", netns, "-o", "link", "show", "dev", dev)
	idx, _, ok := strings.Cut(out, ":")
	n, err := strconv.ParseUint(idx, 10, 32)
	if !ok || err != nil {
		t.Fatalf("cannot parse ifindex of %s in %s from %q", dev, netns, out)
	}
	return uint32(n)
}

// threadNamespaces returns the network namespace of every thread of the
// process.
func threadNamespaces(t *testing.T) map[string]string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string)
	for _, task := range tasks {
		link, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns/net"))
		if err == nil {
			out[task.Name()] = link
		}
	}
	return out
}

func wantDevice(t *testing.T, r *Resolver, netns, idx uint32, want string) {
	t.Helper()
	got, ok := r.DeviceName(netns, idx)
	if !ok || got != want {
		t.Errorf("DeviceName(%d, %d) = %q, %v; want %q", netns, idx, got, ok, want)
	}
}

func TestResolverVethPair(t *testing.T) {
	requireNetnsTools(t)
	nameA, inoA := addNetns(t, "A")
	nameB, inoB := addNetns(t, "B")
	run(t, "ip", "link", "add", "a0", "netns", nameA, "type", "veth", "peer", "name", "b0", "netns", nameB)
	idxA, idxB := ifindex(t, nameA, "a0"), ifindex(t, nameB, "b0")
	t.Logf("%s (net:[%d]) a0 ifindex %d; %s (net:[%d]) b0 ifindex %d", nameA, inoA, idxA, nameB, inoB, idxB)

	self, err := CurrentNamespace()
	if err != nil {
		t.Fatal(err)
	}
	r := NewResolver()
	defer r.Close()

	wantDevice(t, r, inoA, idxA, "a0")
	wantDevice(t, r, inoB, idxB, "b0")
	wantDevice(t, r, inoA, 1, "lo")
	wantDevice(t, r, inoB, 1, "lo")
	if idxA == idxB {
		// The interesting case: one ifindex, two devices.
		wantDevice(t, r, inoA, idxB, "a0")
		wantDevice(t, r, inoB, idxA, "b0")
	}
	if _, ok := r.DeviceName(inoA, 999); ok {
		t.Error("DeviceName resolved a missing ifindex")
	}
	if got := r.NamespaceName(inoA); got != nameA {
		t.Errorf("NamespaceName(%d) = %q, want %q", inoA, got, nameA)
	}
	if got := r.NamespaceName(inoB); got != nameB {
		t.Errorf("NamespaceName(%d) = %q, want %q", inoB, got, nameB)
	}

	// The resolver's own namespace resolves like the standard library
	// sees it.
	ifs, err := netInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	for idx, name := range ifs {
		wantDevice(t, r, self, idx, name)
	}
	if comm, _ := os.ReadFile("/proc/2/comm"); strings.TrimSpace(string(comm)) != "kthreadd" {
		t.Log("kthreadd not visible; not checking the name of the initial namespace")
	} else if init, err := NamespaceInode("/proc/2/ns/net"); err == nil {
		if got := r.NamespaceName(init); got != "init" {
			t.Errorf("NamespaceName(%d) = %q, want init", init, got)
		}
	}
	t.Logf("own namespace net:[%d] is %q with %d devices", self, r.NamespaceName(self), len(ifs))
}

func TestResolverLateDevice(t *testing.T) {
	requireNetnsTools(t)
	nameA, inoA := addNetns(t, "A")
	nameB, inoB := addNetns(t, "B")

	slow := NewResolver(WithRefreshInterval(time.Hour))
	defer slow.Close()
	fast := NewResolver(WithRefreshInterval(10 * time.Millisecond))
	defer fast.Close()

	run(t, "ip", "link", "add", "late0", "netns", nameA, "type", "veth", "peer", "name", "late1", "netns", nameB)
	idxA, idxB := ifindex(t, nameA, "late0"), ifindex(t, nameB, "late1")

	// The rate limit holds back the refresh.
	if name, ok := slow.DeviceName(inoA, idxA); ok {
		t.Errorf("DeviceName found %q despite the rate limit", name)
	}

	deadline := time.Now().Add(2 * time.Second)
	for {
		a, okA := fast.DeviceName(inoA, idxA)
		b, okB := fast.DeviceName(inoB, idxB)
		if okA && okB {
			if a != "late0" || b != "late1" {
				t.Errorf("late devices resolved to %q, %q; want late0, late1", a, b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("late devices not found: %q %v, %q %v", a, okA, b, okB)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestResolverLateNamespace(t *testing.T) {
	requireNetnsTools(t)
	r := NewResolver(WithRefreshInterval(10 * time.Millisecond))
	defer r.Close()

	nameC, inoC := addNetns(t, "C")
	run(t, "ip", "-n", nameC, "link", "add", "c0", "type", "veth", "peer", "name", "c1")
	idx := ifindex(t, nameC, "c1")

	deadline := time.Now().Add(2 * time.Second)
	for {
		got, ok := r.DeviceName(inoC, idx)
		if ok {
			if got != "c1" {
				t.Errorf("DeviceName(%d, %d) = %q, want c1", inoC, idx, got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("device in a namespace created after start not found")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := r.NamespaceName(inoC); got != nameC {
		t.Errorf("NamespaceName(%d) = %q, want %q", inoC, got, nameC)
	}
}

// TestResolverProcessNamespace names a namespace that only a process holds.
func TestResolverProcessNamespace(t *testing.T) {
	requireNetnsTools(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("skipping: unshare is not installed")
	}
	cmd := exec.Command("unshare", "--net", "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	path := filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "ns/net")
	self, _ := CurrentNamespace()
	var ino uint32
	deadline := time.Now().Add(2 * time.Second)
	for {
		// unshare replaces itself with sleep once the namespace exists.
		comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "comm"))
		i, err := NamespaceInode(path)
		if err == nil && i != self && strings.TrimSpace(string(comm)) == "sleep" {
			ino = i
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child did not enter a new namespace: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := NewResolver()
	defer r.Close()
	want := "pid " + strconv.Itoa(cmd.Process.Pid) + " (sleep)"
	if got := r.NamespaceName(ino); got != want {
		t.Errorf("NamespaceName(%d) = %q, want %q", ino, got, want)
	}
	wantDevice(t, r, ino, 1, "lo")
}

// TestThreadsStayInNamespace checks that concurrent lookups never leave a
// thread of the process in a foreign namespace.
func TestThreadsStayInNamespace(t *testing.T) {
	requireNetnsTools(t)
	nameA, inoA := addNetns(t, "A")
	nameB, inoB := addNetns(t, "B")
	run(t, "ip", "link", "add", "a0", "netns", nameA, "type", "veth", "peer", "name", "b0", "netns", nameB)

	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	r := NewResolver(WithRefreshInterval(0))
	defer r.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			for i := range 50 {
				ns := inoA
				if (g+i)%2 == 1 {
					ns = inoB
				}
				// A missing ifindex forces a relist on every call.
				r.DeviceName(ns, 1000+uint32(i))
				if link, err := os.Readlink("/proc/thread-self/ns/net"); err != nil || link != self {
					t.Errorf("caller thread moved to %s (%v)", link, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for task, link := range threadNamespaces(t) {
		if link != self {
			t.Errorf("thread %s is in %s, want %s", task, link, self)
		}
	}
}
