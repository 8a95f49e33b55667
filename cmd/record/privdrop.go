package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// identity is the account that -Z drops to once every hook is attached
// and the output is open.
type identity struct {
	spec   string // as given on the command line
	name   string // the account's name, "" for UID:GID without a passwd entry
	uid    int
	gid    int
	groups []int // supplementary groups (the primary group among them)
}

// String names the identity for messages: "nobody (uid 65534, gid 65534,
// groups 65534)".
func (id *identity) String() string {
	gs := make([]string, len(id.groups))
	for i, g := range id.groups {
		gs[i] = strconv.Itoa(g)
	}
	name := id.name
	if name == "" {
		name = id.spec
	}
	return fmt.Sprintf("%s (uid %d, gid %d, groups %s)", name, id.uid, id.gid, strings.Join(gs, ","))
}

// lookupIdentity resolves -Z's USER: an account name, a numeric uid that
// has a passwd entry (its primary and supplementary groups are used), or
// UID:GID for an account without one. Root is refused: dropping to it
// would drop nothing. Errors are usage errors (exit status 2).
func lookupIdentity(spec string) (*identity, error) {
	if spec == "" {
		return nil, usagef("-Z needs a user name, a uid or UID:GID")
	}
	if u, g, ok := strings.Cut(spec, ":"); ok {
		uid, err1 := strconv.ParseUint(u, 10, 31)
		gid, err2 := strconv.ParseUint(g, 10, 31)
		if err1 != nil || err2 != nil {
			return nil, usagef("-Z %q: want USER, UID or UID:GID (numbers)", spec)
		}
		id := &identity{spec: spec, uid: int(uid), gid: int(gid), groups: []int{int(gid)}}
		if acct, err := user.LookupId(u); err == nil {
			id.name = acct.Username
		}
		return id, checkNotRoot(id)
	}
	var acct *user.User
	var err error
	if _, nerr := strconv.ParseUint(spec, 10, 31); nerr == nil {
		acct, err = user.LookupId(spec)
	} else {
		acct, err = user.Lookup(spec)
	}
	if err != nil {
		var unknownUser user.UnknownUserError
		var unknownID user.UnknownUserIdError
		if errors.As(err, &unknownUser) || errors.As(err, &unknownID) {
			return nil, usagef("-Z %q: no such user (give a user name, a uid with a passwd entry, or UID:GID)", spec)
		}
		return nil, usagef("-Z %q: look the user up: %v", spec, err)
	}
	id := &identity{spec: spec, name: acct.Username}
	if id.uid, err = strconv.Atoi(acct.Uid); err != nil {
		return nil, usagef("-Z %q: uid %q is not a number", spec, acct.Uid)
	}
	if id.gid, err = strconv.Atoi(acct.Gid); err != nil {
		return nil, usagef("-Z %q: gid %q is not a number", spec, acct.Gid)
	}
	gids, err := acct.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("-Z %q: list the user's groups: %w", spec, err)
	}
	for _, g := range gids {
		n, err := strconv.Atoi(g)
		if err != nil {
			return nil, fmt.Errorf("-Z %q: group id %q is not a number", spec, g)
		}
		if !slices.Contains(id.groups, n) {
			id.groups = append(id.groups, n)
		}
	}
	if !slices.Contains(id.groups, id.gid) {
		id.groups = append(id.groups, id.gid)
	}
	return id, checkNotRoot(id)
}

// checkNotRoot refuses an identity that keeps uid or gid 0.
func checkNotRoot(id *identity) error {
	if id.uid == 0 || id.gid == 0 {
		return usagef("-Z %q: uid %d, gid %d: name an unprivileged account (e.g. nobody), not root", id.spec, id.uid, id.gid)
	}
	return nil
}

// drop switches the whole process to id: supplementary groups, group, then
// user. On Linux, Go applies each of these calls to every thread of the
// process. Leaving uid 0 makes the kernel clear the permitted, effective
// and ambient capability sets; drop then checks every thread's
// credentials (/proc/self/task/*/status) and fails if any thread kept
// another uid or gid or any effective or permitted capability.
func (id *identity) drop() error {
	if err := syscall.Setgroups(id.groups); err != nil {
		return fmt.Errorf("drop privileges to %s: setgroups: %w", id, err)
	}
	if err := syscall.Setgid(id.gid); err != nil {
		return fmt.Errorf("drop privileges to %s: setgid: %w", id, err)
	}
	if err := syscall.Setuid(id.uid); err != nil {
		return fmt.Errorf("drop privileges to %s: setuid: %w", id, err)
	}
	if err := id.verify(); err != nil {
		return fmt.Errorf("drop privileges to %s: %w", id, err)
	}
	return nil
}

// verify checks that every thread of the process runs as id with no
// effective or permitted capability.
func (id *identity) verify() error {
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		// No /proc: check the calling thread at least.
		return id.verifyThread()
	}
	for _, path := range tasks {
		st, err := readCreds(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread exited
		}
		if err != nil {
			return err
		}
		if err := st.check(id); err != nil {
			return fmt.Errorf("thread %s: %w", filepath.Base(filepath.Dir(path)), err)
		}
	}
	return nil
}

// verifyThread checks the calling thread's credentials with system calls.
func (id *identity) verifyThread() error {
	var c creds
	c.uid[0], c.uid[1], c.uid[2] = unix.Getresuid()
	c.gid[0], c.gid[1], c.gid[2] = unix.Getresgid()
	c.uid[3], c.gid[3] = c.uid[1], c.gid[1]
	eff, prm, err := capSets()
	if err != nil {
		return err
	}
	c.capEff, c.capPrm = eff, prm
	return c.check(id)
}

// creds are a thread's credentials as /proc/PID/task/TID/status shows them.
type creds struct {
	uid, gid       [4]int // real, effective, saved, filesystem
	capEff, capPrm uint64
}

// check compares c with id.
func (c creds) check(id *identity) error {
	for _, u := range c.uid {
		if u != id.uid {
			return fmt.Errorf("uids %v, want %d", c.uid, id.uid)
		}
	}
	for _, g := range c.gid {
		if g != id.gid {
			return fmt.Errorf("gids %v, want %d", c.gid, id.gid)
		}
	}
	if c.capEff != 0 || c.capPrm != 0 {
		return fmt.Errorf("capabilities left: effective %#x, permitted %#x (securebits may keep them across setuid)", c.capEff, c.capPrm)
	}
	return nil
}

// readCreds parses the Uid, Gid, CapEff and CapPrm lines of a status file.
func readCreds(path string) (creds, error) {
	var c creds
	f, err := os.Open(path)
	if err != nil {
		return c, err
	}
	defer f.Close()
	seen := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		switch key {
		case "Uid", "Gid":
			dst := &c.uid
			if key == "Gid" {
				dst = &c.gid
			}
			if len(fields) != 4 {
				return c, fmt.Errorf("%s: %s line %q", path, key, val)
			}
			for i, s := range fields {
				if dst[i], err = strconv.Atoi(s); err != nil {
					return c, fmt.Errorf("%s: %s line %q: %w", path, key, val, err)
				}
			}
			seen++
		case "CapEff", "CapPrm":
			if len(fields) != 1 {
				return c, fmt.Errorf("%s: %s line %q", path, key, val)
			}
			v, err := strconv.ParseUint(fields[0], 16, 64)
			if err != nil {
				return c, fmt.Errorf("%s: %s line %q: %w", path, key, val, err)
			}
			if key == "CapEff" {
				c.capEff = v
			} else {
				c.capPrm = v
			}
			seen++
		}
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("read %s: %w", path, err)
	}
	if seen != 4 {
		return c, fmt.Errorf("%s: no Uid, Gid, CapEff and CapPrm lines", path)
	}
	return c, nil
}

// capSets returns the calling thread's effective and permitted capability
// sets.
func capSets() (eff, prm uint64, err error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, 0, fmt.Errorf("read capabilities: %w", err)
	}
	eff = uint64(data[0].Effective) | uint64(data[1].Effective)<<32
	prm = uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32
	return eff, prm, nil
}
