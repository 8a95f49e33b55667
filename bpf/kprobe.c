//go:build ignore

// kprobe.c: the programs of the kprobe and kprobe-multi backends.
//
// One program serves every function: user space attaches it with one link
// per function (kprobe) or one link for all (kprobe-multi), giving each
// function an attach cookie that holds its hook id and the position of its
// struct sk_buff * argument (kernels before 5.15 have no attach cookies:
// there the cookie is looked up by the probed address). A second pair of programs follows clones and
// copies (skb_clone & co): the entry remembers the original, the return
// probe records the clone under an id of its own.
//
// The skb pointer of a kprobe is a plain number: every read of kernel
// memory is a bpf_probe_read_kernel call (a CO-RE relocated BPF_CORE_READ).
// To keep them few, the sk_buff is copied with one call into per-CPU
// scratch memory and all its fields are read from the copy; what else a hit
// reads is counted where it is read (common.h: locate, wanted, record). A
// recorded hit costs 1 (the sk_buff) + 4 (device: ifindex, type, namespace
// pointer and inode) + 1 (packet bytes) calls, and 1 more for the filter's
// bytes of a packet not yet followed when a filter expression is set.

#define BTF_READS 0
#include "common.h"

// Bits of the attach cookie: hook id in the low 16 bits, the skb's
// argument position (0 to 4) above it, a bit for functions that free the
// skb's memory (kfree_skbmem: its tracking entry ends there) and a bit for
// functions that never start following a packet (Hook.NoStart). The
// kprobe program does not read nf_hook_slow's hook state: two probe reads
// more in its one body made the 5.10 and 6.1 verifiers walk past 1M
// instructions with --bytes changed; nft_do_chain's hooks (fentry) carry
// the hook instead.
#define COOKIE_HOOK(c) ((__u16)(c))
#define COOKIE_ARG(c) ((__u32)((c) >> 16) & 0xff)
#define COOKIE_FREES(c) ((__u8)((c) >> 24) & 1)
#define COOKIE_NOSTART(c) ((__u8)((c) >> 25) & 1)

// 1: the kernel has bpf_get_attach_cookie (Linux 5.15+). Else each
// function's cookie is looked up in func_cookies by the probed address.
volatile const __u32 use_cookie = 1;

// Kinds of func_key: which program a function's cookie is for.
#define FUNC_RECORD 0 // on_kprobe
#define FUNC_CLONE 1  // on_clone_entry

struct func_key {
	__u64 addr; // the function's address (as /proc/kallsyms gives it)
	__u64 kind; // FUNC_*
};

// Cookies by function address, for kernels without attach cookies (filled
// by user space before attaching; one entry per probed function and kind).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1); // replaced by user space
	__type(key, struct func_key);
	__type(value, __u64);
} func_cookies SEC(".maps");

// Room for a copy of struct sk_buff (232 bytes on 6.x kernels).
#define SKB_COPY_SIZE 512

// The copy of the skb being recorded on this CPU. Kprobe programs do not
// nest on one CPU (the kernel skips a kprobe program that fires while
// another runs there), so one entry per CPU is enough.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__uint(value_size, SKB_COPY_SIZE);
} skb_copy SEC(".maps");

// A clone being made: the original's packet id and the cookie of the clone
// function (its hook id is the return probe's).
struct clone_info {
	__u64 parent;
	__u64 cookie;
};

// Clones being made: the thread's pid_tgid at the entry of a clone
// function, to what the return probe needs. The return probe takes the
// entry out. Bounded: an entry whose return never comes (a missed return
// probe) is evicted.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct clone_info);
} cloning SEC(".maps");

// Loads argument idx (0 to 4) of the probed function from the registers
// (x86-64 calling convention: di, si, dx, cx, r8). Each case is an inline
// asm load at the register's fixed offset in struct pt_regs: the verifier
// only allows context loads at constant offsets, and the compiler would
// otherwise compute one pointer for all cases. No helper.
static __always_inline __u64 reg_arg(struct pt_regs *ctx, __u32 idx)
{
	__u64 v = 0;

	switch (idx) {
	case 0:
		asm volatile("%0 = *(u64 *)(%1 + 112)" : "=r"(v) : "r"(ctx)); // di
		break;
	case 1:
		asm volatile("%0 = *(u64 *)(%1 + 104)" : "=r"(v) : "r"(ctx)); // si
		break;
	case 2:
		asm volatile("%0 = *(u64 *)(%1 + 96)" : "=r"(v) : "r"(ctx)); // dx
		break;
	case 3:
		asm volatile("%0 = *(u64 *)(%1 + 88)" : "=r"(v) : "r"(ctx)); // cx
		break;
	case 4:
		asm volatile("%0 = *(u64 *)(%1 + 72)" : "=r"(v) : "r"(ctx)); // r8
		break;
	}
	return v;
}

// The return value of the probed function (ax), at a return probe.
static __always_inline __u64 reg_ret(struct pt_regs *ctx)
{
	__u64 v;

	asm volatile("%0 = *(u64 *)(%1 + 80)" : "=r"(v) : "r"(ctx)); // ax
	return v;
}

// The cookie of the probed function for program kind (FUNC_*), or 0 if it
// has none. Helper: bpf_get_attach_cookie where the kernel has it; else one
// hash lookup by the probed address. On x86-64 a kprobe's handler sees the
// instruction pointer one byte past the probed address, whether the probe
// is a breakpoint, an optimized jump or an ftrace call site; a kprobe on a
// function's entry is at the address kallsyms gives.
static __always_inline __u64 func_cookie(struct pt_regs *ctx, __u64 kind)
{
	struct func_key key;
	__u64 *c, ip;

	if (use_cookie)
		return bpf_get_attach_cookie(ctx);
	asm volatile("%0 = *(u64 *)(%1 + 128)" : "=r"(ip) : "r"(ctx)); // ip
	key.addr = ip - 1;
	key.kind = kind;
	c = bpf_map_lookup_elem(&func_cookies, &key);
	return c ? *c : 0;
}

// Copies the sk_buff at addr into this CPU's scratch entry and returns the
// copy, or NULL. Helper: the one bpf_probe_read_kernel for all the skb's
// fields; its size is the running kernel's sizeof(struct sk_buff) (a CO-RE
// relocation, a constant to the verifier), capped by the entry's size.
static __always_inline struct sk_buff *copy_skb(__u64 addr)
{
	__u32 zero = 0, size = bpf_core_type_size(struct sk_buff);
	void *buf;

	if (size > SKB_COPY_SIZE)
		size = SKB_COPY_SIZE;
	// Helper: per-CPU array lookup, inlined by the verifier.
	buf = bpf_map_lookup_elem(&skb_copy, &zero);
	if (!buf)
		return NULL;
	if (bpf_probe_read_kernel(buf, size, (void *)addr) < 0)
		return NULL;
	return buf;
}

// The entry of a probed function (kprobe or kprobe-multi).
SEC("kprobe")
int on_kprobe(struct pt_regs *ctx)
{
	// The cookie user space gave this function (never 0: hook ids of
	// functions follow the tracepoints').
	__u64 cookie = func_cookie(ctx, FUNC_RECORD);
	struct cpu_state *state;
	struct hit h = {};

	if (!cookie)
		return 0;
	h.key = reg_arg(ctx, COOKIE_ARG(cookie));
	if (!h.key)
		return 0;
	h.skb = copy_skb(h.key);
	if (!h.skb)
		return 0;
	h.hook = COOKIE_HOOK(cookie);
	h.frees = COOKIE_FREES(cookie);
	h.nostart = COOKIE_NOSTART(cookie);
	state = cpu_state();
	if (!state)
		return 0;
	if (filtered && !admit(&h, state))
		return 0;
	return record(ctx, &h, state);
}

// The entry of a clone function: remembers the original's packet id and
// the function's cookie for the return probe, if the original is followed.
SEC("kprobe")
int on_clone_entry(struct pt_regs *ctx)
{
	// The cookie holds the original's argument position and the return
	// probe's hook id.
	struct clone_info info = {.cookie = func_cookie(ctx, FUNC_CLONE)};
	// Helper: the thread, to match the return to this entry.
	__u64 tid = bpf_get_current_pid_tgid();

	if (!info.cookie)
		return 0;
	info.parent = followed_id(reg_arg(ctx, COOKIE_ARG(info.cookie)));
	if (!info.parent)
		return 0;
	// Helper: remember the original until the function returns.
	bpf_map_update_elem(&cloning, &tid, &info, BPF_ANY);
	return 0;
}

// The return of a clone function: records the clone (the return value)
// under an id of its own, linked to the original's.
SEC("kretprobe")
int on_clone_return(struct pt_regs *ctx)
{
	// Helper: the thread whose entry stored the original.
	__u64 tid = bpf_get_current_pid_tgid();
	struct cpu_state *state;
	struct clone_info *info;
	struct hit h = {};
	__u64 cookie;

	// Helper: the original's id and the cookie, stored at the entry.
	info = bpf_map_lookup_elem(&cloning, &tid);
	if (!info)
		return 0;
	h.parent = info->parent;
	cookie = info->cookie;
	// Helper: done with the entry.
	bpf_map_delete_elem(&cloning, &tid);

	h.key = reg_ret(ctx); // the clone, or NULL
	if (!h.key || !h.parent)
		return 0;
	h.skb = copy_skb(h.key);
	if (!h.skb)
		return 0;
	h.retval = h.key;
	h.has_ret = 1;
	h.hook = COOKIE_HOOK(cookie);
	state = cpu_state();
	if (!state)
		return 0;
	return record(ctx, &h, state);
}
