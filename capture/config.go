package capture

import (
	"fmt"
	"os"

	"github.com/cilium/ebpf/asm"
)

// Defaults and limits of [Config].
const (
	// DefaultSnaplen is the snap length used when Config.Snaplen is 0.
	DefaultSnaplen = 256
	// MaxSnaplen is the largest snap length the BPF program accepts.
	MaxSnaplen = 65535
	// DefaultRingBufferSize is the ring buffer size used when
	// Config.RingBufferSize is 0: 32 MiB, about 85,000 records at the
	// default snap length. 64 MiB absorbed longer reader stalls, but
	// made each recorded hit 100-150 ns dearer on the test machine (the
	// ring no longer fits its 32 MB last-level cache: docs/BENCHMARKS.md,
	// Loss); --ring-size raises it.
	DefaultRingBufferSize = 32 << 20
	// DefaultTrackedPackets is the number of packets followed at once
	// when Config.TrackedPackets is 0.
	DefaultTrackedPackets = 1 << 16
	// MaxTrackedPackets is the largest Config.TrackedPackets (64 bytes
	// each).
	MaxTrackedPackets = 1 << 24
	// DefaultAuditSafeRate is Config.MaxRate in audit-safe mode when none
	// is set: a second guard besides making no probe reads.
	DefaultAuditSafeRate = 200000
	// DefaultStackDepth is the most kernel stack frames recorded per event
	// when stacks are on.
	DefaultStackDepth = 64
)

// Config selects what a [Recorder] records.
type Config struct {
	// Snaplen is the most packet bytes recorded per event (0 means
	// DefaultSnaplen). Each event takes this much ring buffer space.
	Snaplen int
	// RingBufferSize is the size in bytes of the ring buffer shared by all
	// hooks: a power of two and a multiple of the page size (0 means
	// DefaultRingBufferSize).
	RingBufferSize int
	// TrackedPackets is how many packets can be followed at once (0 means
	// DefaultTrackedPackets, at most MaxTrackedPackets), rounded up to a
	// power of two. The table is set-associative: an skb address selects
	// a set of four entries, and a packet that finds its set full replaces
	// the one that was first followed longest ago.
	TrackedPackets int
	// Hooks names the tracepoints to attach, as in [Hook.Name]; nil means
	// all that the kernel offers (see [ListHooks]). The hooks that free skbs (kfree_skb,
	// consume_skb) are attached in any case, to end tracking; they record
	// only if named here.
	Hooks []string
	// Backend chooses how kernel functions are hooked, in addition to the
	// tracepoints (which are always attached: kfree_skb gives drop
	// reasons): BackendTracepoint (no functions), BackendKprobeMulti,
	// BackendKprobe, BackendFentry, or BackendAuto ("" too), which picks
	// fentry for a Functions pattern matching at most AutoFentryMax
	// functions, else the first that the kernel allows of kprobe-multi,
	// fentry (on DefaultFunctions) and kprobe, else tracepoints only
	// (Exit makes it fentry). See docs/BACKENDS.md.
	// [Recorder.Backend] tells which was chosen.
	Backend string
	// Functions is a regular expression selecting the kernel functions
	// (among those taking a struct sk_buff *, see [ListFunctions]) that
	// the function backend attaches to. Empty means every such function
	// for kprobe-multi and [DefaultFunctions] for kprobe and fentry.
	Functions string
	// Exit also hooks the exit of every function (fentry backend: one
	// fexit program each), so that events carry return values.
	Exit bool

	// TraceTC attaches an fentry and an fexit program to every tc BPF
	// program (cls_bpf and tcx: BPF_PROG_TYPE_SCHED_CLS and SCHED_ACT)
	// loaded when the recording starts: the entry records the packet as
	// the program sees it (its struct sk_buff, followed like at any other
	// hook), the exit the program's verdict. Programs without BTF cannot
	// be traced. See docs/BACKENDS.md.
	TraceTC bool
	// TraceXDP does the same for XDP programs: the entry records the
	// frame as the program sees it (before any struct sk_buff exists:
	// each hit is a packet of its own), the exit its action.
	TraceXDP bool
	// BPFPrograms narrows TraceTC and TraceXDP to these programs: each an id (decimal)
	// or a name (the program's name or its BTF function name). Empty
	// means every tc program.
	BPFPrograms []string
	// NoNetfilter leaves out the exit of nftables' nft_do_chain, which a
	// function backend otherwise hooks (fexit): its events carry the base
	// chain that ran (table, chain) and its verdict, the netfilter hook
	// and family (see capture/netfilter.go for what each kernel allows).
	NoNetfilter bool

	// Stack records the kernel stack of every event (Event.Stack), at most
	// StackDepth frames (0 means DefaultStackDepth, at most MaxStackDepth).
	// Each frame takes 8 bytes of ring buffer per event.
	Stack      bool
	StackDepth int

	// Filter, if not nil, is a compiled filter expression: a packet not
	// yet followed is recorded only if it matches (and Match matches too).
	// It runs in the kernel on the packet's first bytes.
	Filter *Filter
	// Match selects packets by kernel metadata, ANDed with Filter.
	Match Match
	// NoTrack runs the filter at every hook, also for packets already
	// followed. By default a packet that matched once is recorded at every
	// later hook, whatever its bytes become (NAT, encapsulation).
	NoTrack bool
	// BytesChanged records a followed packet's bytes only at its first hit
	// and where they may have changed since the last hit that recorded
	// them (a fingerprint of where they are, how many there are and a hash
	// of the first 128 of them differs); the other hits
	// carry no bytes and have [Event.BytesSame] set, and take no room for
	// bytes in the ring buffer. Readers carry the earlier bytes forward
	// (docs/FORMAT.md). Without it every hit carries its bytes. It has no
	// effect when no bytes are recorded at all (audit-safe mode).
	BytesChanged bool

	// ProbeReads says whether the programs may call
	// bpf_probe_read_kernel at every hit: ProbeReadsAuto ("" too) unless
	// [DetectAuditHazard] finds it unsafe on this host, ProbeReadsOn
	// always, ProbeReadsOff never (audit-safe mode). Without probe reads,
	// events carry no packet bytes, a filter expression needs a kernel
	// that lets programs load packet bytes in place, and the kprobe
	// backends (which read every field with the helper) are not used.
	// [Recorder.AuditSafe] tells what was decided.
	ProbeReads string
	// MaxRate is the most events recorded per second, enforced in the
	// kernel on each CPU (MaxRate divided by the number of CPUs, rounded
	// up). 0 means no limit, or DefaultAuditSafeRate in audit-safe mode.
	// Hits past it are counted in Stats.OverBudget.
	MaxRate int

	// Progress, if not nil, is called while NewRecorder loads and
	// attaches programs, after each one. Calls never overlap; it must
	// return quickly.
	Progress func(Progress)

	// filter replaces the body of the in-kernel packet filter; nil keeps
	// every packet. It takes precedence over Filter. See replaceFilter.
	filter asm.Instructions
	// probeRead copies the filter's bytes with bpf_probe_read_kernel even
	// where the kernel allows direct loads.
	probeRead bool
	// wakeupBytes is the fill level at whose multiples the BPF program
	// wakes the reader; 0 means a quarter of the ring buffer.
	wakeupBytes int
}

// Values of Config.ProbeReads.
const (
	// ProbeReadsAuto makes probe reads unless the host has the SELinux
	// audit flood or refuses them (see DetectAuditHazard).
	ProbeReadsAuto = "auto"
	// ProbeReadsOn always makes probe reads, even where each writes an
	// audit record.
	ProbeReadsOn = "on"
	// ProbeReadsOff never makes probe reads: audit-safe mode.
	ProbeReadsOff = "off"
)

// Match selects packets by kernel metadata, evaluated in the kernel for
// each packet not yet followed. Zero fields match anything.
type Match struct {
	// NetNS is the inode number of a network namespace (as in
	// [Event.NetNS]): the device's, or the socket's if the skb has no
	// device.
	NetNS uint32
	// Ifindex is a device index (as in [Event.Ifindex]). Indexes repeat
	// across namespaces: set NetNS too.
	Ifindex uint32
	// Mark and MarkMask select skb->mark & MarkMask == Mark. A MarkMask of
	// 0 ignores the mark; to match a mark of 0, set MarkMask.
	Mark, MarkMask uint32
	// PID is the thread group id of the task running when the hook fires.
	// Hooks in softirq context run on behalf of whichever task they
	// interrupted, so this selects sending more reliably than receiving.
	PID uint32
}

// withDefaults fills in cfg's zero values and checks the rest.
func (cfg Config) withDefaults() (Config, error) {
	switch cfg.Backend {
	case "":
		cfg.Backend = BackendAuto
	case BackendAuto, BackendTracepoint, BackendKprobeMulti, BackendKprobe, BackendFentry:
	default:
		return cfg, fmt.Errorf("select backend %q: %w", cfg.Backend, ErrBackend)
	}
	if len(cfg.BPFPrograms) > 0 && !cfg.TraceTC && !cfg.TraceXDP {
		return cfg, fmt.Errorf("select BPF programs %q: %w: they are traced only with TraceTC or TraceXDP", cfg.BPFPrograms, ErrUnknownHook)
	}
	if cfg.TraceXDP && (cfg.Filter != nil || cfg.filter != nil || cfg.Match != Match{}) {
		return cfg, fmt.Errorf("trace XDP programs: %w: XDP frames are recorded unfiltered (they have no skb to follow); record them without a filter expression, --netns, --ifname, --mark or --pid", ErrFilter)
	}
	if cfg.Exit && cfg.Backend != BackendFentry && cfg.Backend != BackendAuto {
		return cfg, fmt.Errorf("select backend %s: %w: function exits need fentry", cfg.Backend, ErrBackend)
	}
	switch cfg.ProbeReads {
	case "":
		cfg.ProbeReads = ProbeReadsAuto
	case ProbeReadsAuto, ProbeReadsOn, ProbeReadsOff:
	default:
		return cfg, fmt.Errorf("check probe reads %q: want %s, %s or %s", cfg.ProbeReads, ProbeReadsAuto, ProbeReadsOn, ProbeReadsOff)
	}
	if cfg.MaxRate < 0 {
		return cfg, fmt.Errorf("check max rate %d: want 0 (no limit) or more", cfg.MaxRate)
	}
	if cfg.StackDepth == 0 {
		cfg.StackDepth = DefaultStackDepth
	}
	if cfg.StackDepth < 0 || cfg.StackDepth > MaxStackDepth {
		return cfg, fmt.Errorf("check stack depth %d: want 1 to %d", cfg.StackDepth, MaxStackDepth)
	}
	stack := 0
	if cfg.Stack {
		stack = 8 * cfg.StackDepth
	}
	if cfg.Snaplen == 0 {
		cfg.Snaplen = DefaultSnaplen
	}
	if cfg.Snaplen < 0 || cfg.Snaplen > MaxSnaplen {
		return cfg, fmt.Errorf("check snap length %d: want 1 to %d", cfg.Snaplen, MaxSnaplen)
	}
	if cfg.RingBufferSize == 0 {
		cfg.RingBufferSize = DefaultRingBufferSize
	}
	page := os.Getpagesize()
	size := cfg.RingBufferSize
	if size < page || size&(size-1) != 0 || size > 1<<30 {
		return cfg, fmt.Errorf("check ring buffer size %d: want a power of two from %d to %d", size, page, 1<<30)
	}
	if need := 4 * (recordSize + stack + cfg.Snaplen + 8); size < need {
		return cfg, fmt.Errorf("check ring buffer size %d: want at least %d for snap length %d", size, need, cfg.Snaplen)
	}
	if cfg.wakeupBytes == 0 {
		cfg.wakeupBytes = cfg.RingBufferSize / 4
	}
	if cfg.TrackedPackets == 0 {
		cfg.TrackedPackets = DefaultTrackedPackets
	}
	if cfg.TrackedPackets < 0 || cfg.TrackedPackets > MaxTrackedPackets {
		return cfg, fmt.Errorf("check tracked packets %d: want a number from 1 to %d", cfg.TrackedPackets, MaxTrackedPackets)
	}
	if m := cfg.Match; m.Mark&^m.MarkMask != 0 {
		return cfg, fmt.Errorf("check mark %#x/%#x: %w: the value has bits outside the mask", m.Mark, m.MarkMask, ErrFilter)
	}
	return cfg, nil
}
