package capture

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/pathcap/pathcap/internal/kallsyms"
)

// Kinds of a func_cookies key (FUNC_RECORD and FUNC_CLONE in bpf/kprobe.c).
const (
	funcRecord = 0
	funcClone  = 1
)

// funcKey is struct func_key of bpf/kprobe.c.
type funcKey struct {
	Addr uint64
	Kind uint64
}

// funcCookies fills the func_cookies map of the kprobe programs on kernels
// without attach cookies: each probed function's cookie under each of its
// addresses (a name that several functions share has several; the kprobe
// lands on one of them).
type funcCookies struct {
	syms *kallsyms.Table
	m    *ebpf.Map // set once the kprobe object is loaded
}

// newFuncCookies reads the kernel's symbol table.
func newFuncCookies() (*funcCookies, error) {
	syms, err := kallsyms.Load()
	if err != nil {
		return nil, fmt.Errorf("read kernel symbols for kprobes without attach cookies: %w", err)
	}
	return &funcCookies{syms: syms}, nil
}

// room returns the number of entries the map needs for fns and clones.
func (f *funcCookies) room(fns, clones []Hook) int {
	n := 1
	for _, list := range [][]Hook{fns, clones} {
		for _, h := range list {
			n += len(f.syms.LookupAll(h.Name))
		}
	}
	return n
}

// put stores cookie for the function name and program kind.
func (f *funcCookies) put(name string, kind uint64, cookie uint64) error {
	syms := f.syms.LookupAll(name)
	if len(syms) == 0 {
		return fmt.Errorf("find address of %s: not in /proc/kallsyms", name)
	}
	for _, s := range syms {
		if err := f.m.Put(funcKey{Addr: s.Addr, Kind: kind}, cookie); err != nil {
			return fmt.Errorf("store cookie of %s: %w", name, err)
		}
	}
	return nil
}
