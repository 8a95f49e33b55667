package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pathcap/pathcap/capture"
)

// statusOfErr returns the exit status exitCode would give err.
func statusOfErr(err error) int {
	var ee exitError
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ee):
		return ee.status
	}
	return exitFailure
}

func TestClassify(t *testing.T) {
	o := options{output: "/data/rec.pcapng", readyFile: "/run/rec.ready"}
	stdout := options{output: "-"}
	pathErr := func(op, path string, errno syscall.Errno) error {
		return fmt.Errorf("context: %w", &fs.PathError{Op: op, Path: path, Err: errno})
	}
	for _, tc := range []struct {
		name string
		err  error
		o    options
		want int
	}{
		{"nil", nil, o, 0},
		{"usage", usagef("bad flag"), o, exitUsage},
		{"already classified", withStatus(exitKernel, errors.New("x")), o, exitKernel},
		{"permission", fmt.Errorf("load: %w: %w", capture.ErrPermission, syscall.EPERM), o, exitPermission},
		{"no BTF", fmt.Errorf("load kernel BTF: %w", capture.ErrNoBTF), o, exitKernel},
		{"backend", fmt.Errorf("attach backend fentry: %w", capture.ErrBackend), o, exitKernel},
		{"probe read beats filter", fmt.Errorf("%w: needs %w", capture.ErrFilter, capture.ErrProbeRead), o, exitKernel},
		{"verifier", &capture.LoadError{What: "hook tp:x", Err: errors.New("refused")}, o, exitKernel},
		{"unknown hook", fmt.Errorf("select: %w", capture.ErrUnknownHook), o, exitUsage},
		{"bad filter", fmt.Errorf("%w: x", capture.ErrFilter), o, exitUsage},
		{"create output", pathErr("open", o.output, syscall.EACCES), o, exitOutput},
		{"write output, disk full", pathErr("write", o.output, syscall.ENOSPC), o, exitOutput},
		{"rotated file next to the output", pathErr("open", "/data/rec-0001.pcapng", syscall.EDQUOT), o, exitOutput},
		{"ready file", pathErr("open", o.readyFile, syscall.EROFS), o, exitOutput},
		{"standard output", pathErr("write", os.Stdout.Name(), syscall.EPIPE), stdout, exitOutput},
		{"another file", pathErr("open", "/sys/kernel/btf/vmlinux", syscall.ENOENT), o, exitFailure},
		{"a file elsewhere named like the output", pathErr("open", "/other/rec.pcapng", syscall.ENOSPC), o, exitFailure},
		{"plain", errors.New("read ring buffer: bad"), o, exitFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify(tc.err, tc.o)
			if s := statusOfErr(got); s != tc.want {
				t.Errorf("status %d, want %d (%v)", s, tc.want, got)
			}
			if tc.err != nil && (got == nil || got.Error() != tc.err.Error()) {
				t.Errorf("message changed: %v, want %v", got, tc.err)
			}
		})
	}
}

func TestCheckCapabilities(t *testing.T) {
	bit := func(caps ...int) uint64 {
		var v uint64
		for _, c := range caps {
			v |= 1 << c
		}
		return v
	}
	for _, tc := range []struct {
		eff     uint64
		uid     int
		missing []string // capability names the message must name; nil: no error
		absent  []string
	}{
		{bit(capBPF, capPerfmon), 1000, nil, nil},
		{bit(capSysAdmin), 0, nil, nil},
		{0, 65534, []string{"uid 65534", "CAP_BPF (", "CAP_PERFMON (", "setcap"}, nil},
		{bit(capBPF), 65534, []string{"CAP_PERFMON ("}, []string{"CAP_BPF ("}},
		{bit(capPerfmon), 0, []string{"uid 0", "CAP_BPF (", "bounding set"}, []string{"CAP_PERFMON ("}},
	} {
		err := checkCapabilities(tc.eff, tc.uid)
		if tc.missing == nil {
			if err != nil {
				t.Errorf("caps %#x: %v", tc.eff, err)
			}
			continue
		}
		if statusOfErr(err) != exitPermission || !errors.Is(err, capture.ErrPermission) {
			t.Errorf("caps %#x: %v (status %d), want exit status %d and ErrPermission", tc.eff, err, statusOfErr(err), exitPermission)
			continue
		}
		for _, s := range tc.missing {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("caps %#x: %q lacks %q", tc.eff, err, s)
			}
		}
		for _, s := range tc.absent {
			if strings.Contains(err.Error(), s) {
				t.Errorf("caps %#x: %q names %q", tc.eff, err, s)
			}
		}
	}
}

func TestCheckLockdown(t *testing.T) {
	conf := "none integrity [confidentiality]"
	for _, tc := range []struct {
		contents string
		o        options
		fails    bool
	}{
		{"", options{probeReads: capture.ProbeReadsOn}, false},
		{"[none] integrity confidentiality", options{probeReads: capture.ProbeReadsOn, backend: capture.BackendKprobe}, false},
		{"none [integrity] confidentiality", options{probeReads: capture.ProbeReadsOn, backend: capture.BackendKprobeMulti}, false},
		{conf, options{probeReads: capture.ProbeReadsAuto, backend: capture.BackendAuto}, false},
		{conf, options{probeReads: capture.ProbeReadsOff, backend: capture.BackendFentry}, false},
		{conf, options{probeReads: capture.ProbeReadsOn, backend: capture.BackendAuto}, true},
		{conf, options{probeReads: capture.ProbeReadsAuto, backend: capture.BackendKprobe}, true},
		{conf, options{probeReads: capture.ProbeReadsAuto, backend: capture.BackendKprobeMulti}, true},
	} {
		err := checkLockdown(tc.contents, tc.o)
		if (err != nil) != tc.fails {
			t.Errorf("lockdown %q, %+v: %v, want failure %v", tc.contents, tc.o, err, tc.fails)
			continue
		}
		if err != nil && (statusOfErr(err) != exitKernel || !strings.Contains(err.Error(), "confidentiality")) {
			t.Errorf("lockdown %q: %v (status %d)", tc.contents, err, statusOfErr(err))
		}
	}
}

func TestCheckDropKernel(t *testing.T) {
	v := func(maj, min int) capture.KernelVersion { return capture.KernelVersion{Major: maj, Minor: min} }
	for _, tc := range []struct {
		v      capture.KernelVersion
		sysctl string
		fails  bool
	}{
		{v(6, 18), "2", false},
		{v(5, 19), "1", false},
		{v(5, 18), "0", false},
		{v(5, 10), "2", true},
		{v(5, 15), "1", true},
		{v(5, 10), "", true},
		{capture.KernelVersion{}, "2", false}, // unknown version: let it run
	} {
		err := checkDropKernel(tc.v, tc.sysctl)
		if (err != nil) != tc.fails {
			t.Errorf("Linux %v, unprivileged_bpf_disabled %q: %v, want failure %v", tc.v, tc.sysctl, err, tc.fails)
		}
		if err != nil && statusOfErr(err) != exitKernel {
			t.Errorf("status %d, want %d", statusOfErr(err), exitKernel)
		}
	}
}

func TestLookupIdentity(t *testing.T) {
	nobody, err := lookupIdentity("nobody")
	if err != nil {
		t.Skipf("no user nobody here: %v", err)
	}
	if nobody.uid == 0 || nobody.name != "nobody" || len(nobody.groups) == 0 {
		t.Errorf("nobody: %+v", nobody)
	}
	byID, err := lookupIdentity(fmt.Sprint(nobody.uid))
	if err != nil || byID.uid != nobody.uid || byID.gid != nobody.gid || byID.name != "nobody" {
		t.Errorf("uid %d: %+v, %v; want nobody's account", nobody.uid, byID, err)
	}
	pair, err := lookupIdentity("4242:4343")
	if err != nil || pair.uid != 4242 || pair.gid != 4343 || len(pair.groups) != 1 || pair.groups[0] != 4343 {
		t.Errorf("4242:4343: %+v, %v", pair, err)
	}
	for _, spec := range []string{"pathcap-no-such-user", "root", "0", "1000:0", "0:1000", "x:y", "12:", ""} {
		id, err := lookupIdentity(spec)
		if statusOfErr(err) != exitUsage {
			t.Errorf("-Z %q: %+v, %v; want a usage error", spec, id, err)
		}
	}
}

func TestReadCreds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status")
	status := "Name:\trecord\nUid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\n" +
		"Groups:\t65534\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n" +
		"CapBnd:\t000001ffffffffff\n"
	if err := os.WriteFile(path, []byte(status), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := readCreds(path)
	if err != nil {
		t.Fatal(err)
	}
	id := &identity{uid: 65534, gid: 65534}
	if err := c.check(id); err != nil {
		t.Errorf("check: %v", err)
	}
	kept := c
	kept.capEff = 1 << capBPF
	if err := kept.check(id); err == nil || !strings.Contains(err.Error(), "capabilities left") {
		t.Errorf("an effective CAP_BPF passed: %v", err)
	}
	saved := c
	saved.uid[2] = 0
	if err := saved.check(id); err == nil {
		t.Error("a saved uid 0 passed")
	}
	if err := os.WriteFile(path, []byte("Name:\tx\nUid:\t0\t0\t0\t0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readCreds(path); err == nil {
		t.Error("a status without Gid and capabilities parsed")
	}
}
