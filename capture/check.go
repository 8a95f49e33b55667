package capture

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// Check is what this host allows pathcap to record and what [NewRecorder]
// will do, found by probing (tiny programs loaded, one bpf_probe_read_kernel
// run): the answer of `record check`.
type Check struct {
	// Release is uname -r; Version the upstream version (VersionFrom:
	// "release", "Debian" or "Ubuntu").
	Release     string
	Version     KernelVersion
	VersionFrom string
	// Arch is the machine architecture, as GOARCH.
	Arch string
	// Lockdown is the kernel lockdown mode from securityfs ("none",
	// "integrity", "confidentiality"), or "" if it cannot be read.
	Lockdown string

	// Privileges is nil if this process may load BPF programs (root, or
	// CAP_BPF and CAP_PERFMON); without, nothing else is probed.
	Privileges error
	// BTF is nil if the kernel's BTF loads.
	BTF error
	// RingBuf is nil if BPF ring buffers can be created (Linux 5.8).
	RingBuf error
	// Tracepoints is the number of tracepoints that take an skb;
	// TracepointErr is nil if a BTF tracepoint program loads and attaches
	// on them (root or CAP_BPF and CAP_PERFMON needed).
	Tracepoints   int
	TracepointErr error
	// Backends holds each function backend with nil if the kernel allows
	// it, else why not (BackendKprobeMulti, BackendKprobe, BackendFentry).
	Backends []BackendCheck
	// Features are the optional kernel features, each with what recording
	// does without it.
	Features []FeatureCheck
	// Audit is the SELinux audit flood verdict, AuditErr the probe's error.
	Audit    AuditHazard
	AuditErr error
	// AutoBackend is the function backend that BackendAuto would attach
	// with the default function set ("tracepoint" for none).
	AutoBackend string
	// Netfilter is nil if a function backend can also name nftables
	// chains (nft_do_chain's entry and exit, Config.NoNetfilter), else
	// why not.
	Netfilter error
}

// BackendCheck is one function backend's availability.
type BackendCheck struct {
	Name string
	Err  error // nil: available
}

// FeatureCheck is one optional kernel feature.
type FeatureCheck struct {
	// Name names the feature, e.g. "bpf_get_current_task_btf".
	Name string
	// Since is the upstream release that added it.
	Since string
	// Have says whether this kernel has it; Err is set when it could
	// not be probed.
	Have bool
	Err  error
	// Without says what pathcap does on a kernel that lacks it.
	Without string
}

// CanRecord reports whether record can record anything here: privileges,
// BTF, ring buffers and tracepoint programs are needed.
func (c *Check) CanRecord() bool {
	return c.Privileges == nil && c.BTF == nil && c.RingBuf == nil && c.TracepointErr == nil && c.Tracepoints > 0
}

// RunCheck probes this host. It loads a few tiny BPF programs and runs one
// bpf_probe_read_kernel call (at most one audit record); it attaches one
// tracepoint program for a moment. The error is only for a failure to run
// the probes at all; what the kernel lacks is in the Check.
func RunCheck() (*Check, error) {
	c := &Check{Release: kernelRelease(), Arch: runtime.GOARCH}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	if err := rlimit.RemoveMemlock(); err != nil {
		c.Privileges = fmt.Errorf("raise memlock limit: %w", permissionError(err))
	}
	c.Version, c.VersionFrom = ParseKernelVersion(c.Release, readTrim("/proc/version"), readTrim("/proc/version_signature"))
	c.Lockdown = lockdownMode(readTrim("/sys/kernel/security/lockdown"))
	c.RingBuf = features.HaveMapType(ebpf.RingBuf)

	kernel, err := loadKernelBTF()
	c.BTF = err
	var hooks []Hook
	if err == nil {
		hooks, err = discoverHooks(kernel, kernelTable(kernel))
		c.Tracepoints = len(hooks)
		if err != nil {
			c.TracepointErr = err
		}
	} else {
		c.TracepointErr = err
	}
	c.Audit, c.AuditErr = DetectAuditHazard()
	if c.BTF != nil || len(hooks) == 0 {
		return c, nil
	}
	// A tracepoint every kernel with skb tracepoints has, else the first.
	hook := hooks[0]
	for _, h := range hooks {
		if h.Name == "netif_receive_skb" {
			hook = h
		}
	}
	c.TracepointErr = probeTracepoint(kernel, hook.Name)
	if errors.Is(c.TracepointErr, ErrPermission) {
		c.Privileges = c.TracepointErr
		return c, nil
	}

	taskBTF, err := probeTaskBTF(kernel, nil, hook.Name)
	c.Features = append(c.Features, FeatureCheck{
		Name: "bpf_get_current_task_btf", Since: "5.11", Have: taskBTF, Err: err,
		Without: "task ids and name come from two helper calls per event",
	})
	cookie := probeAttachCookie()
	c.Features = append(c.Features, FeatureCheck{
		Name: "bpf_get_attach_cookie", Since: "5.15", Have: cookie,
		Without: "kprobes find their function by the probed address: one hash lookup per event",
	})
	reasons := false
	for _, h := range hooks {
		if h.Name == "kfree_skb" && h.ReasonArg >= 0 {
			reasons = true
		}
	}
	c.Features = append(c.Features, FeatureCheck{
		Name: "drop reasons at kfree_skb", Since: "5.17", Have: reasons,
		Without: "drops carry the freeing code location only; analyze reports \"dropped (no reason on this kernel)\"",
	})
	cast := haveKfunc(kernel, "bpf_rdonly_cast")
	c.Features = append(c.Features, FeatureCheck{
		Name: "kfunc bpf_rdonly_cast", Since: "6.2", Have: cast,
		Without: "the same programs, verified more slowly (a longer start)",
	}, FeatureCheck{
		Name: "raw tracepoint cookies", Since: "6.10", Have: haveSharedTracepoints(cast),
		Without: "one program per tracepoint, each verified, instead of one per argument layout (a longer start)",
	})
	direct, err := probeDirectRead(kernel, nil, hook.Name)
	c.Features = append(c.Features, FeatureCheck{
		Name: "packet loads in place", Since: "after 6.12", Have: direct, Err: err,
		Without: "a filter expression copies the packet's first bytes with bpf_probe_read_kernel (one call per filtered hit)",
	})

	sym := probeFunction(kernel)
	for _, b := range []string{BackendKprobeMulti, BackendKprobe, BackendFentry} {
		c.Backends = append(c.Backends, BackendCheck{Name: b, Err: haveBackend(b, sym, kernel, nil)})
	}
	c.Netfilter = netfilterSupport(kernel)
	for _, bc := range c.Backends {
		if bc.Name == BackendFentry && bc.Err != nil {
			c.Netfilter = fmt.Errorf("no fentry: %w", bc.Err)
		}
	}
	c.AutoBackend = BackendTracepoint
	for _, b := range autoOrder(plan{}) {
		if c.Audit.Safe && (b == BackendKprobe || b == BackendKprobeMulti) {
			continue
		}
		for _, bc := range c.Backends {
			if bc.Name == b && bc.Err == nil && c.AutoBackend == BackendTracepoint {
				c.AutoBackend = b
			}
		}
	}
	return c, nil
}

// lockdownMode returns the selected mode of securityfs's lockdown file
// ("none [integrity] confidentiality" gives "integrity"), or "".
func lockdownMode(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '[' {
			for j := i + 1; j < len(s); j++ {
				if s[j] == ']' {
					return s[i+1 : j]
				}
			}
		}
	}
	return ""
}

// probeFunction returns a kernel function to probe function backends
// with: one that takes an skb on every kernel pathcap supports.
func probeFunction(kernel *btf.Spec) string {
	for _, name := range []string{"ip_rcv", "__netif_receive_skb_core", "netif_receive_skb"} {
		var fn *btf.Func
		if err := kernel.TypeByName(name, &fn); err == nil {
			return name
		}
	}
	return "ip_rcv"
}

// probeTracepoint loads and attaches an empty BTF tracepoint program on
// hook, and detaches it.
func probeTracepoint(kernel *btf.Spec, hook string) error {
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Name: "pathcap_probe", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp,
		AttachTo: hook, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	}, ebpf.ProgramOptions{KernelTypes: kernel})
	if err != nil {
		return fmt.Errorf("load a tracepoint program: %w", permissionError(err))
	}
	defer prog.Close()
	l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		return fmt.Errorf("attach a tracepoint program: %w", permissionError(err))
	}
	return l.Close()
}

// probeDirectRead reports whether tracing programs may load packet bytes
// through skb->head, by loading one that loads the first byte on hook
// (whose first argument is the skb).
func probeDirectRead(kernel *btf.Spec, cache *btf.Cache, hook string) (bool, error) {
	var skb *btf.Struct
	if err := kernel.TypeByName("sk_buff", &skb); err != nil {
		return false, fmt.Errorf("find struct sk_buff: %w", err)
	}
	off := -1
	for _, m := range skb.Members {
		if m.Name == "head" {
			off = int(m.Offset.Bytes())
		}
	}
	if off < 0 {
		return false, errors.New("find sk_buff.head: no such member")
	}
	prog, err := newProbeProgram(&ebpf.ProgramSpec{
		Name: "pathcap_probe", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp,
		AttachTo: hook, License: "GPL",
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R1, asm.R1, 0, asm.DWord), // the skb
			asm.JEq.Imm(asm.R1, 0, "out"),
			asm.LoadMem(asm.R1, asm.R1, int16(off), asm.DWord), // skb->head
			asm.JEq.Imm(asm.R1, 0, "out"),
			asm.LoadMem(asm.R0, asm.R1, 0, asm.Byte), // head[0]
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
			asm.Return(),
		},
	}, ebpf.ProgramOptions{KernelTypes: kernel}, cache)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return false, nil
		}
		return false, fmt.Errorf("probe packet loads: %w", permissionError(err))
	}
	prog.Close()
	return true, nil
}
