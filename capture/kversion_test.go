package capture

import (
	"errors"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
)

func TestParseKernelVersion(t *testing.T) {
	for _, c := range []struct {
		release, proc, sig string
		want               KernelVersion
		from               string
	}{
		{"6.18.44-fc-v1272", "Linux version 6.18.44-fc-v1272 (builder@sandboxing) (gcc (GCC) 15.3.0, GNU ld (GNU Binutils) 2.46) #1 SMP PREEMPT_DYNAMIC @0", "", KernelVersion{6, 18, 44}, "release"},
		// Debian's release says 5.10.0; /proc/version has the upstream
		// version after the build number, and the compiler's before it.
		{"5.10.0-32-cloud-amd64", "Linux version 5.10.0-32-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-10 (Debian 10.2.1-6) 10.2.1 20210110, GNU ld (GNU Binutils for Debian) 2.35.2) #1 SMP Debian 5.10.223-1 (2024-08-10)", "", KernelVersion{5, 10, 223}, "Debian"},
		{"6.1.0-50-cloud-amd64", "Linux version 6.1.0-50-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.153-1 (2025-09-20)", "", KernelVersion{6, 1, 153}, "Debian"},
		// A kernel built from Debian's source by hand: the compiler is
		// Debian's, the build is not.
		{"5.10.223-selinux-repro", "Linux version 5.10.223-selinux-repro (root@host) (gcc (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP Sat Dec 5 2026", "", KernelVersion{5, 10, 223}, "release"},
		{"5.11.0-22-generic", "Linux version 5.11.0-22-generic (buildd@lgw01-amd64-039) (gcc (Ubuntu 10.3.0-1ubuntu1) 10.3.0) #23-Ubuntu SMP Thu Jun 17 00:34:23 UTC 2021", "Ubuntu 5.11.0-22.23-generic 5.11.22", KernelVersion{5, 11, 22}, "Ubuntu"},
		{"5.14.0-427.13.1.el9_4.x86_64", "", "", KernelVersion{5, 14, 0}, "release"},
		{"4.19", "", "", KernelVersion{4, 19, 0}, "release"},
		{"garbage", "", "", KernelVersion{}, ""},
	} {
		v, from := ParseKernelVersion(c.release, c.proc, c.sig)
		if v != c.want || from != c.from {
			t.Errorf("ParseKernelVersion(%q) = %v from %q, want %v from %q", c.release, v, from, c.want, c.from)
		}
	}
}

func TestPerCallLockdownCheck(t *testing.T) {
	for _, c := range []struct {
		v    KernelVersion
		want bool
	}{
		{KernelVersion{5, 4, 280}, false}, // before SELinux lockdown
		{KernelVersion{5, 6, 0}, true},
		{KernelVersion{5, 8, 18}, true},
		{KernelVersion{5, 10, 0}, true},
		{KernelVersion{5, 10, 42}, true},
		{KernelVersion{5, 10, 43}, false}, // stable fix
		{KernelVersion{5, 10, 223}, false},
		{KernelVersion{5, 11, 22}, true}, // never fixed
		{KernelVersion{5, 12, 9}, true},
		{KernelVersion{5, 12, 10}, false},
		{KernelVersion{5, 13, 0}, false},
		{KernelVersion{5, 15, 0}, false},
		{KernelVersion{6, 1, 0}, false},
		{KernelVersion{}, false},
	} {
		if got := perCallLockdownCheck(c.v); got != c.want {
			t.Errorf("perCallLockdownCheck(%v) = %v, want %v", c.v, got, c.want)
		}
	}
}

func TestJudgeAudit(t *testing.T) {
	old := KernelVersion{5, 10, 0}
	fixed := KernelVersion{5, 10, 223}
	for _, c := range []struct {
		name  string
		v     KernelVersion
		mode  SELinuxMode
		probe ProbeRead
		safe  bool
		why   string
	}{
		{"no SELinux", old, SELinuxDisabled, ProbeReadWorks, false, "not active"},
		{"fixed, enforcing, allowed", fixed, SELinuxEnforcing, ProbeReadWorks, false, "when a program is loaded"},
		{"fixed, policy denies", fixed, SELinuxEnforcing, ProbeReadRefused, true, "refuses programs"},
		// The reproduction kernel: version says fixed, the probe shows
		// the per-call check.
		{"fix reverted", fixed, SELinuxEnforcing, ProbeReadDenied, true, "should carry the fix"},
		{"old, denied", old, SELinuxEnforcing, ProbeReadDenied, true, "as in Linux 5.6 to 5.12"},
		// Allowed for record's context, maybe not for the tasks hooks
		// interrupt.
		{"old, enforcing, allowed here", old, SELinuxEnforcing, ProbeReadWorks, true, "against the task the hook interrupts"},
		{"old, mode unknown", old, SELinuxUnknown, ProbeReadUntested, true, "against the task the hook interrupts"},
		{"old, permissive", old, SELinuxPermissive, ProbeReadWorks, false, "permissive"},
		{"old, probe untested, no SELinux", old, SELinuxDisabled, ProbeReadUntested, false, "not active"},
	} {
		h := judgeAudit(c.v, "release", c.mode, c.probe)
		if h.Safe != c.safe || !strings.Contains(h.Why, c.why) {
			t.Errorf("%s: Safe=%v Why=%q, want Safe=%v and %q", c.name, h.Safe, h.Why, c.safe, c.why)
		}
	}
}

func TestLockdownMode(t *testing.T) {
	for in, want := range map[string]string{
		"[none] integrity confidentiality": "none",
		"none [integrity] confidentiality": "integrity",
		"none integrity [confidentiality]": "confidentiality",
		"":                                 "",
	} {
		if got := lockdownMode(in); got != want {
			t.Errorf("lockdownMode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHelperName(t *testing.T) {
	for fn, want := range map[asm.BuiltinFunc]string{
		asm.FnGetCurrentTaskBtf: "bpf_get_current_task_btf",
		asm.FnProbeReadKernel:   "bpf_probe_read_kernel",
		asm.FnGetAttachCookie:   "bpf_get_attach_cookie",
	} {
		if got := helperName(fn); got != want {
			t.Errorf("helperName(%d) = %q, want %q", fn, got, want)
		}
	}
}

func TestPlanReads(t *testing.T) {
	hazard := AuditHazard{Safe: true, Probe: ProbeReadDenied, Why: "flood"}
	refused := AuditHazard{Safe: true, Probe: ProbeReadRefused, Why: "refused"}
	fine := AuditHazard{Probe: ProbeReadWorks}
	for _, c := range []struct {
		mode    string
		a       AuditHazard
		safe    bool
		err     bool
		noteHas string
	}{
		{ProbeReadsAuto, fine, false, false, ""},
		{ProbeReadsAuto, hazard, true, false, "audit-safe mode: flood"},
		{ProbeReadsAuto, refused, true, false, "audit-safe mode: refused"},
		{ProbeReadsOff, fine, true, false, "--probe-read off"},
		{ProbeReadsOn, fine, false, false, ""},
		{ProbeReadsOn, hazard, false, false, "forced on although flood"},
		{ProbeReadsOn, refused, false, true, ""},
	} {
		safe, notes, err := planReads(c.mode, c.a)
		if safe != c.safe || (err != nil) != c.err {
			t.Errorf("planReads(%s, %s) = %v, %v; want safe %v, error %v", c.mode, c.a.Why, safe, err, c.safe, c.err)
		}
		if c.err && !errors.Is(err, ErrProbeRead) {
			t.Errorf("planReads(%s, %s): %v does not wrap ErrProbeRead", c.mode, c.a.Why, err)
		}
		joined := strings.Join(notes, "\n")
		if (c.noteHas == "") != (joined == "") || !strings.Contains(joined, c.noteHas) {
			t.Errorf("planReads(%s, %s) notes %q, want %q", c.mode, c.a.Why, joined, c.noteHas)
		}
	}
}
