package netdev

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotNamespace is returned by NamespaceInode for a file that is not a
// namespace file (a file on nsfs, such as /proc/PID/ns/net or a bind mount
// of one under /run/netns).
var ErrNotNamespace = errors.New("not a namespace file")

// NamespaceInode returns the inode number that identifies the namespace the
// file at path refers to, following symbolic links. It is the number shown
// by "readlink /proc/PID/ns/net" as net:[INODE] and the one BPF programs
// read from net->ns.inum.
func NamespaceInode(path string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat namespace %s: %w", path, err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return 0, fmt.Errorf("statfs namespace %s: %w", path, err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		return 0, fmt.Errorf("stat namespace %s: %w", path, ErrNotNamespace)
	}
	if st.Ino > math.MaxUint32 {
		return 0, fmt.Errorf("stat namespace %s: inode %d out of range", path, st.Ino)
	}
	return uint32(st.Ino), nil
}

// CurrentNamespace returns the inode of the network namespace of the
// calling process, as given by /proc/self/ns/net. Threads that changed
// namespace with setns(2) are not reflected.
func CurrentNamespace() (uint32, error) {
	return NamespaceInode("/proc/self/ns/net")
}

// Namespace naming.
const (
	// initName names the initial network namespace.
	initName = "init"
	// kthreaddPID is the PID of the kernel thread daemon in the initial
	// PID namespace.
	kthreaddPID = 2
	// pfKthread is the PF_KTHREAD process flag.
	pfKthread = 0x00200000
	// maxPaths bounds the number of /proc paths remembered per namespace;
	// later ones are used when processes exit.
	maxPaths = 4
)

// nsInfo is what discovery learns about a namespace.
type nsInfo struct {
	name  string
	paths []string // files referring to the namespace, best first
}

// discoverer finds network namespaces in named-namespace directories and
// in the process table.
type discoverer struct {
	netnsDirs []string
	procRoot  string
	inode     func(path string) (uint32, error)
}

// discover returns the namespaces found, keyed by inode. A namespace is
// named after its first entry in netnsDirs, else "init" if it is the
// initial namespace, else "pid N (comm)" after the lowest PID using it.
// The initial namespace is that of kthreadd (PID 2) if it is visible as a
// kernel thread, else that of PID 1. Unreadable entries are skipped.
func (d *discoverer) discover() map[uint32]*nsInfo {
	found := make(map[uint32]*nsInfo)
	add := func(path string, name func() string) {
		ino, err := d.inode(path)
		if err != nil {
			return
		}
		if n, ok := found[ino]; ok {
			if len(n.paths) < maxPaths {
				n.paths = append(n.paths, path)
			}
			return
		}
		found[ino] = &nsInfo{name: name(), paths: []string{path}}
	}
	for _, dir := range d.netnsDirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		// ReadDir sorts by name, so a namespace bound under several names
		// is named after the lexically smallest.
		for _, e := range ents {
			add(filepath.Join(dir, e.Name()), func() string { return e.Name() })
		}
	}
	// Kernel threads always run in the initial namespace, which makes
	// kthreadd the most reliable witness; PID 1 may be inaccessible or, in
	// a container, elsewhere.
	haveInit := false
	if d.isKernelThread(kthreaddPID) {
		path := d.nsPath(kthreaddPID)
		if _, err := d.inode(path); err == nil {
			haveInit = true
			add(path, func() string { return initName })
		}
	}
	for _, pid := range d.pids() {
		add(d.nsPath(pid), func() string {
			if pid == 1 && !haveInit {
				return initName
			}
			return d.pidName(pid)
		})
	}
	return found
}

// isKernelThread reports whether the process is a kernel thread, judging
// by the PF_KTHREAD bit of the flags field of /proc/PID/stat.
func (d *discoverer) isKernelThread(pid int) bool {
	b, err := os.ReadFile(filepath.Join(d.procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The command name may contain spaces and parentheses; the fields
	// after it are state, ppid, pgrp, session, tty_nr, tpgid and flags.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 7 {
		return false
	}
	flags, err := strconv.ParseUint(f[6], 10, 32)
	return err == nil && flags&pfKthread != 0
}

// pids returns the numeric entries of procRoot in ascending order.
func (d *discoverer) pids() []int {
	ents, err := os.ReadDir(d.procRoot)
	if err != nil {
		return nil
	}
	pids := make([]int, 0, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids
}

func (d *discoverer) nsPath(pid int) string {
	return filepath.Join(d.procRoot, strconv.Itoa(pid), "ns", "net")
}

// pidName formats "pid N (comm)", or "pid N" if comm is unreadable.
func (d *discoverer) pidName(pid int) string {
	name := "pid " + strconv.Itoa(pid)
	comm, err := os.ReadFile(filepath.Join(d.procRoot, strconv.Itoa(pid), "comm"))
	if c := strings.TrimSpace(string(comm)); err == nil && c != "" {
		name += " (" + c + ")"
	}
	return name
}

// listLinks returns the devices of the network namespace with the given
// inode, trying each path that refers to it in turn.
func listLinks(paths []string, ino uint32) (map[uint32]string, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("list links of net:[%d]: no path to namespace", ino)
	}
	var errs []error
	for _, p := range paths {
		links, err := listLinksAt(p, ino)
		if err == nil {
			return links, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// listLinksAt enters the namespace file at path on a dedicated, locked OS
// thread, dumps its links and returns to the original namespace. If the
// original namespace cannot be restored the thread stays locked, so the Go
// runtime terminates it instead of reusing it.
func listLinksAt(path string, ino uint32) (map[uint32]string, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat namespace %s: %w", path, err)
	}
	if st.Ino != uint64(ino) {
		// The process exited and its PID was reused, or the name was
		// rebound to another namespace.
		return nil, fmt.Errorf("open namespace %s: refers to net:[%d], not net:[%d]", path, st.Ino, ino)
	}

	type result struct {
		links map[uint32]string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		links, restored, err := listLinksOnThread(fd, ino)
		if restored {
			runtime.UnlockOSThread()
		}
		done <- result{links, err}
	}()
	r := <-done
	if r.err != nil {
		return nil, fmt.Errorf("list links of %s: %w", path, r.err)
	}
	return r.links, nil
}

// listLinksOnThread must run on a locked OS thread. It reports whether the
// thread is (still or again) in its original network namespace.
func listLinksOnThread(nsfd int, ino uint32) (links map[uint32]string, restored bool, err error) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, fmt.Errorf("open current namespace: %w", err)
	}
	defer unix.Close(orig)
	var st unix.Stat_t
	if err := unix.Fstat(orig, &st); err != nil {
		return nil, false, fmt.Errorf("stat current namespace: %w", err)
	}
	if st.Ino == uint64(ino) {
		links, err := dumpLinks()
		return links, true, err
	}
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		// setns failing leaves the thread where it was.
		return nil, true, fmt.Errorf("enter namespace: %w", err)
	}
	links, err = dumpLinks()
	if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
		return nil, false, errors.Join(err, fmt.Errorf("restore namespace: %w", rerr))
	}
	return links, true, err
}
