package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/netdev"
)

// filters turns the filter options into the recorder's filter: the
// compiled expression and the metadata conditions. It loads nothing into
// the kernel; errors in what the user wrote are usage errors.
func (o options) filters() (*capture.Filter, capture.Match, error) {
	var m capture.Match
	var err error
	if o.mark != "" {
		if m.Mark, m.MarkMask, err = parseMark(o.mark); err != nil {
			return nil, m, usagef("--mark %q: %v (want VALUE or VALUE/MASK, e.g. 0x10 or 0x10/0xf0)", o.mark, err)
		}
	}
	if o.pid < 0 || o.pid > math.MaxUint32 {
		return nil, m, usagef("--pid %d out of range", o.pid)
	}
	m.PID = uint32(o.pid)

	nsPath := ""
	if o.netns != "" {
		if m.NetNS, nsPath, err = resolveNetns(o.netns); err != nil {
			return nil, m, usagef("--netns %q: %v (want a path such as /proc/PID/ns/net or /run/netns/NAME, a name under /run/netns, or an inode number)", o.netns, err)
		}
	}
	if o.ifname != "" && o.ifname != "any" {
		if m.NetNS == 0 {
			// A device index means something only within one namespace:
			// the one record runs in, unless --netns names another.
			if m.NetNS, err = netdev.CurrentNamespace(); err != nil {
				return nil, m, fmt.Errorf("find own network namespace: %w", err)
			}
		}
		if m.Ifindex, err = deviceIndex(o.ifname, nsPath); err != nil {
			return nil, m, usagef("--ifname %q: %v", o.ifname, err)
		}
	}

	if o.filter == "" {
		return nil, m, nil
	}
	f, err := capture.CompileFilter(o.filter)
	if errors.Is(err, capture.ErrFilter) {
		return nil, m, usageError{err}
	}
	return f, m, err
}

// parseMark parses VALUE or VALUE/MASK, each decimal, hex (0x) or octal
// (0), with MASK defaulting to all ones.
func parseMark(s string) (value, mask uint32, err error) {
	v, m, hasMask := strings.Cut(s, "/")
	value64, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("parse value: %w", err)
	}
	mask64 := uint64(math.MaxUint32)
	if hasMask {
		if mask64, err = strconv.ParseUint(m, 0, 32); err != nil {
			return 0, 0, fmt.Errorf("parse mask: %w", err)
		}
		if mask64 == 0 {
			return 0, 0, errors.New("mask 0 matches every packet")
		}
	}
	if value64&^mask64 != 0 {
		return 0, 0, fmt.Errorf("value %#x has bits outside mask %#x, so nothing would match", value64, mask64)
	}
	return uint32(value64), uint32(mask64), nil
}

// resolveNetns returns the inode of the network namespace named by s (a
// namespace file, a name under /run/netns or an inode number) and a path
// that refers to it, for entering it.
func resolveNetns(s string) (inode uint32, path string, err error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		path, err := findNetns(uint32(n))
		if err != nil {
			return 0, "", err
		}
		return uint32(n), path, nil
	}
	path = s
	if !strings.Contains(s, "/") {
		path = filepath.Join("/run/netns", s)
	}
	inode, err = netdev.NamespaceInode(path)
	return inode, path, err
}

// findNetns finds a file that refers to the network namespace with the
// given inode: a name under /run/netns, or a process in it.
func findNetns(inode uint32) (string, error) {
	var candidates []string
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			candidates = append(candidates, filepath.Join("/run/netns", e.Name()))
		}
	}
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err == nil {
				candidates = append(candidates, filepath.Join("/proc", e.Name(), "ns", "net"))
			}
		}
	}
	for _, c := range candidates {
		if n, err := netdev.NamespaceInode(c); err == nil && n == inode {
			return c, nil
		}
	}
	return "", fmt.Errorf("no network namespace with inode %d (none under /run/netns, no process in it)", inode)
}

// deviceIndex returns the index of the device called name in the network
// namespace at nsPath, or in the current one if nsPath is empty.
func deviceIndex(name, nsPath string) (uint32, error) {
	if nsPath == "" {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			return 0, err
		}
		return uint32(ifc.Index), nil
	}
	type result struct {
		index uint32
		err   error
	}
	done := make(chan result, 1)
	// Enter the namespace on a thread of its own that is never handed back
	// to the Go scheduler: it ends with this goroutine.
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(nsPath)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("enter %s: %w", nsPath, err)}
			return
		}
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			done <- result{err: fmt.Errorf("in %s: %w", nsPath, err)}
			return
		}
		done <- result{index: uint32(ifc.Index)}
	}()
	r := <-done
	return r.index, r.err
}
