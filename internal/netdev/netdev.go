// Package netdev names network devices and network namespaces as seen by
// kernel hooks, which identify a device by the inode of its network
// namespace (net->ns.inum) and its ifindex.
//
// A Resolver discovers namespaces from the bind mounts in /run/netns and
// from /proc/PID/ns/net of every process, and lists the devices of each
// namespace with a netlink RTM_GETLINK dump issued from a dedicated, locked
// OS thread that enters the namespace with setns(2) and leaves it again, so
// callers' threads never change namespace. Entering other namespaces needs
// CAP_SYS_ADMIN; without it only the caller's own namespace can be listed.
//
// Namespaces are named, in order of preference:
//
//   - NAME, for a namespace bound at /run/netns/NAME (the lexically
//     smallest name if there are several);
//   - "init", for the initial namespace: that of the kernel threads, seen
//     through kthreadd (PID 2), or if that is not visible (in a container
//     with its own PID namespace) that of PID 1;
//   - "pid N (COMM)", after the lowest PID in the namespace and its command
//     name;
//   - "net:[INODE]", as readlink(2) shows it, for a namespace not found.
//
// Namespaces held only by open file descriptors, bind mounts outside the
// configured directories, or individual threads that called setns(2) are
// not discovered.
package netdev

import (
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultRefreshInterval is the default minimum time between two refreshes
// of the device list of one namespace, and between two scans for new
// namespaces, triggered by failed lookups.
const DefaultRefreshInterval = 500 * time.Millisecond

// DefaultNetnsDir is where iproute2 binds named network namespaces.
const DefaultNetnsDir = "/run/netns"

// Option configures a Resolver.
type Option func(*Resolver)

// WithRefreshInterval sets the minimum time between refreshes triggered by
// failed lookups; see DefaultRefreshInterval. A zero or negative interval
// refreshes on every miss.
func WithRefreshInterval(d time.Duration) Option {
	return func(r *Resolver) { r.interval = d }
}

// WithNetnsDirs replaces the directories searched for named namespaces
// (default DefaultNetnsDir), e.g. to add /run/docker/netns. Earlier
// directories take precedence in naming.
func WithNetnsDirs(dirs ...string) Option {
	return func(r *Resolver) { r.netnsDirs = slices.Clone(dirs) }
}

// Resolver maps (namespace inode, ifindex) to device names and namespace
// inodes to namespace names. Results are cached; a lookup that misses
// triggers a rate-limited refresh of the namespace concerned, or a scan for
// new namespaces if the namespace is unknown. Names of devices and
// namespaces that disappear are kept, so that late events still resolve;
// a device that is renamed resolves to its new name after a refresh.
//
// A Resolver is safe for concurrent use.
type Resolver struct {
	interval  time.Duration
	netnsDirs []string

	// Replaced in tests.
	discover func() map[uint32]*nsInfo
	list     func(paths []string, ino uint32) (map[uint32]string, error)
	now      func() time.Time

	// mu guards nss and closed. Device maps are never modified once
	// published, so readers only need the read lock.
	mu     sync.RWMutex
	nss    map[uint32]*namespace
	closed bool

	// devices is every namespace's devices in one map, by
	// devKey(netns, ifindex), replaced (under mu) whenever a device map
	// is, and nil once closed: DeviceName's lock-free first look, which
	// is on the recorder's path for every event.
	devices atomic.Pointer[map[uint64]string]

	// refreshMu serializes refreshes and guards lastScan and the
	// refresh bookkeeping in namespace.
	refreshMu sync.Mutex
	lastScan  time.Time
}

// namespace is the cached state of one network namespace.
type namespace struct {
	// Guarded by Resolver.mu.
	name  string
	paths []string
	devs  map[uint32]string // copied on write

	// Guarded by Resolver.refreshMu.
	lastList time.Time
	listed   bool
}

// NewResolver returns a Resolver that has scanned the namespaces present
// and listed their devices. Errors listing individual namespaces (for lack
// of privileges, or because they vanished) are not fatal: their devices are
// looked up again on a miss.
func NewResolver(opts ...Option) *Resolver {
	r := &Resolver{
		interval:  DefaultRefreshInterval,
		netnsDirs: []string{DefaultNetnsDir},
		list:      listLinks,
		now:       time.Now,
		nss:       make(map[uint32]*namespace),
	}
	for _, o := range opts {
		o(r)
	}
	d := &discoverer{netnsDirs: r.netnsDirs, procRoot: "/proc", inode: NamespaceInode}
	r.discover = d.discover
	r.init()
	return r
}

// init performs the initial scan and listing.
func (r *Resolver) init() {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	now := r.now()
	r.scan(now)
	r.mu.RLock()
	inodes := slices.Collect(maps.Keys(r.nss))
	r.mu.RUnlock()
	for _, ino := range inodes {
		r.listNamespace(ino, now)
	}
}

// DeviceName returns the name of the device with the given ifindex in the
// network namespace with the given inode.
func (r *Resolver) DeviceName(netns, ifindex uint32) (string, bool) {
	if devs := r.devices.Load(); devs != nil {
		if name, ok := (*devs)[devKey(netns, ifindex)]; ok {
			return name, true
		}
	}
	if name, ok, closed := r.cachedDevice(netns, ifindex); ok || closed {
		return name, ok
	}
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	// Another goroutine may have refreshed while this one waited.
	if name, ok, closed := r.cachedDevice(netns, ifindex); ok || closed {
		return name, ok
	}
	now := r.now()
	r.mu.RLock()
	_, known := r.nss[netns]
	r.mu.RUnlock()
	if !known {
		if !r.scanDue(now) {
			return "", false
		}
		r.scan(now)
	}
	r.listNamespace(netns, now)
	name, ok, _ := r.cachedDevice(netns, ifindex)
	return name, ok
}

// NamespaceName returns a human-readable name for the network namespace
// with the given inode, as described in the package documentation. It
// returns "net:[INODE]" for a namespace that cannot be found.
func (r *Resolver) NamespaceName(netns uint32) string {
	if name, ok, closed := r.cachedNamespace(netns); ok || closed {
		return nameOr(name, ok, netns)
	}
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()
	if name, ok, closed := r.cachedNamespace(netns); ok || closed {
		return nameOr(name, ok, netns)
	}
	if now := r.now(); r.scanDue(now) {
		r.scan(now)
	}
	name, ok, _ := r.cachedNamespace(netns)
	return nameOr(name, ok, netns)
}

// Close releases the cached names. Lookups after Close fail, and
// NamespaceName returns the "net:[INODE]" form. Close may be called more
// than once.
func (r *Resolver) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.nss = nil
	r.devices.Store(nil)
}

func nameOr(name string, ok bool, netns uint32) string {
	if ok {
		return name
	}
	return "net:[" + strconv.FormatUint(uint64(netns), 10) + "]"
}

func (r *Resolver) cachedDevice(netns, ifindex uint32) (name string, ok, closed bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if ns := r.nss[netns]; ns != nil {
		name, ok = ns.devs[ifindex]
	}
	return name, ok, r.closed
}

func (r *Resolver) cachedNamespace(netns uint32) (name string, ok, closed bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if ns := r.nss[netns]; ns != nil {
		return ns.name, true, r.closed
	}
	return "", false, r.closed
}

// scanDue reports whether a namespace scan may run at now. The caller
// holds refreshMu.
func (r *Resolver) scanDue(now time.Time) bool {
	return r.lastScan.IsZero() || now.Sub(r.lastScan) >= r.interval
}

// scan discovers namespaces and merges them into the cache. The caller
// holds refreshMu.
func (r *Resolver) scan(now time.Time) {
	r.lastScan = now
	found := r.discover()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	for ino, info := range found {
		if ns := r.nss[ino]; ns != nil {
			ns.name = info.name
			ns.paths = info.paths
			continue
		}
		r.nss[ino] = &namespace{name: info.name, paths: info.paths}
	}
}

// listNamespace refreshes the device list of a known namespace unless it
// was refreshed less than an interval ago. If listing fails because the
// recorded paths went stale, it rescans (rate-limited) and retries once.
// The caller holds refreshMu.
func (r *Resolver) listNamespace(netns uint32, now time.Time) {
	r.mu.RLock()
	ns := r.nss[netns]
	var paths []string
	if ns != nil {
		paths = ns.paths
	}
	r.mu.RUnlock()
	if ns == nil || (ns.listed && now.Sub(ns.lastList) < r.interval) {
		return
	}
	ns.lastList, ns.listed = now, true
	devs, err := r.list(paths, netns)
	if err != nil && r.scanDue(now) {
		r.scan(now)
		r.mu.RLock()
		retry := !slices.Equal(paths, ns.paths)
		paths = ns.paths
		r.mu.RUnlock()
		if retry {
			devs, err = r.list(paths, netns)
		}
	}
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	merged := make(map[uint32]string, len(ns.devs)+len(devs))
	maps.Copy(merged, ns.devs)
	maps.Copy(merged, devs)
	ns.devs = merged
	r.publishDevices()
}

func devKey(netns, ifindex uint32) uint64 { return uint64(netns)<<32 | uint64(ifindex) }

// publishDevices replaces the devices map with one made from every
// namespace's. The caller holds mu for writing.
func (r *Resolver) publishDevices() {
	if r.closed {
		return
	}
	n := 0
	for _, ns := range r.nss {
		n += len(ns.devs)
	}
	all := make(map[uint64]string, n)
	for ino, ns := range r.nss {
		for ifindex, name := range ns.devs {
			all[devKey(ino, ifindex)] = name
		}
	}
	r.devices.Store(&all)
}
