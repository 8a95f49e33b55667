package capture

import (
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// compat is what the running kernel lets the programs use and what the
// recorder does without the rest: the knobs of bpf/common.h that select a
// program variant, decided once before anything is loaded.
type compat struct {
	release string
	taskBTF bool // bpf_get_current_task_btf (else two helpers)
	// rdonlyCast: the kfunc bpf_rdonly_cast (Linux 6.2+), with which
	// skb.c walks the skb through an untrusted pointer: the same loads,
	// verified in a third of the time on recent kernels (bpf/skb.c).
	rdonlyCast bool
	// sharedTP: one raw tracepoint program per argument layout serves
	// several tracepoints, with the hook's id in the attach cookie
	// (Linux 6.10+, sharedtp.go).
	sharedTP  bool
	cookie    bool // bpf_get_attach_cookie, probed when kprobes are attached
	auditSafe bool // no bpf_probe_read_kernel per hit
	audit     AuditHazard
	perCPU    uint64 // events per second per CPU, 0: no limit
	notes     []string
}

// decideCompat probes the kernel for the features the programs use and
// decides, from cfg, whether to record in audit-safe mode.
func decideCompat(cfg Config, kernel *btf.Spec, cache *btf.Cache, hooks []Hook, ncpu int) (compat, error) {
	c := compat{release: kernelRelease()}
	var err error
	if len(hooks) > 0 {
		if c.taskBTF, err = probeTaskBTF(kernel, cache, hooks[0].Name); err != nil {
			return c, err
		}
	}
	if !c.taskBTF {
		c.notes = append(c.notes, "this kernel has no bpf_get_current_task_btf (Linux 5.11): task ids and names come from two helper calls per event")
	}

	c.rdonlyCast = haveKfunc(kernel, "bpf_rdonly_cast")
	c.sharedTP = haveSharedTracepoints(c.rdonlyCast)

	c.audit, err = DetectAuditHazard()
	if err != nil {
		c.notes = append(c.notes, fmt.Sprintf("could not probe bpf_probe_read_kernel: %v", err))
	}
	safe, notes, err := planReads(cfg.ProbeReads, c.audit)
	if err != nil {
		return c, err
	}
	c.auditSafe = safe
	c.notes = append(c.notes, notes...)

	rate := cfg.MaxRate
	if rate == 0 && c.auditSafe {
		rate = DefaultAuditSafeRate
		c.notes = append(c.notes, fmt.Sprintf("audit-safe mode: at most %d events per second (--max-rate)", rate))
	}
	if rate > 0 {
		c.perCPU = uint64((rate + ncpu - 1) / ncpu)
	}
	return c, nil
}

// planReads decides from Config.ProbeReads and the audit verdict whether
// to record in audit-safe mode, and what to tell the user.
func planReads(mode string, a AuditHazard) (safe bool, notes []string, err error) {
	switch mode {
	case ProbeReadsOff:
		return true, []string{"audit-safe mode (--probe-read off): no bpf_probe_read_kernel call per event, so events carry no packet bytes"}, nil
	case ProbeReadsOn:
		if a.Probe == ProbeReadRefused {
			return false, nil, fmt.Errorf("check probe reads: %w: %s; record without them (probe reads auto or off)", ErrProbeRead, a.Why)
		}
		if a.Safe {
			return false, []string{"probe reads forced on although " + a.Why + ": each recorded event may write an audit record"}, nil
		}
		return false, nil, nil
	}
	if a.Safe {
		note := "audit-safe mode: " + a.Why + "; recording makes no bpf_probe_read_kernel call, so events carry no packet bytes and kprobe backends are not used"
		if a.Probe != ProbeReadRefused {
			// Where the kernel refuses the helper outright (lockdown),
			// forcing it on cannot help.
			note += " (--probe-read on records bytes, at one audit record per event)"
		}
		return true, []string{note}, nil
	}
	return false, nil, nil
}

// haveKfunc reports whether the kernel's BTF has the function name, as
// every kfunc of the running kernel is. A kernel without it makes the
// programs leave its call unresolved and unreached.
func haveKfunc(kernel *btf.Spec, name string) bool {
	var fn *btf.Func
	return kernel.TypeByName(name, &fn) == nil
}
