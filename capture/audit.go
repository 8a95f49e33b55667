package capture

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// The SELinux audit flood: from Linux 5.6 ("implement SELinux lockdown")
// until upstream 5.13 (stable 5.10.43 and 5.12.10; 5.11 never had the fix),
// every bpf_probe_read_kernel call asks SELinux whether the task that is
// current when the program runs may read kernel memory
// (lockdown { confidentiality }). Where the policy denies it, the read fails
// and one AVC record is written per call: a program on a busy hook floods the
// audit subsystem. Fixed kernels ask once, at load time, for the loading
// task: the same policy then refuses every program that calls the helper.
//
// pathcap detects both and then records in audit-safe mode: no
// bpf_probe_read_kernel call per hit (tracepoints and fentry read every
// field through BTF; packet bytes, which need the helper on these kernels,
// are not recorded unless asked for; kprobes, which read every field
// through the helper, are not used).

// SELinuxMode is SELinux's state on the host.
type SELinuxMode string

// SELinux states.
const (
	// SELinuxDisabled: SELinux is not built in, not enabled at boot, or
	// has no policy loaded.
	SELinuxDisabled SELinuxMode = "disabled"
	// SELinuxPermissive: denials are logged (once per context and
	// permission), not enforced.
	SELinuxPermissive SELinuxMode = "permissive"
	// SELinuxEnforcing: denials are enforced and logged.
	SELinuxEnforcing SELinuxMode = "enforcing"
	// SELinuxUnknown: SELinux is enabled, but selinuxfs is not mounted, so
	// its mode cannot be read.
	SELinuxUnknown SELinuxMode = "enabled, mode unknown (selinuxfs not mounted)"
)

// selinuxMode reads SELinux's state from selinuxfs, or says whether it is
// enabled at all from the file systems the kernel registered (selinuxfs is
// registered only when SELinux is enabled at boot).
func selinuxMode() SELinuxMode {
	switch readTrim("/sys/fs/selinux/enforce") {
	case "1":
		return SELinuxEnforcing
	case "0":
		// Enabled, but with no policy loaded nothing is checked.
		if readTrim("/sys/fs/selinux/policyvers") == "" {
			return SELinuxDisabled
		}
		return SELinuxPermissive
	}
	if strings.Contains(readTrim("/proc/filesystems"), "selinuxfs") {
		return SELinuxUnknown
	}
	return SELinuxDisabled
}

// ProbeRead is what a bpf_probe_read_kernel call does when run in the
// recorder's own context.
type ProbeRead int

// Results of the probe-read probe.
const (
	// ProbeReadUntested: the probe could not run (BPF_PROG_TEST_RUN on
	// raw tracepoints needs Linux 5.10).
	ProbeReadUntested ProbeRead = iota
	// ProbeReadWorks: the helper loads and reads.
	ProbeReadWorks
	// ProbeReadDenied: the helper loads, but every call fails with
	// EACCES or EPERM at run time: the kernel checks lockdown per call
	// (the audit flood).
	ProbeReadDenied
	// ProbeReadRefused: the verifier refuses the helper: the kernel
	// checks lockdown at load time and the policy denies it.
	ProbeReadRefused
)

// String returns a short description.
func (p ProbeRead) String() string {
	switch p {
	case ProbeReadWorks:
		return "works"
	case ProbeReadDenied:
		return "loads, but each call is denied at run time"
	case ProbeReadRefused:
		return "refused when a program is loaded"
	}
	return "not tested"
}

// probeProbeRead loads a raw tracepoint program that calls
// bpf_probe_read_kernel once (reading 8 bytes of its own stack) and runs it
// with BPF_PROG_TEST_RUN in the calling task's context: where SELinux
// checks every call, this one call is checked against the recorder's own
// context, and a denial is the flood itself. It writes at most one audit
// record.
func probeProbeRead() (ProbeRead, error) {
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Name:    "pathcap_pread",
		Type:    ebpf.RawTracepoint,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R1, 0),
			asm.StoreMem(asm.RFP, -16, asm.R1, asm.DWord),
			asm.Mov.Reg(asm.R1, asm.R10),
			asm.Add.Imm(asm.R1, -8),
			asm.Mov.Imm(asm.R2, 8),
			asm.Mov.Reg(asm.R3, asm.R10),
			asm.Add.Imm(asm.R3, -16),
			asm.FnProbeReadKernel.Call(),
			asm.Return(),
		},
	}, ebpf.ProgramOptions{LogLevel: ebpf.LogLevelBranch})
	if err != nil {
		// cilium/ebpf rewrites the call to bpf_probe_read where its own
		// probe finds bpf_probe_read_kernel missing, which is what a
		// kernel refusing the helper looks like: either name counts.
		if h, ok := unknownHelper(err); ok && (h == asm.FnProbeReadKernel || h == asm.FnProbeRead) {
			return ProbeReadRefused, nil
		}
		return ProbeReadUntested, fmt.Errorf("load probe-read probe: %w", permissionError(err))
	}
	defer prog.Close()
	ret, err := prog.Run(&ebpf.RunOptions{})
	if err != nil {
		// BPF_PROG_TEST_RUN on raw tracepoints came with Linux 5.10.
		if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.Errno(524)) /* ENOTSUPP */ {
			return ProbeReadUntested, nil
		}
		return ProbeReadUntested, fmt.Errorf("run probe-read probe: %w", err)
	}
	switch int32(ret) {
	case 0:
		return ProbeReadWorks, nil
	case -int32(unix.EACCES), -int32(unix.EPERM):
		return ProbeReadDenied, nil
	}
	return ProbeReadUntested, fmt.Errorf("run probe-read probe: bpf_probe_read_kernel returned %d", int32(ret))
}

// perCallLockdownCheck reports whether upstream version v checks lockdown
// at every bpf_probe_read_kernel call: 5.6 up to 5.13, except stable
// 5.10.43 and later and 5.12.10 and later, which carry the fix.
func perCallLockdownCheck(v KernelVersion) bool {
	switch {
	case v.IsZero():
		return false
	case v.Less(KernelVersion{5, 6, 0}), !v.Less(KernelVersion{5, 13, 0}):
		return false
	case v.Major == 5 && v.Minor == 10:
		return v.Patch < 43
	case v.Major == 5 && v.Minor == 12:
		return v.Patch < 10
	}
	return true
}

// AuditHazard is the verdict on the SELinux audit flood for this host.
type AuditHazard struct {
	// Version is the upstream kernel version, VersionFrom where it was
	// read ("release", "Debian", "Ubuntu").
	Version     KernelVersion
	VersionFrom string
	// PerCallCheck: by its version, the kernel checks lockdown at every
	// bpf_probe_read_kernel call.
	PerCallCheck bool
	// SELinux is SELinux's state.
	SELinux SELinuxMode
	// Probe is what a bpf_probe_read_kernel call did in the recorder's
	// context.
	Probe ProbeRead
	// Safe says that recording must make no bpf_probe_read_kernel call:
	// each would write an audit record at run time, or programs calling
	// it are refused.
	Safe bool
	// Why explains the verdict in one sentence.
	Why string
}

// judgeAudit decides whether recording must avoid bpf_probe_read_kernel,
// from the kernel version, SELinux's state and the probe's result. The
// probe wins over the version table: a kernel whose version says fixed but
// whose probe reads are denied at run time has the flood.
func judgeAudit(v KernelVersion, from string, mode SELinuxMode, probe ProbeRead) AuditHazard {
	h := AuditHazard{Version: v, VersionFrom: from, PerCallCheck: perCallLockdownCheck(v), SELinux: mode, Probe: probe}
	switch {
	case probe == ProbeReadRefused:
		h.Safe = true
		h.Why = "the kernel refuses programs that call bpf_probe_read_kernel (kernel lockdown, checked at load time: an SELinux policy that denies lockdown confidentiality, or lockdown=confidentiality)"
	case probe == ProbeReadDenied:
		h.Safe = true
		h.Why = "every bpf_probe_read_kernel call is denied at run time and writes an audit record (SELinux lockdown check per call"
		if h.PerCallCheck {
			h.Why += ", as in Linux 5.6 to 5.12 before the fix)"
		} else {
			h.Why += fmt.Sprintf(", although version %s should carry the fix)", v)
		}
	case mode == SELinuxDisabled:
		h.Why = "SELinux is not active: probe reads are never checked against a policy"
	case !h.PerCallCheck:
		h.Why = fmt.Sprintf("Linux %s checks lockdown when a program is loaded, not per call, and this process may read kernel memory", v)
	case mode == SELinuxPermissive:
		h.Why = fmt.Sprintf("Linux %s checks lockdown per call, but SELinux is permissive: at most one denial per security context is logged", v)
	default:
		// Enforcing (or unknown) on a kernel that checks per call: the
		// check runs against whichever task a hook interrupts, which the
		// policy may deny even if it allows this process.
		h.Safe = true
		h.Why = fmt.Sprintf("Linux %s checks lockdown at every bpf_probe_read_kernel call against the task the hook interrupts, and SELinux is %s: denied calls would each write an audit record", v, mode)
	}
	return h
}

// DetectAuditHazard probes this host for the SELinux audit flood: kernel
// version, SELinux state, and one bpf_probe_read_kernel call run in this
// process's context (at most one audit record).
func DetectAuditHazard() (AuditHazard, error) {
	v, from := ParseKernelVersion(kernelRelease(), readTrim("/proc/version"), readTrim("/proc/version_signature"))
	probe, err := probeProbeRead()
	return judgeAudit(v, from, selinuxMode(), probe), err
}
