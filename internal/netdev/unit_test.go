package netdev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nlMsg builds one netlink message with the given header fields and
// payload, padded to the netlink alignment.
func nlMsg(typ, flags uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, nlmsgHdrLen, nlmAlign(nlmsgHdrLen+len(payload)))
	ne := binary.NativeEndian
	ne.PutUint32(b[0:4], uint32(nlmsgHdrLen+len(payload)))
	ne.PutUint16(b[4:6], typ)
	ne.PutUint16(b[6:8], flags)
	ne.PutUint32(b[8:12], seq)
	b = append(b, payload...)
	return b[:cap(b)]
}

func rtAttr(typ uint16, val []byte) []byte {
	b := make([]byte, rtAttrLen, nlmAlign(rtAttrLen+len(val)))
	binary.NativeEndian.PutUint16(b[0:2], uint16(rtAttrLen+len(val)))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	b = append(b, val...)
	return b[:cap(b)]
}

func linkMsg(seq, index uint32, name string, extra ...[]byte) []byte {
	p := make([]byte, ifInfoMsgLen)
	binary.NativeEndian.PutUint32(p[4:8], index)
	for _, a := range extra {
		p = append(p, a...)
	}
	if name != "" {
		p = append(p, rtAttr(unix.IFLA_IFNAME, append([]byte(name), 0))...)
	}
	return nlMsg(unix.RTM_NEWLINK, unix.NLM_F_MULTI, seq, p)
}

func errnoPayload(errno unix.Errno) []byte {
	p := make([]byte, 20)
	binary.NativeEndian.PutUint32(p[0:4], uint32(-int32(errno)))
	return p
}

func TestParseLinkDump(t *testing.T) {
	mtu := make([]byte, 4)
	binary.NativeEndian.PutUint32(mtu, 1500)
	var dgram []byte
	dgram = append(dgram, linkMsg(7, 1, "lo")...)
	dgram = append(dgram, linkMsg(7, 2, "veth-abc", rtAttr(unix.IFLA_MTU, mtu), rtAttr(unix.IFLA_ADDRESS, []byte{1, 2, 3, 4, 5, 6}))...)
	dgram = append(dgram, linkMsg(99, 3, "other-seq")...)
	dgram = append(dgram, linkMsg(7, 4, "")...)

	links := map[uint32]string{}
	done, err := parseLinkDump(dgram, 7, links)
	if err != nil || done {
		t.Fatalf("parseLinkDump = %v, %v; want false, nil", done, err)
	}
	want := map[uint32]string{1: "lo", 2: "veth-abc"}
	if fmt.Sprint(links) != fmt.Sprint(want) {
		t.Errorf("links = %v, want %v", links, want)
	}

	done, err = parseLinkDump(nlMsg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 7, make([]byte, 4)), 7, links)
	if err != nil || !done {
		t.Errorf("parseLinkDump(DONE) = %v, %v; want true, nil", done, err)
	}
}

func TestParseLinkDumpErrors(t *testing.T) {
	tests := []struct {
		name  string
		dgram []byte
		want  error
	}{
		{"error message", nlMsg(unix.NLMSG_ERROR, 0, 7, errnoPayload(unix.EPERM)), unix.EPERM},
		{"done with error", nlMsg(unix.NLMSG_DONE, unix.NLM_F_MULTI, 7, errnoPayload(unix.EBUSY)[:4]), unix.EBUSY},
		{"interrupted", nlMsg(unix.RTM_NEWLINK, unix.NLM_F_MULTI|unix.NLM_F_DUMP_INTR, 7, make([]byte, ifInfoMsgLen)), errDumpInterrupted},
		{"short header", []byte{1, 2, 3}, nil},
		{"length past end", func() []byte { b := linkMsg(7, 1, "lo"); return b[:len(b)-8] }(), nil},
		{"short ifinfomsg", nlMsg(unix.RTM_NEWLINK, 0, 7, make([]byte, 8)), nil},
		{"bad attribute", nlMsg(unix.RTM_NEWLINK, 0, 7, append(make([]byte, ifInfoMsgLen), 0xff, 0, 3, 0)), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseLinkDump(tc.dgram, 7, map[uint32]string{})
			if err == nil {
				t.Fatal("parseLinkDump succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("parseLinkDump = %v, want %v", err, tc.want)
			}
		})
	}
	// An acknowledgement (error code 0) is not an error.
	if _, err := parseLinkDump(nlMsg(unix.NLMSG_ERROR, 0, 7, make([]byte, 20)), 7, nil); err != nil {
		t.Errorf("parseLinkDump(ack) = %v", err)
	}
}

func TestLinkDumpRequest(t *testing.T) {
	b := linkDumpRequest(42)
	ne := binary.NativeEndian
	if len(b) != 32 || ne.Uint32(b[0:4]) != 32 || ne.Uint16(b[4:6]) != unix.RTM_GETLINK ||
		ne.Uint16(b[6:8]) != unix.NLM_F_REQUEST|unix.NLM_F_DUMP || ne.Uint32(b[8:12]) != 42 {
		t.Errorf("linkDumpRequest = % x", b)
	}
}

// writeFiles creates files below root; a value of "" creates a directory.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeInode reads a namespace inode from the content of a regular file.
func fakeInode(path string) (uint32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	return uint32(n), err
}

func TestDiscover(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"netns/blue":        "100",
		"netns/azure":       "100", // second name of the same namespace
		"netns/red":         "101",
		"netns/garbage":     "not a number",
		"docker/0123abc":    "102",
		"proc/1/ns/net":     "1",
		"proc/1/comm":       "systemd\n",
		"proc/50/ns/net":    "100",
		"proc/7/ns/net":     "200",
		"proc/7/comm":       "sshd\n",
		"proc/12/ns/net":    "300",
		"proc/12/comm":      "late\n",
		"proc/8/ns/net":     "300",
		"proc/8/comm":       "early\n",
		"proc/9/comm":       "no ns\n",
		"proc/13/ns/net":    "400",
		"proc/self/ns/net":  "1",
		"proc/net/dev":      "",
		"proc/60/ns/net":    "102",
		"proc/61/ns/net":    "1",
		"proc/62/ns/net":    "1",
		"proc/63/ns/net":    "1",
		"proc/64/ns/net":    "1",
		"proc/bogus/ns/net": "500",
	})
	d := &discoverer{
		netnsDirs: []string{filepath.Join(root, "netns"), filepath.Join(root, "docker"), filepath.Join(root, "missing")},
		procRoot:  filepath.Join(root, "proc"),
		inode:     fakeInode,
	}
	got := d.discover()
	checkDiscovered(t, root, got, map[uint32]struct {
		name  string
		paths []string
	}{
		1:   {"init", []string{"proc/1/ns/net", "proc/61/ns/net", "proc/62/ns/net", "proc/63/ns/net"}},
		100: {"azure", []string{"netns/azure", "netns/blue", "proc/50/ns/net"}},
		101: {"red", []string{"netns/red"}},
		102: {"0123abc", []string{"docker/0123abc", "proc/60/ns/net"}},
		200: {"pid 7 (sshd)", []string{"proc/7/ns/net"}},
		300: {"pid 8 (early)", []string{"proc/8/ns/net", "proc/12/ns/net"}},
		400: {"pid 13", []string{"proc/13/ns/net"}},
	})

	// With kthreadd visible, its namespace is the initial one, even if
	// PID 1 lives elsewhere.
	writeFiles(t, root, map[string]string{
		"proc/2/ns/net": "5",
		"proc/2/stat":   "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0",
		"proc/2/comm":   "kthreadd\n",
		"proc/3/ns/net": "5",
		"proc/3/stat":   "3 (weird ) name) S 2 0 0 0 -1 2129984 0 0",
	})
	got = d.discover()
	if n := got[5]; n == nil || n.name != "init" {
		t.Errorf("kthreadd namespace = %+v, want init", n)
	}
	if n := got[1]; n == nil || n.name != "pid 1 (systemd)" {
		t.Errorf("PID 1 namespace = %+v, want pid 1 (systemd)", n)
	}
	if !d.isKernelThread(3) || d.isKernelThread(7) || d.isKernelThread(99) {
		t.Error("isKernelThread misjudged a process")
	}
}

func checkDiscovered(t *testing.T, root string, got map[uint32]*nsInfo, want map[uint32]struct {
	name  string
	paths []string
}) {
	t.Helper()
	rel := func(paths []string) []string {
		out := make([]string, len(paths))
		for i, p := range paths {
			out[i], _ = filepath.Rel(root, p)
		}
		return out
	}
	if len(got) != len(want) {
		t.Errorf("discovered %d namespaces, want %d", len(got), len(want))
	}
	for ino, w := range want {
		g := got[ino]
		if g == nil {
			t.Errorf("namespace %d not discovered", ino)
			continue
		}
		if g.name != w.name || !slices.Equal(rel(g.paths), w.paths) {
			t.Errorf("namespace %d = %q %v, want %q %v", ino, g.name, rel(g.paths), w.name, w.paths)
		}
	}
}

func TestNamespaceInodeRejectsRegularFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NamespaceInode(p); !errors.Is(err, ErrNotNamespace) {
		t.Errorf("NamespaceInode(regular file) = %v, want ErrNotNamespace", err)
	}
	if _, err := NamespaceInode(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NamespaceInode(missing) = %v, want ErrNotExist", err)
	}
}

func TestCurrentNamespace(t *testing.T) {
	ino, err := CurrentNamespace()
	if err != nil {
		t.Fatalf("CurrentNamespace: %v", err)
	}
	link, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("net:[%d]", ino); link != want {
		t.Errorf("CurrentNamespace = %d, but /proc/self/ns/net is %s", ino, link)
	}
}

// TestDumpLinksOwnNamespace needs no privileges: it lists the devices of
// the test's own namespace and compares with the standard library.
func TestDumpLinksOwnNamespace(t *testing.T) {
	ino, err := CurrentNamespace()
	if err != nil {
		t.Fatal(err)
	}
	links, err := listLinks([]string{"/proc/self/ns/net"}, ino)
	if err != nil {
		t.Fatalf("listLinks: %v", err)
	}
	ifs, err := netInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(links) != fmt.Sprint(ifs) {
		t.Errorf("listLinks = %v, net.Interfaces = %v", links, ifs)
	}
	if _, err := listLinks([]string{"/proc/self/ns/net"}, ino+1); err == nil {
		t.Error("listLinks accepted a path to another namespace")
	}
}

// netInterfaces returns the devices of the current namespace according to
// the standard library.
func netInterfaces() (map[uint32]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make(map[uint32]string, len(ifs))
	for _, i := range ifs {
		out[uint32(i.Index)] = i.Name
	}
	return out, nil
}

// fakeWorld is a scripted set of namespaces for Resolver unit tests.
type fakeWorld struct {
	mu      sync.Mutex
	nss     map[uint32]*nsInfo
	devs    map[uint32]map[uint32]string
	now     time.Time
	scans   int
	listing map[uint32]int
}

func newFakeResolver(w *fakeWorld, interval time.Duration) *Resolver {
	r := &Resolver{
		interval: interval,
		nss:      make(map[uint32]*namespace),
		discover: func() map[uint32]*nsInfo {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.scans++
			out := make(map[uint32]*nsInfo, len(w.nss))
			for k, v := range w.nss {
				c := *v
				out[k] = &c
			}
			return out
		},
		list: func(paths []string, ino uint32) (map[uint32]string, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.listing[ino]++
			d, ok := w.devs[ino]
			if !ok {
				return nil, errors.New("no such namespace")
			}
			if !slices.Equal(paths, w.nss[ino].paths) {
				return nil, errors.New("stale path")
			}
			out := make(map[uint32]string, len(d))
			for k, v := range d {
				out[k] = v
			}
			return out, nil
		},
		now: func() time.Time {
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.now
		},
	}
	r.init()
	return r
}

func (w *fakeWorld) advance(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.now = w.now.Add(d)
}

func (w *fakeWorld) set(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f()
}

func (w *fakeWorld) counts(ino uint32) (scans, lists int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.scans, w.listing[ino]
}

func TestResolverCachingAndRateLimit(t *testing.T) {
	w := &fakeWorld{
		nss: map[uint32]*nsInfo{
			1:  {name: "init", paths: []string{"/proc/1/ns/net"}},
			10: {name: "blue", paths: []string{"/run/netns/blue"}},
		},
		devs: map[uint32]map[uint32]string{
			1:  {1: "lo", 2: "eth0"},
			10: {1: "lo", 2: "veth0"},
		},
		now:     time.Unix(1000, 0),
		listing: map[uint32]int{},
	}
	r := newFakeResolver(w, time.Second)
	defer r.Close()

	check := func(ns, idx uint32, want string) {
		t.Helper()
		got, ok := r.DeviceName(ns, idx)
		if ok != (want != "") || got != want {
			t.Errorf("DeviceName(%d, %d) = %q, %v; want %q", ns, idx, got, ok, want)
		}
	}
	check(1, 2, "eth0")
	check(10, 2, "veth0")
	check(10, 1, "lo")
	if got := r.NamespaceName(10); got != "blue" {
		t.Errorf("NamespaceName(10) = %q", got)
	}
	if scans, lists := w.counts(10); scans != 1 || lists != 1 {
		t.Errorf("after start: %d scans, %d lists of ns 10; want 1, 1", scans, lists)
	}

	// A device appears. Misses within the interval do not relist.
	w.set(func() { w.devs[10][3] = "late0" })
	for range 100 {
		check(10, 3, "")
	}
	if _, lists := w.counts(10); lists != 1 {
		t.Errorf("misses within the interval listed ns 10 %d times", lists)
	}
	w.advance(time.Second)
	check(10, 3, "late0")
	check(10, 99, "")
	if _, lists := w.counts(10); lists != 2 {
		t.Errorf("ns 10 listed %d times, want 2", lists)
	}

	// A device disappears: its name is kept; a rename is picked up.
	w.set(func() { w.devs[10] = map[uint32]string{1: "lo", 2: "renamed"} })
	w.advance(time.Second)
	check(10, 99, "")
	check(10, 3, "late0")
	check(10, 2, "renamed")

	// An unknown namespace triggers at most one scan per interval.
	if got := r.NamespaceName(20); got != "net:[20]" {
		t.Errorf("NamespaceName(20) = %q", got)
	}
	scans, _ := w.counts(0)
	w.set(func() {
		w.nss[20] = &nsInfo{name: "pid 42 (nginx)", paths: []string{"/proc/42/ns/net"}}
		w.devs[20] = map[uint32]string{5: "eth0"}
	})
	for range 100 {
		check(20, 5, "")
		if got := r.NamespaceName(20); got != "net:[20]" {
			t.Fatalf("NamespaceName(20) = %q before the interval elapsed", got)
		}
	}
	if s, _ := w.counts(0); s != scans {
		t.Errorf("misses within the interval scanned %d times", s-scans)
	}
	w.advance(time.Second)
	check(20, 5, "eth0")
	if got := r.NamespaceName(20); got != "pid 42 (nginx)" {
		t.Errorf("NamespaceName(20) = %q", got)
	}

	r.Close()
	check(1, 2, "")
	if got := r.NamespaceName(1); got != "net:[1]" {
		t.Errorf("NamespaceName after Close = %q", got)
	}
	r.Close()
}

func TestResolverStalePath(t *testing.T) {
	w := &fakeWorld{
		nss:     map[uint32]*nsInfo{30: {name: "pid 5 (a)", paths: []string{"/proc/5/ns/net"}}},
		devs:    map[uint32]map[uint32]string{30: {1: "lo"}},
		now:     time.Unix(1000, 0),
		listing: map[uint32]int{},
	}
	r := newFakeResolver(w, time.Second)
	defer r.Close()
	// The process exits; another one now holds the namespace.
	w.set(func() {
		w.nss[30] = &nsInfo{name: "pid 6 (b)", paths: []string{"/proc/6/ns/net"}}
		w.devs[30][2] = "eth1"
	})
	w.advance(time.Second)
	if got, ok := r.DeviceName(30, 2); !ok || got != "eth1" {
		t.Errorf("DeviceName(30, 2) = %q, %v", got, ok)
	}
	if got := r.NamespaceName(30); got != "pid 6 (b)" {
		t.Errorf("NamespaceName(30) = %q", got)
	}
	// Initial listing, the failed one with the stale path, and the retry.
	if _, lists := w.counts(30); lists != 3 {
		t.Errorf("ns 30 listed %d times, want 3", lists)
	}
}

func TestResolverConcurrent(t *testing.T) {
	w := &fakeWorld{
		nss:     map[uint32]*nsInfo{1: {name: "init"}},
		devs:    map[uint32]map[uint32]string{1: {1: "lo"}},
		now:     time.Unix(1000, 0),
		listing: map[uint32]int{},
	}
	r := newFakeResolver(w, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				idx := uint32(i%7 + 1)
				if g == 0 && i%50 == 0 {
					w.set(func() { w.devs[1][idx+10] = fmt.Sprintf("dev%d", idx+10) })
				}
				r.DeviceName(1, idx)
				r.DeviceName(1, idx+10)
				r.NamespaceName(uint32(i % 3))
			}
		})
	}
	wg.Wait()
	if got, ok := r.DeviceName(1, 1); !ok || got != "lo" {
		t.Errorf("DeviceName(1, 1) = %q, %v", got, ok)
	}
	r.Close()
}
