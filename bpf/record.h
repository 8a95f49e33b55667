// record.h: recording one hook hit: struct hit, as the entry points
// describe it, and record(), in steps. Included by common.h only.
#ifndef PATHCAP_RECORD_H
#define PATHCAP_RECORD_H

// One hook hit, as the programs' entry points describe it.
struct hit {
	struct sk_buff *skb;    // fields are read from here (see the top)
	struct net_device *dev; // the hook's device argument, or NULL
	__u64 key;              // the skb's address
	__u64 parent;           // a clone: the original's packet id, else 0
	__u64 retval;           // has_ret: the function's return value
	__u64 reason;           // drop reason, where reason_arg >= 0
	__u64 location;         // free location, where location_arg >= 0
	__u16 hook;             // id of the hook in user space's table
	__u8 has_ret;
	__u8 frees;             // the skb is freed here (kprobe: from the cookie)
	__u8 wanted;            // the entry point has filtered it and kept it
	__u8 nostart;           // the hook never starts following a packet (kprobe: cookie)
};

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

// Records one hit of h at ctx (the program's context, for the stack) if its
// skb is followed or wanted, and keeps the tracking table up to date. state
// is this CPU's cpu_states entry.
static __always_inline int record(void *ctx, struct hit *h, struct cpu_state *state)
{
	struct sk_buff *skb = h->skb;
	struct call_key call;
	struct call_info *entry, info;
	struct event *ev;
	struct where w;
	__u64 known = 0, id = 0, now, avail, flags, n, limit;
	__u32 cpu, paired = 0, gone = 0;

	// Is this skb already being followed? Decides whether the filter runs
	// and which id the record carries. A clone is a fresh skb: whatever
	// entry its address still has is stale, and is replaced below.
	// The lookup also finds where a clone's (stale) entry goes.
	if (!h->parent)
		known = followed_id(h->key);
	id = known;

	// A free hook the user did not ask for, attached so that the ids of
	// freed skbs are not inherited by new skbs at the same address.
	if (untrack_only) {
		if (known) {
			track_forget(h->key);
			head_forget(state, skb, known);
		}
		return 0;
	}
	// Hooks that see skbs being freed or clones being built record only
	// packets already followed (see noStartFunctions in capture).
	if (!known && !h->parent && (no_start || h->nostart))
		return 0;
	// A function's exit is recorded if its entry was, under the entry's
	// id. If the skb is no longer followed under that id, the function
	// freed it: its memory may hold another skb by now, so the event
	// carries no packet, only the return value.
	if (exit_hook) {
		call.skb = h->key;
		call.hook = entry_hook;
		// Helper: the entry of this call, if it was recorded.
		entry = bpf_map_lookup_elem(&calls, &call);
		if (!entry)
			return 0;
		paired = 1;
		id = entry->id;
		gone = known != id;
		if (gone) {
			// Where the entry saw the skb.
			w.netns = entry->netns;
			w.ifindex = entry->ifindex;
			w.dev_type = entry->dev_type;
			w.has_dev = entry->has_dev;
			w.dev = NULL;
			w.head = NULL;
			w.start = 0;
			w.caplen = 0;
			w.wire_len = 0;
			w.header = HEADER_DATA;
		}
		// Helper: done with the call. The entry's values were copied
		// above: a deleted LRU element may be reused at once.
		bpf_map_delete_elem(&calls, &call);
	}

	if (!gone) {
		locate(skb, h->dev, &w);
		if (match_netns || match_ifindex)
			locate_device(skb, &w);
	}

	// Only packets not yet followed are filtered (unless tracking is off);
	// once kept, a packet is recorded at every hook whatever its bytes
	// become (NAT, encapsulation). A clone of a followed packet is
	// followed without filtering, and so is a call whose entry was kept.
	// A clone of a followed packet (its buffer is one): followed under an
	// id of its own, linked to the original's, without filtering. Costs a
	// load of the cloned bit, and a lookup only for cloned skbs.
	if (!known && !h->parent && !paired && !gone && !h->wanted)
		h->parent = clone_parent(state, skb, w.head);

	// The filter itself ran in admit(); a hit that reaches here unfiltered
	// is of a packet that stopped being followed since (freed on another
	// CPU), and is left to the next hook.
	if (!h->parent && !paired && (!known || !track) && !h->wanted && filtered) {
		if (known && (is_free_hook || h->frees)) {
			track_forget(h->key);
			head_forget(state, skb, known);
		}
		return 0;
	}

	if (!gone && !(match_netns || match_ifindex))
		locate_device(skb, &w);

	now = 0;
	if (budget_per_cpu) {
		// A per-CPU budget of events per second bounds what a flood can
		// cost the host: past it, a hit costs this check and nothing
		// more. Helper: monotonic clock (read once, reused below).
		now = bpf_ktime_get_ns();
		if (now - state->budget_start >= 1000000000ULL) {
			state->budget_start = now;
			state->budget_used = 0;
		}
		if (state->budget_used >= budget_per_cpu) {
			state->over_budget++;
			if (known && (is_free_hook || h->frees)) {
				track_forget(h->key);
				head_forget(state, skb, known);
			}
			return 0;
		}
		state->budget_used++;
	}

	// Helper: reserve the record in place, so the packet bytes and the
	// stack are written once, straight into the ring. The size is made of
	// load-time constants, as the verifier requires.
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev) + stack_bytes + snaplen, 0);
	if (!ev) {
		// Never silent: the next record from this CPU carries the count.
		state->lost++;
		// The skb is gone after a free hook even if we could not record it.
		if (known && (is_free_hook || h->frees)) {
			track_forget(h->key);
			head_forget(state, skb, known);
		}
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
	task_fields(ev);

	ev->hook_id = h->hook;
	ev->skb = h->key;
	ev->lost = (__u32)state->lost;
	ev->skipped = (__u32)state->over_budget;
	ev->flags = w.has_dev ? FLAG_HAS_DEV : 0;
	ev->drop_reason = 0;
	ev->drop_location = 0;
	ev->netns = w.netns;
	ev->ifindex = w.ifindex;
	ev->dev_type = w.dev_type;
	ev->header = w.header;
	ev->parent = h->parent;
	ev->retval = h->retval;
	if (h->has_ret)
		ev->flags |= FLAG_HAS_RET;

	// Plain loads from skb (the kernel's, BTF-typed, or the kprobe's copy):
	// no helper calls.
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

	ev->caplen = 0;
	if (copy_bytes) {
		// Clamp in one register the verifier can follow (older verifiers
		// lose the bound of a copy compared in C).
		n = w.caplen;
		limit = snaplen;
		asm volatile("if %[n] <= %[limit] goto +1\n\t"
			     "%[n] = %[limit]"
			     : [n] "+r"(n) : [limit] "r"(limit));
		// Helper: the one copy of packet bytes into the record (linear
		// area only). Packet data is not reachable through BTF-typed
		// loads. On Linux 5.6 to 5.13 without the fix of the SELinux
		// lockdown check, each call is checked against the current task
		// and may write an audit record: copy_bytes is 0 there (user
		// space decides, see capture/features.go).
		ev->caplen = n;
		if (n && bpf_probe_read_kernel((void *)(ev + 1) + stack_bytes, n, w.head + w.start) < 0)
			ev->caplen = 0;
	}

	if (paired) {
		// A function's exit: the entry's id; tracking is the entries' and
		// the free hooks' business.
	} else if (!known) {
		// Unique over CPUs without atomic fetch-and-add: each CPU hands out
		// its own residue class modulo nr_cpus. (A hook that interrupts
		// another one on the same CPU between this read and write could
		// reuse an id; the skb hooks run with bottom halves disabled or in
		// softirq, which makes that nesting rare.)
		id = state->next_id++ * nr_cpus + cpu + 1;
		// Remember the skb so later hooks reuse the id, and its buffer
		// for its clones.
		if (!(is_free_hook || h->frees)) {
			__u64 head = 0;

			if (link_clones && !gone)
				head = address_of(state, w.head);
			track_insert(h->key, id, now, head);
			if (head)
				head_remember(head, id, now);
		}
	} else if (is_free_hook || h->frees) {
		track_forget(h->key);
		if (!gone)
			head_forget(state, skb, id);
	} else if (link_clones && !gone) {
		// A followed packet's buffer is remembered again when it changed
		// (pskb_expand_head, a linearized copy).
		__u64 head = address_of(state, w.head);

		if (track_buffer(h->key, head))
			head_remember(head, id, now);
	}
	ev->packet_id = id;

	if (pair_calls) {
		// Helper: remember this call for the function's exit.
		call.skb = h->key;
		call.hook = h->hook;
		info.id = id;
		info.netns = w.netns;
		info.ifindex = w.ifindex;
		info.dev_type = w.dev_type;
		info.has_dev = w.has_dev;
		__builtin_memset(info._pad, 0, sizeof(info._pad));
		bpf_map_update_elem(&calls, &call, &info, BPF_ANY);
	}

	// Wake the reader once unread data passes wakeup_bytes; a wakeup per
	// record costs far more than the record. The fill level is checked
	// only after this CPU has written a share of wakeup_bytes since its
	// last check (shares are small enough that all CPUs together stay well
	// below the ring's size). User space also polls on a timer for quiet
	// streams.
	flags = BPF_RB_NO_WAKEUP;
	if (wakeup_bytes) {
		// This record's share of the ring: 8-byte header, data padded to 8.
		state->unchecked += ((sizeof(*ev) + stack_bytes + snaplen + 7) & ~7ULL) + 8;
		if (state->unchecked >= wakeup_bytes / 4 / nr_cpus) {
			state->unchecked = 0;
			// Helper: unread bytes, including this reserved record.
			avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
			if (avail >= wakeup_bytes)
				flags = BPF_RB_FORCE_WAKEUP;
		}
	}
	// Helper: publish the record.
	bpf_ringbuf_submit(ev, flags);
	return 0;
}

#endif // PATHCAP_RECORD_H
