package capture

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/pathcap/pathcap/bpf"

	"github.com/pathcap/pathcap/kmeta"
)

// BPFProgram is a BPF program loaded on the host that a hook traces
// (Config.TraceTC): the hook is its entry (fentry) or exit (fexit).
type BPFProgram struct {
	// Type is the program's kind: kmeta.ProgTC or kmeta.ProgXDP.
	Type string
	// ID is the kernel's id of the program, as bpftool shows it.
	ID uint32
	// Name is the name of the program's main function in its BTF (the
	// kernel's program name is cut to 15 bytes).
	Name string
	// Tag is the program's tag, 16 hex digits.
	Tag string

	target *ebpf.Program // the program, open while the tracing programs are loaded
}

// progKind returns the kmeta.Prog* kind of a program of type t, or "" for
// a type that is not traced.
func progKind(t ebpf.ProgramType) string {
	switch t {
	case ebpf.SchedCLS, ebpf.SchedACT:
		return kmeta.ProgTC
	case ebpf.XDP:
		return kmeta.ProgXDP
	}
	return ""
}

// progCandidate is a loaded program of a traced kind.
type progCandidate struct {
	prog *BPFProgram
	name string // the kernel's program name (Info().Name)
	err  error  // why it cannot be traced (no BTF), nil if it can
}

// listPrograms returns the loaded programs of the kinds in kinds, each
// open (the caller closes them), in id order. A program that goes away
// while it is listed is skipped.
func listPrograms(kinds []string) ([]progCandidate, error) {
	var out []progCandidate
	id := ebpf.ProgramID(0)
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return out, nil
		}
		if err != nil {
			closeCandidates(out)
			return nil, fmt.Errorf("list BPF programs after id %d: %w", id, permissionError(err))
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			closeCandidates(out)
			return nil, fmt.Errorf("open BPF program %d: %w", id, permissionError(err))
		}
		info, err := p.Info()
		if err != nil {
			p.Close()
			closeCandidates(out)
			return nil, fmt.Errorf("read BPF program %d: %w", id, permissionError(err))
		}
		kind := progKind(info.Type)
		if kind == "" || !slices.Contains(kinds, kind) {
			p.Close()
			continue
		}
		c := progCandidate{
			prog: &BPFProgram{Type: kind, ID: uint32(id), Name: info.Name, Tag: info.Tag, target: p},
			name: info.Name,
		}
		c.prog.Name, c.err = mainFunc(info)
		if c.err != nil {
			c.prog.Name = info.Name
		}
		out = append(out, c)
	}
}

// mainFunc returns the name of the function at the start of the program
// of info, from the program's BTF: fentry and fexit attach to a BPF
// program through it.
func mainFunc(info *ebpf.ProgramInfo) (string, error) {
	if _, ok := info.BTFID(); !ok {
		return "", errors.New("it was loaded without BTF, and only programs with BTF can be traced")
	}
	funcs, err := info.FuncInfos()
	if err != nil {
		return "", fmt.Errorf("read its BTF function information: %w", err)
	}
	for _, f := range funcs {
		if f.Offset == 0 && f.Func != nil && f.Func.Name != "" {
			return f.Func.Name, nil
		}
	}
	return "", errors.New("its BTF names no function at its first instruction")
}

// closeCandidates closes the programs of cs.
func closeCandidates(cs []progCandidate) {
	for _, c := range cs {
		c.prog.target.Close()
	}
}

// selectPrograms returns the candidates that want (ids or names; empty:
// all) selects. A program asked for by id or name that cannot be traced,
// or an id or name that matches none, is an error; programs that cannot
// be traced and were not asked for are returned in skipped.
func selectPrograms(cs []progCandidate, want []string) (sel []progCandidate, skipped []string, err error) {
	matches := func(c progCandidate, w string) bool {
		if id, err := strconv.ParseUint(w, 10, 32); err == nil {
			return uint64(c.prog.ID) == id
		}
		return w == c.name || w == c.prog.Name
	}
	for _, w := range want {
		if !slices.ContainsFunc(cs, func(c progCandidate) bool { return matches(c, w) }) {
			return nil, nil, fmt.Errorf("trace BPF program %q: %w: no loaded program of a traced kind (--trace-tc, --trace-xdp) has that id or name", w, ErrUnknownHook)
		}
	}
	for _, c := range cs {
		if len(want) > 0 && !slices.ContainsFunc(want, func(w string) bool { return matches(c, w) }) {
			continue
		}
		if c.err != nil {
			if len(want) > 0 {
				return nil, nil, fmt.Errorf("trace %s program %d (%s): %w: %w", c.prog.Type, c.prog.ID, c.name, ErrBackend, c.err)
			}
			skipped = append(skipped, fmt.Sprintf("%s program %d (%s): %v", c.prog.Type, c.prog.ID, c.name, c.err))
			continue
		}
		sel = append(sel, c)
	}
	return sel, skipped, nil
}

// progHook returns the hook of the entry or exit of the program p: its one
// argument is the kernel's object (the verifier types a tc program's
// struct __sk_buff * as the kernel's struct sk_buff * for a tracing
// program, an XDP program's struct xdp_md * as struct xdp_buff *), its
// return value an int.
func progHook(p *BPFProgram) Hook {
	return Hook{
		Name:        "bpf_prog_" + p.Tag + "_" + p.Name,
		SKBArg:      0,
		DevArg:      -1,
		ReasonArg:   -1,
		LocationArg: -1,
		NArgs:       1,
		Prog:        p,
		ret:         retType{size: 4, signed: true},
	}
}

// attachPrograms attaches an fentry and an fexit program to every BPF
// program Config.TraceTC and Config.TraceXDP select. Nothing is attached
// unless they ask.
func (r *Recorder) attachPrograms(cfg Config, env *loadEnv) error {
	var kinds []string
	if cfg.TraceTC {
		kinds = append(kinds, kmeta.ProgTC)
	}
	if cfg.TraceXDP {
		kinds = append(kinds, kmeta.ProgXDP)
	}
	if len(kinds) == 0 {
		return nil
	}
	what := strings.Join(kinds, " and ")
	cs, err := listPrograms(kinds)
	if err != nil {
		return err
	}
	// The tracing programs hold their own references to their targets.
	defer closeCandidates(cs)
	sel, skipped, err := selectPrograms(cs, cfg.BPFPrograms)
	if err != nil {
		return err
	}
	for _, s := range skipped {
		r.compat.notes = append(r.compat.notes, "not traced: "+s)
	}
	if len(sel) == 0 {
		why := "no " + what + " BPF program is loaded"
		if len(skipped) > 0 {
			why = "no loaded " + what + " BPF program can be traced"
		}
		return fmt.Errorf("trace %s programs: %w: %s", what, ErrNoHooks, why)
	}
	if err := haveBackend(BackendFentry, kmeta.HookMemoryFree, env.kernel, env.opts.Cache); err != nil {
		return fmt.Errorf("trace %s programs: %w: %w", what, ErrBackend, err)
	}
	for _, c := range sel {
		h := progHook(c.prog)
		entry := env.knobs
		entry.pairCalls = true
		hook := r.addHook(h, HookFentry)
		id := hook.ID
		if err := r.attachProgHook(hook, entry, env); err != nil {
			r.hooks = r.hooks[:len(r.hooks)-1]
			return fmt.Errorf("trace %s program %d (%s): %w", c.prog.Type, c.prog.ID, c.prog.Name, err)
		}
		exit := env.knobs
		exit.exit = true
		exit.entryHook = id
		exit.retArg = h.NArgs
		hook = r.addHook(h, HookFexit)
		if err := r.attachProgHook(hook, exit, env); err != nil {
			r.hooks = r.hooks[:len(r.hooks)-1]
			return fmt.Errorf("trace %s program %d (%s): %w", c.prog.Type, c.prog.ID, c.prog.Name, err)
		}
	}
	return nil
}

// attachProgHook loads and attaches the program of hook h on a BPF
// program: the skb program (bpf/skb.c) for a tc program, whose argument
// is an skb like any other hook's, the XDP program (bpf/xdp.c) for an XDP
// program.
func (r *Recorder) attachProgHook(h *Hook, k hookKnobs, env *loadEnv) error {
	if h.Prog.Type != kmeta.ProgXDP {
		return r.attachTracing(h, k, env)
	}
	prog, err := loadXDPHook(h, k, env)
	if err != nil {
		return err
	}
	return r.attachLoaded(h, prog)
}

// loadXDPHook loads the program of bpf/xdp.c for hook h (the entry or exit
// of an XDP program) with the knobs k and the shared maps of env.
func loadXDPHook(h *Hook, k hookKnobs, env *loadEnv) (*ebpf.Program, error) {
	spec, err := bpf.LoadXdp()
	if err != nil {
		return nil, fmt.Errorf("load BPF object: %w", err)
	}
	if err := setKnobs(spec, h, k); err != nil {
		return nil, err
	}
	// The shared maps as created (sizes set by user space).
	for name := range env.opts.MapReplacements {
		if _, ok := spec.Maps[name]; ok {
			spec.Maps[name] = env.spec.Maps[name].Copy()
		}
	}
	ps := spec.Programs[bpf.XdpProgOnXdp]
	ps.AttachTo = h.Prog.Name
	ps.AttachTarget = h.Prog.target
	ps.AttachType = ebpf.AttachTraceFEntry
	if h.Kind == HookFexit {
		ps.AttachType = ebpf.AttachTraceFExit
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, env.opts)
	if err != nil {
		return nil, loadError("hook "+h.Kind.String()+":"+h.Name, err)
	}
	loaded := coll.DetachProgram(bpf.XdpProgOnXdp)
	coll.Close()
	return loaded, nil
}

// CheckProgramTracing reports whether this kernel lets record attach
// fentry and fexit programs, which tracing tc and XDP programs needs: an
// error wrapping ErrBackend says why not (lockdown and other policies
// refuse the load with EPERM). It loads and attaches a trivial program.
func CheckProgramTracing() error {
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("raise memlock limit: %w", permissionError(err))
	}
	kernel, err := loadKernelBTF()
	if err != nil {
		return err
	}
	if err := haveBackend(BackendFentry, kmeta.HookMemoryFree, kernel, nil); err != nil {
		return fmt.Errorf("%w: %w", ErrBackend, err)
	}
	return nil
}
