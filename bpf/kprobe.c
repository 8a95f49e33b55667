//go:build ignore

// kprobe.c: the programs of the kprobe and kprobe-multi backends.
//
// One program serves every function: user space attaches it with one link
// per function (kprobe) or one link for all (kprobe-multi), giving each
// function an attach cookie that holds its hook id and the position of its
// struct sk_buff * argument. A second pair of programs follows clones and
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
// argument position (0 to 4) above it, and a bit for functions that free
// the skb's memory (kfree_skbmem: its tracking entry ends there).
#define COOKIE_HOOK(c) ((__u16)(c))
#define COOKIE_ARG(c) ((__u32)((c) >> 16) & 0xff)
#define COOKIE_FREES(c) ((__u8)((c) >> 24) & 1)

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

// Clones being made: the thread's pid_tgid at the entry of a clone
// function, to the original's packet id. The return probe takes the entry
// out. Bounded: an entry whose return never comes (a missed return probe)
// is evicted.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
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
	// Helper: the cookie user space gave this function's attachment.
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct cpu_state *state;
	struct hit h = {};

	h.key = reg_arg(ctx, COOKIE_ARG(cookie));
	if (!h.key)
		return 0;
	h.skb = copy_skb(h.key);
	if (!h.skb)
		return 0;
	h.hook = COOKIE_HOOK(cookie);
	h.frees = COOKIE_FREES(cookie);
	state = cpu_state();
	if (!state)
		return 0;
	return record(ctx, &h, state);
}

// The entry of a clone function: remembers the original's packet id for
// the return probe, if the original is followed.
SEC("kprobe")
int on_clone_entry(struct pt_regs *ctx)
{
	// Helper: the cookie holds the original's argument position.
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 id = followed_id(reg_arg(ctx, COOKIE_ARG(cookie)));
	// Helper: the thread, to match the return to this entry.
	__u64 tid = bpf_get_current_pid_tgid();

	if (!id)
		return 0;
	// Helper: remember the original until the function returns.
	bpf_map_update_elem(&cloning, &tid, &id, BPF_ANY);
	return 0;
}

// The return of a clone function: records the clone (the return value)
// under an id of its own, linked to the original's.
SEC("kretprobe")
int on_clone_return(struct pt_regs *ctx)
{
	// Helper: the cookie holds the hook id of the clone function.
	__u64 cookie = bpf_get_attach_cookie(ctx);
	// Helper: the thread whose entry stored the original.
	__u64 tid = bpf_get_current_pid_tgid();
	struct cpu_state *state;
	struct hit h = {};
	__u64 *parent;

	// Helper: the original's id, stored at the entry.
	parent = bpf_map_lookup_elem(&cloning, &tid);
	if (!parent)
		return 0;
	h.parent = *parent;
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
