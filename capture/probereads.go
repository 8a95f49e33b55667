package capture

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/pathcap/pathcap/internal/kallsyms"
)

// ProbeReadSites counts, for each kind of hook attached, the
// bpf_probe_read_kernel calls (and those of its variants: bpf_probe_read,
// _str) in the instructions the kernel runs for that kind's programs: the
// translated program after verification and dead-code removal, read back
// from the kernel, with each helper call's target resolved through
// /proc/kallsyms. The count is of call sites, the most a hit can make on
// one path through the program; the audit-safe variant has none.
func (r *Recorder) ProbeReadSites() (map[HookKind]int, error) {
	syms, err := kallsyms.Load()
	if err != nil {
		return nil, fmt.Errorf("count probe reads: %w", err)
	}
	base, ok := syms.Lookup("__bpf_call_base")
	if !ok {
		return nil, fmt.Errorf("count probe reads: no __bpf_call_base in /proc/kallsyms")
	}
	out := make(map[HookKind]int)
	for i, p := range r.progs {
		n, err := probeReadCalls(p, base.Addr, syms)
		if err != nil {
			return nil, err
		}
		k := r.progKinds[i]
		out[k] = max(out[k], n)
	}
	return out, nil
}

// probeReadCalls counts the calls of prog's translated instructions whose
// target (base + immediate, as the kernel dumps helper calls) is a
// bpf_probe_read* helper.
func probeReadCalls(prog *ebpf.Program, base uint64, syms *kallsyms.Table) (int, error) {
	info, err := prog.Info()
	if err != nil {
		return 0, fmt.Errorf("count probe reads: read program info: %w", err)
	}
	insns, err := info.Instructions()
	if err != nil {
		return 0, fmt.Errorf("count probe reads: read %s's instructions: %w", info.Name, err)
	}
	n := 0
	for _, ins := range insns {
		if !ins.IsBuiltinCall() {
			continue
		}
		if ins.Constant == 0 {
			// The kernel hides call targets from callers that may not
			// read kernel addresses.
			return 0, fmt.Errorf("count probe reads: %s: the kernel hides helper addresses (kernel.kptr_restrict?)", info.Name)
		}
		target := base + uint64(int64(int32(ins.Constant)))
		sym, ok := syms.Resolve(target)
		if ok && sym.Offset == 0 && strings.HasPrefix(sym.Name, "bpf_probe_read") && !strings.Contains(sym.Name, "user") {
			n++
		}
	}
	return n, nil
}
