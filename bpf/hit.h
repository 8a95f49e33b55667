// hit.h: the body of the BTF-typed entry points, on_skb (skb.c: tp_btf,
// fentry, fexit) and on_skb_shared (skbshared.c: a raw tracepoint program
// shared by several tracepoints): where the hook's arguments are, and the
// entry point itself, which describes the hit and records it. Included
// after common.h, once per object.
#ifndef PATHCAP_HIT_H
#define PATHCAP_HIT_H

// Loads argument idx of the hook (for fexit, index nr_args is the return
// value). Each index is a separate inline asm load at a fixed offset:
// tracing programs only type (and let us dereference) context loads at
// constant offsets, and the compiler must not merge the cases into one load
// at a computed offset. idx is a .rodata constant, so the verifier only
// walks the live case.
static __always_inline __u64 load_arg(void *ctx, int idx)
{
	__u64 v = 0;

	switch (idx) {
	case 0:
		asm volatile("%0 = *(u64 *)(%1 + 0)" : "=r"(v) : "r"(ctx));
		break;
	case 1:
		asm volatile("%0 = *(u64 *)(%1 + 8)" : "=r"(v) : "r"(ctx));
		break;
	case 2:
		asm volatile("%0 = *(u64 *)(%1 + 16)" : "=r"(v) : "r"(ctx));
		break;
	case 3:
		asm volatile("%0 = *(u64 *)(%1 + 24)" : "=r"(v) : "r"(ctx));
		break;
	case 4:
		asm volatile("%0 = *(u64 *)(%1 + 32)" : "=r"(v) : "r"(ctx));
		break;
	case 5:
		asm volatile("%0 = *(u64 *)(%1 + 40)" : "=r"(v) : "r"(ctx));
		break;
	case 6:
		asm volatile("%0 = *(u64 *)(%1 + 48)" : "=r"(v) : "r"(ctx));
		break;
	case 7:
		asm volatile("%0 = *(u64 *)(%1 + 56)" : "=r"(v) : "r"(ctx));
		break;
	case 8:
		asm volatile("%0 = *(u64 *)(%1 + 64)" : "=r"(v) : "r"(ctx));
		break;
	case 9:
		asm volatile("%0 = *(u64 *)(%1 + 72)" : "=r"(v) : "r"(ctx));
		break;
	case 10:
		asm volatile("%0 = *(u64 *)(%1 + 80)" : "=r"(v) : "r"(ctx));
		break;
	case 11:
		asm volatile("%0 = *(u64 *)(%1 + 88)" : "=r"(v) : "r"(ctx));
		break;
	case 12:
		asm volatile("%0 = *(u64 *)(%1 + 96)" : "=r"(v) : "r"(ctx));
		break;
	}
	return v;
}

// bpf_rdonly_cast (Linux 6.2+) turns a pointer into an untrusted one of the
// same type. The verifier replaces the call with a register move: it costs
// nothing per hit. What it saves is verification: from Linux 6.4 on, every
// pointer loaded from a trusted pointer (a tracing program's arguments, and
// what is walked from them) makes the verifier look up up to four
// "<struct>__safe_*" names in the kernel's BTF by a linear search, which was
// two thirds of the time record spends loading its programs on a 6.18
// kernel. Walking an untrusted pointer skips that lookup; the loads are
// the same fault-safe loads either way. Weak: on a kernel without it the
// call is left unresolved and user space sets rdonly_cast 0, so the
// verifier never reaches it.
extern void *bpf_rdonly_cast(const void *obj__ign, __u32 btf_id__k) __ksym __weak;

// Returns skb as an untrusted pointer where the kernel can cast (see
// above), skb itself otherwise. skb must not be NULL.
static __always_inline struct sk_buff *walk_skb(struct sk_buff *skb)
{
	if (rdonly_cast)
		return bpf_rdonly_cast(skb, bpf_core_type_id_kernel(struct sk_buff));
	return skb;
}

// The same for a device; dev must not be NULL.
static __always_inline struct net_device *walk_dev(struct net_device *dev)
{
	if (rdonly_cast)
		return bpf_rdonly_cast(dev, bpf_core_type_id_kernel(struct net_device));
	return dev;
}

// The skb of nft_do_chain(const struct nft_pktinfo *pkt, void *priv):
// pkt->skb, a plain load checked against the BTF of nf_tables (a module
// on most kernels; user space passes its BTF for the CO-RE relocation).
static __always_inline struct sk_buff *nft_skb(void *ctx)
{
	struct nft_pktinfo *pkt = (struct nft_pktinfo *)load_arg(ctx, 0);

	if (!pkt)
		return NULL;
	return pkt->skb;
}

// Describes the netfilter place of a hit into h: at nft_do_chain's entry
// and exit the base chain (its names are read in record(), at the exit
// only) and the hook (from pkt->state where the kernel has it: Linux
// 5.15+); at a function with a struct nf_hook_state * argument
// (nf_hook_slow) the hook. Plain loads.
static __always_inline void nf_place(void *ctx, struct hit *h)
{
	const struct nf_hook_state *st = NULL;
	// 0xff: not known (the kernel's pktinfo has no state).
	__u8 hook = 0xff, pf = 0xff;

	if (nft_chain) {
		struct nft_pktinfo *pkt = (struct nft_pktinfo *)load_arg(ctx, 0);

		if (bpf_core_field_exists(pkt->state))
			st = pkt->state;
		h->location = load_arg(ctx, 1);
	} else {
		st = (const struct nf_hook_state *)load_arg(ctx, nf_state_arg);
	}
	if (st) {
		// The hook was an unsigned int before Linux 5.12: read with its
		// size in the running kernel.
		hook = BPF_CORE_READ_BITFIELD(st, hook);
		pf = BPF_CORE_READ_BITFIELD(st, pf);
	}
	h->reason = NF_PLACE(0, hook, pf);
}

// The entry point: records the hit of a tracepoint, fentry or fexit hook.
// The including file names it and its section and says where the hook's id
// comes from:
//   HIT_ENTRY    the function's name
//   HIT_SECTION  its ELF section (the program type)
//   HIT_HOOK(ctx) the hook's id: the load-time constant hook_id (skb.c), or
//                the link's attach cookie (skbshared.c: one helper call per
//                hit, a load of the cookie the link stored in the
//                tracepoint's run context)
// The two entry points are in objects of their own, and the body is each
// one's own function, not an inlined call: on_skb's code is then exactly
// what it was before on_skb_shared existed. Both entry points in one object,
// or the body in an inlined function, changed clang's register allocation
// through the whole program, enough that on 5.10 and 6.1 the fentry backend
// with --bytes changed took three times as long to load and recorded fewer
// hits (TestInVMBytesChanged/fentry).
SEC(HIT_SECTION)
int HIT_ENTRY(void *ctx)
{
	struct sk_buff *skb = nft_chain ? nft_skb(ctx) : (struct sk_buff *)load_arg(ctx, skb_arg);
	struct cpu_state *state;
	struct hit h = {};

	// Some tracepoints (qdisc_dequeue) pass NULL when there is no packet.
	if (!skb)
		return 0;
	skb = walk_skb(skb);
	// Per-CPU state, for address_of and for record.
	state = cpu_state();
	if (!state)
		return 0;

	h.skb = skb;
	h.key = address_of(state, skb);
	if (dev_arg >= 0) {
		struct net_device *dev = (struct net_device *)load_arg(ctx, dev_arg);

		if (dev)
			h.dev = walk_dev(dev);
	}
	// With a filter, most hits are of packets not followed that the filter
	// rejects: decide those first, before record() describes the hit.
	if (filtered && !clone_hook && !exit_hook && !untrack_only && !admit(&h, state))
		return 0;

	if (clone_hook) {
		// Exit of skb_clone & co: the skb argument is the original, the
		// return value the clone (NULL if allocation failed). Only a clone
		// of a followed packet is recorded: it is followed under an id of
		// its own, linked to the original's.
		struct sk_buff *clone = (struct sk_buff *)load_arg(ctx, ret_arg);

		if (!clone)
			return 0;
		clone = walk_skb(clone);
		h.parent = followed_id(address_of(state, skb));
		if (!h.parent)
			return 0;
		skb = clone;
		h.retval = address_of(state, clone);
		h.has_ret = 1;
	} else if (ret_arg >= 0) {
		h.retval = load_arg(ctx, ret_arg);
		h.has_ret = 1;
	}

	h.skb = skb;
	h.key = address_of(state, skb);
	h.hook = HIT_HOOK(ctx);
	if (reason_arg >= 0)
		h.reason = load_arg(ctx, reason_arg);
	if (location_arg >= 0)
		h.location = load_arg(ctx, location_arg);
	if (nft_chain || nf_state_arg >= 0)
		nf_place(ctx, &h);
	return record(ctx, &h, state);
}

#endif // PATHCAP_HIT_H
