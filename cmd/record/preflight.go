package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/capture"
)

// Exit statuses of record. Scripts can tell from the status what to fix;
// the message on stderr says exactly what went wrong.
const (
	exitFailure    = 1 // anything else, e.g. an error while recording
	exitUsage      = 2 // the command line is wrong: flags, filter, -Z user, hooks or functions this kernel lacks
	exitPermission = 3 // not allowed: privileges missing, the kernel refused them, or -Z could not drop them
	exitKernel     = 4 // the kernel lacks what record needs: BTF, tracepoints, a backend, a helper, or lockdown forbids it
	exitOutput     = 5 // the output cannot be created or written: bad path, no permission, filesystem full
)

// exitStatusHelp documents the exit statuses for --help and the README.
const exitStatusHelp = "Exit status: 0 done; 1 failed while recording; 2 usage (flags, filter, -Z user, unknown\n" +
	"hooks or --functions); 3 permission (not root and no CAP_BPF and CAP_PERFMON, -Z without\n" +
	"root or a failed drop); 4 the kernel lacks a feature (BTF, a backend, a helper) or lockdown\n" +
	"forbids it; 5 output (cannot create or write the file, filesystem full)."

// exitError is an error with the exit status that it ends record with.
// (It has no ExitCode method on purpose: the cli package would then exit by
// itself.)
type exitError struct {
	status int
	err    error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// withStatus returns err as an exitError of status.
func withStatus(status int, err error) error {
	return exitError{status: status, err: err}
}

// minFreeBytes is the free space record wants on the output filesystem to
// start: the section header and a few write buffers (256 KiB each).
const minFreeBytes = 1 << 20

// classify gives err, returned by run with options o, the exit status its
// cause calls for. Errors that already carry one (usageError, exitError)
// and nil are returned as they are.
func classify(err error, o options) error {
	if err == nil {
		return nil
	}
	var ue usageError
	var ee exitError
	if errors.As(err, &ue) || errors.As(err, &ee) {
		return err
	}
	if status := statusOf(err, o); status != exitFailure {
		return withStatus(status, err)
	}
	return err
}

// statusOf returns the exit status for err: the capture package's typed
// errors, and errors of the files record writes (the output, files next to
// it such as rotated ones, and the ready file).
func statusOf(err error, o options) int {
	var le *capture.LoadError
	switch {
	case errors.Is(err, capture.ErrPermission):
		return exitPermission
	case errors.Is(err, capture.ErrProbeRead), errors.Is(err, capture.ErrNoBTF),
		errors.Is(err, capture.ErrBackend), errors.Is(err, capture.ErrNoHooks), errors.As(err, &le):
		return exitKernel
	case errors.Is(err, capture.ErrUnknownHook), errors.Is(err, capture.ErrFilter):
		return exitUsage
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && isOutputPath(pe.Path, o) {
		return exitOutput
	}
	return exitFailure
}

// isOutputPath reports whether path is a file record writes under o: the
// output (standard output for -w -), a file next to it whose name starts
// like it (rotation), or the ready file.
func isOutputPath(path string, o options) bool {
	switch {
	case path == "":
		return false
	case o.output == "-" || o.output == "":
		if path == os.Stdout.Name() {
			return true
		}
	case path == o.output:
		return true
	default:
		stem := strings.TrimSuffix(filepath.Base(o.output), filepath.Ext(o.output))
		if filepath.Dir(path) == filepath.Dir(o.output) && stem != "" && strings.HasPrefix(filepath.Base(path), stem) {
			return true
		}
	}
	return o.readyFile != "" && path == o.readyFile
}

// prepared is what preflight found that run needs later.
type prepared struct {
	user *identity // -Z: the account to drop to, nil to keep privileges
}

// preflight checks, before the output is created and anything is loaded,
// what would make the recording fail, and returns the first problem with
// its exit status. In this order: -Z's user (2), the output (5),
// privileges (3), the kernel: BTF, skb tracepoints, lockdown, -Z on old
// kernels (4), and whether --functions matches any kernel function (2).
func preflight(o options) (*prepared, error) {
	p := &prepared{}
	if o.user != "" {
		id, err := lookupIdentity(o.user)
		if err != nil {
			return nil, err
		}
		p.user = id
	}
	if err := checkOutput(o.output); err != nil {
		return nil, err
	}
	eff, _, err := capSets()
	if err != nil {
		return nil, err
	}
	if err := checkCapabilities(eff, os.Geteuid()); err != nil {
		return nil, err
	}
	if p.user != nil && os.Geteuid() != 0 {
		return nil, withStatus(exitPermission, fmt.Errorf("-Z %s: record must start as root to drop privileges: only leaving uid 0 makes the kernel clear every capability", o.user))
	}
	if err := capture.CheckBTF(); err != nil {
		return nil, classify(explain(err), o)
	}
	if err := checkLockdown(readTrim("/sys/kernel/security/lockdown"), o); err != nil {
		return nil, err
	}
	if err := checkProgramTracing(o, capture.CheckProgramTracing); err != nil {
		return nil, err
	}
	if p.user != nil {
		v, _ := capture.ParseKernelVersion(kernelRelease(), readTrim("/proc/version"), readTrim("/proc/version_signature"))
		if err := checkDropKernel(v, readTrim("/proc/sys/kernel/unprivileged_bpf_disabled")); err != nil {
			return nil, err
		}
	}
	if err := checkFunctions(o); err != nil {
		return nil, err
	}
	return p, nil
}

// dropPrivileges drops to -Z's user, if one was given, and says so on
// stderr. Call it once every hook is attached and the output is open:
// BPF objects stay usable through their file descriptors, and files
// created afterwards (rotation) belong to the user.
func (p *prepared) dropPrivileges(stderr io.Writer) error {
	if p == nil || p.user == nil {
		return nil
	}
	if err := p.user.drop(); err != nil {
		return withStatus(exitPermission, err)
	}
	fmt.Fprintf(stderr, "record: privileges dropped: running as %s with no capabilities\n", p.user)
	return nil
}

// checkOutput checks that the output file can be created or written and
// that its filesystem has room to start (minFreeBytes). Standard output,
// devices and FIFOs are not checked.
func checkOutput(path string) error {
	if path == "" || path == "-" {
		return nil
	}
	fail := func(format string, args ...any) error {
		return withStatus(exitOutput, fmt.Errorf("create output %s: "+format, append([]any{path}, args...)...))
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(path)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return nil
	case err == nil:
		if err := unix.Faccessat(unix.AT_FDCWD, path, unix.W_OK, unix.AT_EACCESS); err != nil {
			return fail("the file is not writable: %v", err)
		}
	case errors.Is(err, fs.ErrNotExist):
		di, err := os.Stat(dir)
		if err != nil {
			return fail("directory %s: %v", dir, errors.Unwrap(err))
		}
		if !di.IsDir() {
			return fail("%s is not a directory", dir)
		}
		if err := unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
			return fail("directory %s is not writable for uid %d: %v", dir, os.Geteuid(), err)
		}
	default:
		return fail("%v", errors.Unwrap(err))
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fail("statfs %s: %v", dir, err)
	}
	if free := st.Bavail * uint64(st.Bsize); free < minFreeBytes {
		return fail("filesystem full: %d bytes free in %s, record needs at least %d to start", free, dir, minFreeBytes)
	}
	return nil
}

// Capabilities, by number (linux/capability.h).
const (
	capSysAdmin = unix.CAP_SYS_ADMIN
	capPerfmon  = unix.CAP_PERFMON
	capBPF      = unix.CAP_BPF
)

// checkCapabilities checks the effective capability set eff of a process
// running as uid: recording needs CAP_BPF (create maps, load programs)
// and CAP_PERFMON (load tracing programs: tracepoints, kprobes, fentry,
// which read kernel memory); CAP_SYS_ADMIN stands for both.
func checkCapabilities(eff uint64, uid int) error {
	has := func(c int) bool { return eff&(1<<c) != 0 }
	if has(capSysAdmin) {
		return nil
	}
	var missing []string
	if !has(capBPF) {
		missing = append(missing, "CAP_BPF (to create BPF maps and load programs)")
	}
	if !has(capPerfmon) {
		missing = append(missing, "CAP_PERFMON (to load tracing programs, which read kernel memory)")
	}
	if len(missing) == 0 {
		return nil
	}
	advice := "run as root, or grant them: sudo setcap cap_bpf,cap_perfmon+ep record"
	if uid == 0 {
		advice = "root's capabilities are limited here (a container, or a reduced bounding set): grant it CAP_BPF and CAP_PERFMON"
	}
	return withStatus(exitPermission, fmt.Errorf("%w: uid %d lacks %s\n  %s",
		capture.ErrPermission, uid, strings.Join(missing, " and "), advice))
}

// checkLockdown refuses what kernel lockdown forbids, from the contents of
// /sys/kernel/security/lockdown ("none [integrity] confidentiality"; ""
// when securityfs is not mounted, then nothing is known). In
// confidentiality mode the kernel refuses bpf_probe_read_kernel, which
// --probe-read on and the kprobe backends need; integrity mode forbids
// nothing record does.
func checkLockdown(contents string, o options) error {
	if lockdownMode(contents) != "confidentiality" {
		return nil
	}
	var what string
	switch {
	case o.probeReads == capture.ProbeReadsOn:
		what = "--probe-read on"
	case o.backend == capture.BackendKprobe || o.backend == capture.BackendKprobeMulti:
		what = "--backend " + o.backend + " (its programs read every field with it)"
	default:
		return nil
	}
	return withStatus(exitKernel, fmt.Errorf("kernel lockdown is in confidentiality mode: the kernel refuses bpf_probe_read_kernel, which %s needs\n  record without it: --probe-read auto and --backend auto, tracepoint or fentry", what))
}

// lockdownBracket finds the selected mode of the lockdown file.
var lockdownBracket = regexp.MustCompile(`\[(\w+)\]`)

// lockdownMode returns the selected lockdown mode, or "" if unknown.
func lockdownMode(contents string) string {
	if m := lockdownBracket.FindStringSubmatch(contents); m != nil {
		return m[1]
	}
	return ""
}

// checkProgramTracing refuses --trace-tc and --trace-xdp where the kernel
// does not let record attach fentry and fexit programs (check says why),
// before anything is attached: exit status 4, one line.
func checkProgramTracing(o options, check func() error) error {
	if !o.traceTC && !o.traceXDP {
		return nil
	}
	flag := "--trace-tc"
	if !o.traceTC {
		flag = "--trace-xdp"
	}
	err := check()
	if err == nil {
		return nil
	}
	why := err.Error()
	if errors.Is(err, unix.EPERM) {
		why = "the kernel refuses to load fentry programs (EPERM: lockdown or another security policy)"
		if m := lockdownMode(readTrim("/sys/kernel/security/lockdown")); m != "" && m != "none" {
			why = "the kernel refuses to load fentry programs (EPERM: lockdown is in " + m + " mode)"
		}
	}
	return withStatus(exitKernel, fmt.Errorf("%s: %s, and tracing BPF programs needs fentry and fexit; record without it still shows tc drops as kfree_skb with reason TC_INGRESS or TC_EGRESS", flag, why))
}

// bpfOpenToAll is the first Linux release whose bpf(2) lets a process
// without CAP_BPF use BPF objects it already holds while
// kernel.unprivileged_bpf_disabled is set (commit c8644cd0efe7, 5.19);
// before it, such a process cannot even read a map.
var bpfOpenToAll = capture.KernelVersion{Major: 5, Minor: 19}

// checkDropKernel refuses -Z where, after the drop, record could not read
// its loss counters (a map lookup): kernel v before 5.19 with
// kernel.unprivileged_bpf_disabled (sysctl, "" if unreadable) not 0.
func checkDropKernel(v capture.KernelVersion, sysctl string) error {
	if v.IsZero() || !v.Less(bpfOpenToAll) || sysctl == "0" {
		return nil
	}
	if sysctl == "" {
		sysctl = "unknown"
	}
	return withStatus(exitKernel, fmt.Errorf("-Z on Linux %s: before 5.19 the kernel refuses every bpf() call of a process without CAP_BPF while kernel.unprivileged_bpf_disabled is set (%s), and record reads its loss counters with one after dropping privileges\n  run without -Z, or set kernel.unprivileged_bpf_disabled=0", v, sysctl))
}

// checkFunctions refuses a --functions pattern that matches no kernel
// function taking an skb (exit status 2): it would attach nothing.
func checkFunctions(o options) error {
	if o.functions == "" || o.backend == capture.BackendTracepoint {
		return nil
	}
	re, err := regexp.Compile(o.functions)
	if err != nil {
		return usagef("--functions %q: %v", o.functions, err)
	}
	fns, err := capture.ListFunctions()
	if err != nil {
		return classify(explain(err), o)
	}
	for _, f := range fns {
		if re.MatchString(f.Name) {
			return nil
		}
	}
	return usagef("--functions %q matches none of the %d kernel functions that take a struct sk_buff (record --list shows them)", o.functions, len(fns))
}

// readTrim returns a file's contents without surrounding space, or "".
func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
