//go:build ignore

// xdp.c: the program that records a frame at the entry (fentry) or exit
// (fexit) of an XDP program loaded on the host (record --trace-xdp).
//
// XDP runs on the driver's buffer before any struct sk_buff exists: the
// traced program's struct xdp_md * is, for a tracing program, the kernel's
// struct xdp_buff *, whose data and data_end delimit the frame and whose
// rxq->dev is the receiving device. A frame has no skb to follow, so every
// entry starts a packet of its own (a new tracking id); the exit carries
// the entry's id and the program's action (XDP_DROP, XDP_PASS, ...).
//
// It shares the ring buffer, the per-CPU state and the calls map (entry to
// exit) with the skb programs: user space passes the maps it created.

#define BTF_READS 1
#include "common.h"

// Records one hit: the entry (exit_hook 0) or the exit (exit_hook 1, the
// return value at context offset 8) of the traced XDP program.
SEC("fentry/placeholder")
int on_xdp(void *ctx)
{
	struct xdp_buff *xdp;
	struct net_device *dev = NULL;
	struct cpu_state *state;
	struct call_key call = {};
	struct call_info info = {};
	struct event *ev;
	__u64 ret = 0, id = 0, now, n, limit;
	void *data, *end;
	__u32 cpu, len;

	// The traced program's only argument; tracing programs type context
	// loads at constant offsets only (see load_arg in skb.c).
	asm volatile("%0 = *(u64 *)(%1 + 0)" : "=r"(xdp) : "r"(ctx));
	if (!xdp)
		return 0;
	state = cpu_state();
	if (!state)
		return 0;
	call.skb = (__u64)xdp;

	if (exit_hook) {
		struct call_info *entry;

		asm volatile("%0 = *(u64 *)(%1 + 8)" : "=r"(ret) : "r"(ctx));
		// Helper: the entry of this run, recorded by the entry program.
		// An xdp_buff lives on the driver's stack: the address repeats
		// from frame to frame, but entry and exit of one run follow each
		// other on one CPU, so the entry found is this run's.
		call.hook = entry_hook;
		entry = bpf_map_lookup_elem(&calls, &call);
		if (!entry)
			return 0;
		id = entry->id;
		// Helper: done with the run.
		bpf_map_delete_elem(&calls, &call);
	}

	// Plain BTF loads: the frame's bounds and its device.
	data = xdp->data;
	end = xdp->data_end;
	len = (__u32)(end - data);
	if (xdp->rxq)
		dev = xdp->rxq->dev;

	if (budget_per_cpu && !(now = within_budget(state)))
		return 0;
	// Helper: reserve the record in place (sizes are load-time constants).
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev) + stack_bytes + snaplen, 0);
	if (!ev) {
		state->lost++;
		return 0;
	}
	// Helper: monotonic clock, unless the budget check read it.
	if (!budget_per_cpu)
		now = bpf_ktime_get_ns();
	ev->ktime_ns = now;
	// Helper: inlined by the verifier.
	cpu = bpf_get_smp_processor_id();
	ev->cpu = cpu;
	task_fields(ev);
	ev->hook_id = hook_id;
	ev->skb = 0; // no skb yet
	ev->lost = (__u32)state->lost;
	ev->skipped = (__u32)state->over_budget;
	ev->drop_reason = 0;
	ev->drop_location = 0;
	ev->parent = 0;
	ev->retval = ret;
	ev->flags = exit_hook ? FLAG_HAS_RET : 0;
	ev->len = len;
	ev->data_len = 0;
	ev->mark = 0;
	ev->pkt_type = 0;
	ev->header = HEADER_MAC;
	ev->protocol = 0;
	ev->netns = 0;
	ev->ifindex = 0;
	ev->dev_type = 0;
	if (dev) {
		ev->flags |= FLAG_HAS_DEV;
		ev->ifindex = dev->ifindex;
		ev->netns = dev->nd_net.net->ns.inum;
		ev->dev_type = dev->type;
	}

	ev->stack_len = 0;
	if (stack_bytes) {
		// Helper: the kernel call chain, as in describe() (record.h).
		ev->flags |= FLAG_HAS_STACK;
		ev->stack_len = bpf_get_stack(ctx, (void *)(ev + 1), stack_bytes, 0);
	}

	// The frame's bytes: clamped in one register (see copy_packet).
	ev->caplen = 0;
	if (copy_bytes) {
		n = len;
		limit = snaplen;
		asm volatile("if %[n] <= %[limit] goto +1\n\t"
			     "%[n] = %[limit]"
			     : [n] "+r"(n) : [limit] "r"(limit));
		// Helper: the one copy of frame bytes (not reachable through
		// BTF loads). copy_bytes is 0 where each call could write an
		// audit record (see copy_packet).
		if (n && bpf_probe_read_kernel((void *)(ev + 1) + stack_bytes, n, data) == 0) {
			ev->caplen = n;
			// The EtherType, from the copied Ethernet header.
			if (snaplen >= ETH_HLEN && n >= ETH_HLEN)
				ev->protocol = *(__u16 *)((void *)(ev + 1) + stack_bytes + 12);
		}
	}

	if (exit_hook) {
		ev->packet_id = id;
	} else {
		// A new packet: ids as in update_tracking (record.h).
		id = state->next_id++ * nr_cpus + cpu + 1;
		ev->packet_id = id;
		info.id = id;
		info.netns = ev->netns;
		info.ifindex = ev->ifindex;
		info.dev_type = ev->dev_type;
		info.has_dev = dev != NULL;
		call.hook = hook_id;
		// Helper: this run's entry, for its exit (one LRU hash update).
		bpf_map_update_elem(&calls, &call, &info, BPF_ANY);
	}
	submit(ev, state, 0);
	return 0;
}
