// record.h: recording one hook hit: struct hit, as the entry points
// describe it, and record(), in steps. Included by common.h only.
#ifndef PATHCAP_RECORD_H
#define PATHCAP_RECORD_H

// Whether a program can describe a netfilter place (NF_PLACE in struct
// hit's reason): a load-time constant of BTF-typed programs, so that the
// branch is dead code for every other hook; never the kprobe program.
#if BTF_READS
#define NF_PLACES (nf_state_arg >= 0 || nft_chain)
#else
#define NF_PLACES 0
#endif

// One hook hit, as the programs' entry points describe it.
struct hit {
	struct sk_buff *skb;    // fields are read from here (see the top)
	struct net_device *dev; // the hook's device argument, or NULL
	__u64 key;              // the skb's address
	__u64 parent;           // a clone: the original's packet id, else 0
	__u64 retval;           // has_ret: the function's return value
	__u64 reason;           // drop reason, where reason_arg >= 0; at a netfilter
	                        // place (NF_PLACES) the place, see NF_PLACE
	__u64 location;         // free location, where location_arg >= 0; at
	                        // nft_do_chain the base chain's address
	__u16 hook;             // id of the hook in user space's table
	__u8 has_ret;
	__u8 frees;             // the skb is freed here (kprobe: from the cookie)
	__u8 wanted;            // the entry point has filtered it and kept it
	__u8 nostart;           // the hook never starts following a packet (kprobe: cookie)
};

// A netfilter place packed into struct hit's reason (netfilter hooks have
// no drop reason; a larger struct hit costs the verifier more states at
// every hook): the base chain's handle (low 32 bits, nft_do_chain), the
// hook (enum nf_inet_hooks, ...) and family (NFPROTO_*), and a bit that
// says the place is set.
#define NF_PLACE(handle, hook, pf) ((__u64)(__u32)(handle) | (__u64)(__u8)(hook) << 32 | \
				    (__u64)(__u8)(pf) << 40 | 1ULL << 48)
#define NF_PLACE_SET(r) (((r) >> 48) & 1)
#define NF_PLACE_HANDLE(r) ((__u32)(r))
#define NF_PLACE_HOOK(r) ((__u8)((r) >> 32))
#define NF_PLACE_PF(r) ((__u8)((r) >> 40))

// Fills the task fields of ev: the current task's ids and comm. Helper
// calls with BTF_READS where the kernel has it (task_btf):
// bpf_get_current_task_btf, whose fields are then plain loads (two 8-byte
// loads copy comm; bpf_get_current_comm costs about 60 ns here). Otherwise
// bpf_get_current_pid_tgid and bpf_get_current_comm.
static __always_inline void task_fields(struct event *ev)
{
#if BTF_READS
	if (task_btf) {
		struct task_struct *task = bpf_get_current_task_btf();

		ev->pid = task->tgid;
		ev->tid = task->pid;
		// comm may change under us (prctl); a torn name is harmless.
		*(__u64 *)&ev->comm[0] = *(__u64 *)&task->comm[0];
		*(__u64 *)&ev->comm[8] = *(__u64 *)&task->comm[8];
		return;
	}
#endif
	// Kernels before 5.11 (and kprobes): two helpers, neither of which
	// reads kernel memory through bpf_probe_read_kernel.
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	ev->pid = pid_tgid >> 32;
	ev->tid = (__u32)pid_tgid;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
}

// Decides whether a hit is recorded when a filter is set (the expression
// or the --netns, --ifname, --mark, --pid knobs), before record() is
// called: a packet already followed is (unless tracking is off, which
// filters every hit), a clone of a followed packet is, a hook that never
// starts a packet records nothing else, and otherwise the filter decides.
// Sets h->parent for a clone and h->wanted for a hit the filter kept.
// Returns 0 to drop the hit. The entry points call it for the hits that
// can start a packet: never for function exits, clone returns or
// untrack-only hooks.
//
// The filter runs here, where little is live (the hit and this CPU's
// state), and never inside record(): the verifier walks a called function
// once for each distinct state its caller reaches the call in, and
// record()'s live variables (where the bytes are, the tracking entry)
// multiplied the walks of a large filter (protochain unrolled nine times)
// past the 1M-instruction budget of the 5.10 and 6.1 verifiers.
static __always_inline int admit(struct hit *h, struct cpu_state *state)
{
	struct where w;
	__u64 known = followed_id(h->key);

	if (known && track)
		return 1;
	locate(h->skb, h->dev, &w);
	if (match_netns || match_ifindex)
		locate_device(h->skb, &w);
	if (!known) {
		h->parent = clone_parent(state, h->skb, w.head);
		if (h->parent)
			return 1;
		if (no_start || h->nostart)
			return 0;
	}
	if (wanted(h->skb, &w)) {
		h->wanted = 1;
		return 1;
	}
	if (known && (is_free_hook || h->frees)) {
		// Tracking off: a followed packet the filter now rejects is
		// freed here all the same. Looked up again rather than kept
		// live across the filter (see above).
		known = followed_id(h->key);
		if (known) {
			track_forget(h->key);
			head_forget(state, h->skb, known);
		}
	}
	return 0;
}

// The steps of record(), in order. Each is inlined: one BPF function per
// program, so that the verifier walks record() as one piece of code.

// Stops following the freed skb of h, whose packet id is id, and forgets
// its buffer unless a clone shares it.
static __always_inline void end_tracking(struct cpu_state *state, struct hit *h, __u64 id)
{
	track_forget(h->key);
	head_forget(state, h->skb, id);
}

// Pairs a function's exit with its entry: returns the entry's packet id,
// or 0 if the entry was not recorded (then neither is the exit). If the
// skb is no longer followed under that id (known is its id now), the
// function freed it: its memory may hold another skb by now, so w gets
// where the entry saw the skb and the event carries no packet, only the
// return value.
static __always_inline __u64 pair_exit(struct hit *h, __u64 known, struct where *w)
{
	struct call_key call = {.skb = h->key, .hook = entry_hook};
	struct call_info *entry;
	__u64 id;

	// Helper: the entry of this call, if it was recorded.
	entry = bpf_map_lookup_elem(&calls, &call);
	if (!entry)
		return 0;
	id = entry->id;
	if (known != id) {
		w->netns = entry->netns;
		w->ifindex = entry->ifindex;
		w->dev_type = entry->dev_type;
		w->has_dev = entry->has_dev;
		w->dev = NULL;
		w->head = NULL;
		w->start = 0;
		w->caplen = 0;
		w->wire_len = 0;
		w->header = HEADER_DATA;
	}
	// Helper: done with the call. The entry's values were copied above:
	// a deleted LRU element may be reused at once.
	bpf_map_delete_elem(&calls, &call);
	return id;
}

// Spends one event of this CPU's budget (budget_per_cpu events a second):
// returns 0 if the second's budget is spent, which bounds what a flood can
// cost the host (past it, a hit costs this check and nothing more), else
// the monotonic clock (helper), read once and reused for the record.
static __always_inline __u64 within_budget(struct cpu_state *state)
{
	__u64 now = bpf_ktime_get_ns();

	if (now - state->budget_start >= 1000000000ULL) {
		state->budget_start = now;
		state->budget_used = 0;
	}
	if (state->budget_used >= budget_per_cpu) {
		state->over_budget++;
		return 0;
	}
	state->budget_used++;
	return now;
}

// Fills ev's description of the hit: the task, where (w), the skb's fields
// (plain loads from the kernel's skb or the kprobe's copy: no helper
// calls; none for an skb the function freed: gone), the hook's arguments,
// and the kernel stack.
static __always_inline void describe(void *ctx, struct event *ev, struct hit *h,
				     struct where *w, struct cpu_state *state, __u32 gone)
{
	struct sk_buff *skb = h->skb;

	task_fields(ev);
	ev->hook_id = h->hook;
	ev->skb = h->key;
	ev->lost = (__u32)state->lost;
	ev->skipped = (__u32)state->over_budget;
	ev->flags = w->has_dev ? FLAG_HAS_DEV : 0;
	ev->drop_reason = 0;
	ev->drop_location = 0;
	ev->netns = w->netns;
	ev->ifindex = w->ifindex;
	ev->dev_type = w->dev_type;
	ev->header = w->header;
	ev->parent = h->parent;
	ev->retval = h->retval;
	if (h->has_ret)
		ev->flags |= FLAG_HAS_RET;

	ev->len = 0;
	ev->data_len = 0;
	ev->mark = 0;
	ev->protocol = 0;
	ev->pkt_type = 0;
	if (!gone) {
		ev->len = skb->len;
		ev->data_len = skb->data_len;
		ev->mark = skb->mark;
		ev->protocol = skb->protocol;
		ev->pkt_type = BPF_CORE_READ_BITFIELD(skb, pkt_type);
	}

	if (reason_arg >= 0) {
		ev->flags |= FLAG_HAS_DROP;
		ev->drop_reason = (__u32)h->reason;
	}
	if (location_arg >= 0)
		ev->drop_location = h->location;
	ev->nf_hook = 0;
	ev->nf_pf = 0;
	if (NF_PLACES && NF_PLACE_SET(h->reason)) {
		// Netfilter hooks have no drop reason or free location: their
		// fields carry the base chain (user space names it, see
		// capture/netfilter.go).
		ev->flags |= FLAG_HAS_NF;
		ev->nf_hook = NF_PLACE_HOOK(h->reason);
		ev->nf_pf = NF_PLACE_PF(h->reason);
		ev->drop_location = h->location;
		ev->drop_reason = NF_PLACE_HANDLE(h->reason);
	}

	ev->stack_len = 0;
	if (stack_bytes) {
		// Helper: the kernel call chain, innermost first, written straight
		// into the record (cheaper per event than bpf_get_stackid into a
		// stack map plus a map read per new id in user space, and never
		// wrong through a reused id: see docs/BACKENDS.md). Returns the
		// bytes written or a negative error, which user space reports.
		ev->flags |= FLAG_HAS_STACK;
		ev->stack_len = bpf_get_stack(ctx, (void *)(ev + 1), stack_bytes, 0);
	}
}

// One step of the fingerprint's hash: mixes v into h. Both the multiply
// by an odd constant and the xor-shift are invertible, so two inputs that
// differ in one word only (a TTL, a checksum, an address, a length) always
// give different fingerprints; inputs that differ in several words collide
// with a chance of about 2^-64.
static __always_inline __u64 fp_mix(__u64 h, __u64 v)
{
	h = (h ^ v) * 0x9E3779B97F4A7C15ULL;
	return h ^ (h >> 29);
}

// The fingerprint of the bytes a record of this hit would carry
// (bytes_changed mode). Those bytes are the caplen bytes at head + start:
// they are a function of where they are (the buffer's address, the offset
// and kind of the first captured byte, how many there are) and of what that
// memory holds. The fingerprint takes the first three exactly and hashes
// the first FP_WINDOW bytes of the last (Ethernet, IP and transport
// headers: NAT, a TTL decrement, a checksum update all land there). A new
// buffer (pskb_expand_head, a linearized or copied skb), a pushed or pulled
// header that moves the start, a trimmed tail: all change it. What does not
// change the bytes is left out on purpose: skb->len and data_len (a pull
// past the captured start, or fragments outside the linear area), the
// device and namespace (every veth crossing); the event carries them
// anyway. Bytes past FP_WINDOW that change in place while nothing else
// does are not seen (a documented limit: payload rewrites). Never 0 (0: no
// fingerprint).
//
// Helper: one bpf_probe_read_kernel of at most FP_WINDOW bytes into this
// CPU's window (packet data is not reachable through BTF-typed loads). The
// caller never calls it when copy_bytes is 0 (audit-safe mode: no packet
// byte is read at all). A hit whose bytes changed then pays a second read,
// the copy into the record; one whose bytes did not pays this one only,
// of fewer bytes than the copy it saves.
static __always_inline __u64 fingerprint(struct cpu_state *state, struct where *w)
{
	__u64 h = 0x2545F4914F6CDD1DULL, n, limit = FP_WINDOW;

	n = w->caplen;
	asm volatile("if %[n] <= %[limit] goto +1\n\t"
		     "%[n] = %[limit]"
		     : [n] "+r"(n) : [limit] "r"(limit));
	// Zeroed first: the hash reads whole words, and bytes past n must not
	// be whatever an earlier hit left there (n itself is hashed below).
	for (int i = 0; i < FP_WORDS; i++)
		state->window[i] = 0;
	if (n && bpf_probe_read_kernel(state->window, n, w->head + w->start) < 0)
		return 0;
	// The buffer as a number (see address_of): the verifier refuses xor on
	// a pointer.
	h = fp_mix(h, address_of(state, w->head));
	h = fp_mix(h, ((__u64)w->start << 32) | ((__u64)w->caplen << 8) | w->header);
	for (int i = 0; i < FP_WORDS; i++)
		h = fp_mix(h, state->window[i]);
	return h | 1;
}

// Copies the packet's linear bytes located in w into ev, after the stack.
// ev must have been reserved with room for snaplen bytes there.
static __always_inline void copy_packet(struct event *ev, struct where *w)
{
	__u64 n, limit;

	ev->caplen = 0;
	if (!copy_bytes)
		return;
	// Clamp in one register the verifier can follow (older verifiers lose
	// the bound of a copy compared in C).
	n = w->caplen;
	limit = snaplen;
	asm volatile("if %[n] <= %[limit] goto +1\n\t"
		     "%[n] = %[limit]"
		     : [n] "+r"(n) : [limit] "r"(limit));
	// Helper: the one copy of packet bytes into the record (linear area
	// only). Packet data is not reachable through BTF-typed loads. On
	// Linux 5.6 to 5.13 without the fix of the SELinux lockdown check,
	// each call is checked against the current task and may write an
	// audit record: copy_bytes is 0 there (user space decides, see
	// capture/features.go).
	ev->caplen = n;
	if (n && bpf_probe_read_kernel((void *)(ev + 1) + stack_bytes, n, w->head + w->start) < 0)
		ev->caplen = 0;
}

// Keeps the tracking table up to date after a recorded hit that is not a
// function's exit, and returns the packet id: known, or a new id for a
// packet not followed yet (then followed from now on, unless the hook
// frees it). A followed skb freed here is forgotten; the buffer of a
// followed packet is remembered for its clones.
static __always_inline __u64 update_tracking(struct cpu_state *state, struct hit *h, struct where *w,
					     __u64 known, __u64 now, __u32 cpu, __u32 frees, __u32 gone, __u64 fp)
{
	__u64 id = known, head;

	if (!known) {
		// Unique over CPUs without atomic fetch-and-add: each CPU hands
		// out its own residue class modulo nr_cpus. (A hook that
		// interrupts another one on the same CPU between this read and
		// write could reuse an id; the skb hooks run with bottom halves
		// disabled or in softirq, which makes that nesting rare.)
		id = state->next_id++ * nr_cpus + cpu + 1;
		if (frees)
			return id;
		head = 0;
		if (link_clones && !gone)
			head = address_of(state, w->head);
		track_insert(h->key, id, now, head, fp);
		if (head)
			head_remember(head, id, now);
		return id;
	}
	if (frees) {
		track_forget(h->key);
		if (!gone)
			head_forget(state, h->skb, id);
		return id;
	}
	if (link_clones && !gone) {
		// A followed packet's buffer is remembered again when it
		// changed (pskb_expand_head, a linearized copy).
		head = address_of(state, w->head);
		if (track_buffer(h->key, head))
			head_remember(head, id, now);
	}
	return id;
}

// Remembers this call (an entry whose exit is hooked too) for its exit.
static __always_inline void remember_call(struct hit *h, __u64 id, struct where *w)
{
	struct call_key call = {.skb = h->key, .hook = h->hook};
	struct call_info info = {
		.id = id,
		.netns = w->netns,
		.ifindex = w->ifindex,
		.dev_type = w->dev_type,
		.has_dev = w->has_dev,
	};

	// Helper: one LRU hash update.
	bpf_map_update_elem(&calls, &call, &info, BPF_ANY);
}

// Publishes ev, waking the reader once unread data passes wakeup_bytes: a
// wakeup per record costs far more than the record. The fill level is
// checked only after this CPU has written a share of wakeup_bytes since
// its last check (shares are small enough that all CPUs together stay
// well below the ring's size). User space also polls on a timer for quiet
// streams.
static __always_inline void submit(struct event *ev, struct cpu_state *state, __u32 same)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (wakeup_bytes) {
		// This record's share of the ring: 8-byte header, data padded to
		// 8; no room for packet bytes in a record of unchanged bytes.
		__u64 data = same ? 0 : snaplen;

		state->unchecked += ((sizeof(*ev) + stack_bytes + data + 7) & ~7ULL) + 8;
		if (state->unchecked >= wakeup_bytes / 4 / nr_cpus) {
			state->unchecked = 0;
			// Helper: unread bytes, including this reserved record.
			if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
				flags = BPF_RB_FORCE_WAKEUP;
		}
	}
	// Helper: publish the record.
	bpf_ringbuf_submit(ev, flags);
}

// Records one hit of h at ctx (the program's context, for the stack) if its
// skb is followed or wanted, and keeps the tracking table up to date. state
// is this CPU's cpu_states entry.
static __always_inline int record(void *ctx, struct hit *h, struct cpu_state *state)
{
	struct sk_buff *skb = h->skb;
	struct event *ev;
	struct where w;
	__u64 known = 0, id, now = 0, fp = 0;
	__u32 cpu, paired = 0, gone = 0, same = 0;
	// Whether the hook frees the skb, without a branch: "||" would split
	// every later path in two for the verifier where h->frees is not a
	// constant (kprobes).
	__u32 frees = h->frees | is_free_hook;

	// Is this skb already being followed? Decides the id the record
	// carries. A clone is a fresh skb: whatever entry its address still
	// has is stale, and is replaced when the clone is followed.
	if (!h->parent)
		known = followed_id(h->key);
	id = known;

	// A free hook the user did not ask for, attached so that the ids of
	// freed skbs are not inherited by new skbs at the same address.
	if (untrack_only) {
		if (known)
			end_tracking(state, h, known);
		return 0;
	}
	// Hooks that see skbs being freed or clones being built record only
	// packets already followed (see noStartFunctions in capture).
	if (!known && !h->parent && (no_start || h->nostart))
		return 0;
	// A function's exit is recorded if its entry was, under the entry's id.
	if (exit_hook) {
		id = pair_exit(h, known, &w);
		if (!id)
			return 0;
		paired = 1;
		gone = known != id;
		// nft_do_chain's exit: the base chain's names, once the call is
		// known to be recorded (probe reads; none in audit-safe mode).
		if (nft_chain && copy_bytes && h->location)
			h->reason |= nft_chain_names(h->location);
	}

	if (!gone) {
		locate(skb, h->dev, &w);
		if (match_netns || match_ifindex)
			locate_device(skb, &w);
	}

	// A clone of a followed packet (its buffer is one): followed under an
	// id of its own, linked to the original's, without filtering. Costs a
	// load of the cloned bit, and a lookup only for cloned skbs.
	if (!known && !h->parent && !paired && !gone && !h->wanted)
		h->parent = clone_parent(state, skb, w.head);

	// The filter itself ran in admit(); a hit that reaches here unfiltered
	// is of a packet that stopped being followed since (freed on another
	// CPU), and is left to the next hook. A followed packet, a clone and a
	// call whose entry was kept are not filtered.
	if (!h->parent && !paired && (!known || !track) && !h->wanted && filtered) {
		if (known && frees)
			end_tracking(state, h, known);
		return 0;
	}

	if (!gone && !(match_netns || match_ifindex))
		locate_device(skb, &w);

	if (budget_per_cpu && !(now = within_budget(state))) {
		if (known && frees)
			end_tracking(state, h, known);
		return 0;
	}

	// bytes_changed: are this hit's bytes those last recorded for the
	// packet? Decided before the reservation, so that a record without
	// bytes takes no room for them in the ring. Only a followed packet
	// (not a clone, whose entry is new) has bytes recorded before; its
	// first hit records them and remembers their fingerprint
	// (update_tracking). A hit with no bytes to copy (an skb gone at a
	// function's exit, an empty linear area) neither uses nor changes the
	// fingerprint: "same" always means "as the last record with bytes".
	if (bytes_changed && copy_bytes && !gone && w.caplen) {
		fp = fingerprint(state, &w);
		if (known && !h->parent)
			same = fp_same(h->key, fp);
	}

	// Helper: reserve the record in place, so the packet bytes and the
	// stack are written once, straight into the ring. The size is made of
	// load-time constants, as the verifier requires: two reservations, one
	// with room for the bytes and one without (bytes unchanged). The copy
	// happens in the branch of the one with room, where the verifier knows
	// the record's size.
	if (same) {
		ev = bpf_ringbuf_reserve(&events, sizeof(*ev) + stack_bytes, 0);
		if (ev)
			ev->caplen = 0;
	} else {
		ev = bpf_ringbuf_reserve(&events, sizeof(*ev) + stack_bytes + snaplen, 0);
		if (ev) {
			copy_packet(ev, &w);
			// The fingerprint is stored only once its bytes are in
			// a record: a lost record or a failed copy leaves the
			// previous one, which still describes the last bytes
			// recorded. A new packet's goes in with its entry.
			if (!ev->caplen)
				fp = 0;
			else if (fp && known && !h->parent)
				fp_store(h->key, fp);
		}
	}
	if (!ev) {
		// Never silent: the next record from this CPU carries the count.
		state->lost++;
		// The skb is gone after a free hook even if we could not record it.
		if (known && frees)
			end_tracking(state, h, known);
		return 0;
	}

	// Helper: monotonic clock; user space converts to wall-clock time. The
	// tracking table orders its entries by it too.
	if (!budget_per_cpu)
		now = bpf_ktime_get_ns();
	ev->ktime_ns = now;
	// Helper: inlined by the verifier into a per-CPU variable read on x86-64.
	cpu = bpf_get_smp_processor_id();
	ev->cpu = cpu;
	describe(ctx, ev, h, &w, state, gone);
	if (same)
		ev->flags |= FLAG_BYTES_SAME;
	// A function's exit carries the entry's id; tracking is the entries'
	// and the free hooks' business.
	if (!paired)
		id = update_tracking(state, h, &w, known, now, cpu, frees, gone, fp);
	ev->packet_id = id;
	if (pair_calls)
		remember_call(h, id, &w);
	submit(ev, state, same);
	return 0;
}

#endif // PATHCAP_RECORD_H
