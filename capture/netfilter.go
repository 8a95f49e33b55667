package capture

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/pathcap/pathcap/bpf"
	"github.com/pathcap/pathcap/kmeta"
)

// Netfilter's functions that record describes beyond their skb:
// nf_hook_slow runs a netfilter hook's functions (its events carry the
// hook and family), nft_do_chain runs an nftables base chain (its exit
// carries the chain and the verdict).
const (
	nfHookSlow = "nf_hook_slow"
	nftDoChain = "nft_do_chain"
	// nfTablesModule is the module nft_do_chain is in, where it is not
	// built into vmlinux.
	nfTablesModule = "nf_tables"
)

// nftState is what naming the chains of nft_do_chain events needs: the
// maps the BPF program fills (bpf/skb.c nft_chains) and the names read
// from them so far.
type nftState struct {
	chains  *ebpf.Map // chain address to struct nft_names
	scratch *ebpf.Map // per-CPU room to build an entry in
	names   map[uint64]nftChain
}

// nftChain is the names of one base chain, as read from nft_chains.
type nftChain struct {
	handle uint32 // low bits of the chain's handle, as events carry them
	family uint8  // the table's family (NFPROTO_*)
	table  string
	chain  string
}

// attachNetfilter hooks the entry and exit of nft_do_chain when a function backend
// records (and Config.NoNetfilter does not say otherwise). It never fails
// the recording: where the kernel does not allow it (no fentry, nf_tables
// not loaded, no BTF for modules before Linux 5.11) a note says why.
func (r *Recorder) attachNetfilter(cfg Config, env *loadEnv) {
	if cfg.NoNetfilter || r.backend == BackendTracepoint || r.backend == "" {
		return
	}
	if err := r.hookNFTChain(env); err != nil {
		r.compat.notes = append(r.compat.notes, "nftables chains are not named (nft_do_chain's exit not hooked): "+err.Error())
		return
	}
	if !env.knobs.copyBytes {
		r.compat.notes = append(r.compat.notes, "nftables verdicts are recorded without table and chain names: reading them takes bpf_probe_read_kernel, which audit-safe recording does not call")
	}
}

// hookNFTChain loads and attaches the fentry and fexit programs of
// nft_do_chain.
func (r *Recorder) hookNFTChain(env *loadEnv) error {
	opts := env.opts
	mod, err := nfTablesBTF(env.kernel, env.opts.Cache)
	if err != nil {
		return err
	}
	if mod != nil {
		targets := opts.Programs.ExtraRelocationTargets
		opts.Programs.ExtraRelocationTargets = append(targets[:len(targets):len(targets)], mod)
	}
	if err := haveBackend(BackendFentry, kmeta.HookMemoryFree, env.kernel, env.opts.Cache); err != nil {
		return err
	}
	chain := Hook{
		Name:        nftDoChain,
		DevArg:      -1,
		ReasonArg:   -1,
		LocationArg: -1,
		NArgs:       2,
		NoStart:     true,
		NFTChain:    true,
		ret:         retType{size: 4},
	}
	// Entry and exit, paired: where the kernel frees a dropped skb inside
	// nft_do_chain (Linux 6.4+ passes the drop reason that way), the exit
	// sees a freed skb and records the verdict under the entry's id.
	entry := env.knobs
	entry.pairCalls = true
	exit := env.knobs
	exit.exit = true
	exit.retArg = 2
	for i, kind := range []HookKind{HookFentry, HookFexit} {
		if i == 1 {
			// The exit is recorded when its entry was (pairing), also
			// after the chain freed the skb.
			chain.NoStart = false
		}
		h := r.addHook(chain, kind)
		k := entry
		if i == 1 {
			k = exit
			k.entryHook = h.ID - 1
		}
		prog, err := loadHook(env.spec, h, opts, k)
		if err == nil {
			err = r.attachLoaded(h, prog)
		}
		if err != nil {
			r.hooks = r.hooks[:len(r.hooks)-1]
			if i == 1 {
				// Events of the entry could not be told from an exit's.
				return fmt.Errorf("%w (its entry stays hooked)", err)
			}
			return err
		}
	}
	return nil
}

// nfTablesBTF returns the BTF of the nf_tables module, or nil where
// nf_tables is built into vmlinux (kernel has its types), or why neither
// is available.
func nfTablesBTF(kernel *btf.Spec, cache *btf.Cache) (*btf.Spec, error) {
	if _, err := kernel.AnyTypeByName("nft_pktinfo"); err == nil {
		return nil, nil
	}
	if cache == nil {
		cache = btf.NewCache()
	}
	// Through the recorder's cache: the module's BTF is split BTF whose
	// base is the kernel's, decoded once for both.
	mod, err := cache.Module(nfTablesModule)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("nf_tables is not loaded, or this kernel has no BTF for modules (Linux 5.11+ with CONFIG_DEBUG_INFO_BTF_MODULES)")
		}
		return nil, fmt.Errorf("read the BTF of nf_tables: %w", err)
	}
	return mod, nil
}

// netfilterSupport says why nft_do_chain cannot be hooked here (see
// nfTablesBTF), or nil.
func netfilterSupport(kernel *btf.Spec) error {
	_, err := nfTablesBTF(kernel, nil)
	return err
}

// name fills the chain names of ev, an event of nft_do_chain's exit whose
// base chain is at address chain with handle (low bits) handle, from the
// names read before or from the nft_chains map. Names stay empty when the
// map has none for that chain (audit-safe mode) or has since been renewed
// for another chain at the address.
func (n *nftState) name(ev *Event, chain uint64, handle uint32) {
	c, ok := n.names[chain]
	if !ok || c.handle != handle {
		var v bpf.SkbNftNames
		if n.chains == nil || n.chains.Lookup(chain, &v) != nil || uint32(v.Handle) != handle {
			return
		}
		c = nftChain{handle: handle, family: uint8(v.Family), table: cString(v.TableName[:]), chain: cString(v.ChainName[:])}
		if n.names == nil {
			n.names = make(map[uint64]nftChain)
		}
		if len(n.names) >= 1<<14 {
			clear(n.names)
		}
		n.names[chain] = c
	}
	ev.NFTFamily, ev.NFTTable, ev.NFTChain = c.family, c.table, c.chain
}

// cString returns the NUL-terminated string in b.
func cString[T ~int8 | ~uint8](b []T) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}
