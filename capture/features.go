package capture

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// Features is what the running kernel lets pathcap's BPF programs use,
// found by probing it (a tiny program loaded per helper, not a version
// check). [ProbeFeatures] fills it; [NewRecorder] probes what it needs.
type Features struct {
	// Release is the kernel release (uname -r).
	Release string
	// Version is the upstream version the kernel is built from, as
	// [KernelVersion] finds it (distributions keep their own numbering in
	// Release).
	Version KernelVersion

	// TaskBTF: tracing programs may call bpf_get_current_task_btf (Linux
	// 5.11). Without it the task's ids and name come from two helpers
	// instead of two loads.
	TaskBTF bool
	// AttachCookie: kprobe programs may call bpf_get_attach_cookie (Linux
	// 5.15). Without it the kprobe program finds a function's hook by the
	// probed address, one hash lookup per hit.
	AttachCookie bool
	// RingBuf: BPF ring buffers exist (Linux 5.8), which recording needs.
	RingBuf error
}

// probeTaskBTF reports whether tracing programs may call
// bpf_get_current_task_btf, by loading one that does on a tracepoint the
// recorder attaches to anyway (kernel holds its BTF).
func probeTaskBTF(kernel *btf.Spec, cache *btf.Cache, hook string) (bool, error) {
	return probeTracingHelper(kernel, cache, hook, asm.FnGetCurrentTaskBtf)
}

// newProbeProgram loads a probe program like ebpf.NewProgramWithOptions,
// but finds its attach target through cache, the recorder's BTF cache
// (nil: a new one). ebpf.NewProgramWithOptions decodes the kernel's BTF
// again for every program with a target: about 40 ms on the host and
// 0.3 s under software emulation, per probe.
func newProbeProgram(spec *ebpf.ProgramSpec, opts ebpf.ProgramOptions, cache *btf.Cache) (*ebpf.Program, error) {
	if cache == nil {
		cache = btf.NewCache()
	}
	coll, err := ebpf.NewCollectionWithOptions(&ebpf.CollectionSpec{
		Programs: map[string]*ebpf.ProgramSpec{"probe": spec},
	}, ebpf.CollectionOptions{Programs: opts, Cache: cache})
	if err != nil {
		return nil, err
	}
	defer coll.Close()
	return coll.DetachProgram("probe"), nil
}

// probeTracingHelper loads a tp_btf program on hook that calls fn, and
// reports whether the verifier knows fn. A refusal for another reason is
// returned as an error.
func probeTracingHelper(kernel *btf.Spec, cache *btf.Cache, hook string, fn asm.BuiltinFunc) (bool, error) {
	prog, err := newProbeProgram(&ebpf.ProgramSpec{
		Name:       "pathcap_probe",
		Type:       ebpf.Tracing,
		AttachType: ebpf.AttachTraceRawTp,
		AttachTo:   hook,
		License:    "GPL",
		Instructions: asm.Instructions{
			fn.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	}, ebpf.ProgramOptions{KernelTypes: kernel, LogLevel: ebpf.LogLevelBranch}, cache)
	if err == nil {
		prog.Close()
		return true, nil
	}
	if h, ok := unknownHelper(err); ok && h == fn {
		return false, nil
	}
	return false, fmt.Errorf("probe helper %v: %w", fn, permissionError(err))
}

// probeAttachCookie reports whether kprobe programs may call
// bpf_get_attach_cookie.
func probeAttachCookie() bool {
	return features.HaveProgramHelper(ebpf.Kprobe, asm.FnGetAttachCookie) == nil
}

// unknownHelper returns the helper that a verifier error says the kernel
// does not know (or does not offer this program type), and whether it
// says so.
func unknownHelper(err error) (asm.BuiltinFunc, bool) {
	var ve *ebpf.VerifierError
	if !errors.As(err, &ve) {
		return 0, false
	}
	for i := len(ve.Log) - 1; i >= 0 && i >= len(ve.Log)-8; i-- {
		line := ve.Log[i]
		// "invalid func unknown#158", "unknown func bpf_probe_read_kernel#113",
		// "program of this type cannot use helper bpf_x#N".
		if !strings.Contains(line, "func") && !strings.Contains(line, "helper") {
			continue
		}
		j := strings.LastIndexByte(line, '#')
		if j < 0 {
			continue
		}
		var n int
		if _, err := fmt.Sscanf(line[j+1:], "%d", &n); err == nil && n >= 0 {
			return asm.BuiltinFunc(n), true
		}
	}
	return 0, false
}

// helperName returns the kernel's name of helper fn, e.g.
// "bpf_get_current_task_btf".
func helperName(fn asm.BuiltinFunc) string {
	s := fn.String() // "FnGetCurrentTaskBtf"
	if !strings.HasPrefix(s, "Fn") {
		return s
	}
	var b strings.Builder
	b.WriteString("bpf")
	for _, r := range s[2:] {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// helperSince is the first upstream release of the helpers pathcap's
// programs use that old kernels lack, for error messages.
var helperSince = map[asm.BuiltinFunc]string{
	asm.FnGetCurrentTaskBtf: "5.11",
	asm.FnGetAttachCookie:   "5.15",
	asm.FnGetFuncIp:         "5.15",
	asm.FnRingbufReserve:    "5.8",
	asm.FnRingbufSubmit:     "5.8",
	asm.FnRingbufQuery:      "5.8",
	asm.FnProbeReadKernel:   "5.5",
	asm.FnGetStack:          "4.18",
	asm.FnGetCurrentTask:    "4.8",
	asm.FnGetCurrentPidTgid: "4.2",
	asm.FnGetCurrentComm:    "4.2",
	asm.FnKtimeGetNs:        "4.1",
	asm.FnGetSmpProcessorId: "4.1",
	asm.FnMapLookupElem:     "3.19",
	asm.FnMapUpdateElem:     "3.19",
	asm.FnMapDeleteElem:     "3.19",
}

// kernelRelease returns uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// readTrim returns the contents of path without surrounding white space, or
// "" if it cannot be read.
func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
