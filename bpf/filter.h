// filter.h: the packet filter: the metadata knobs and the seam user space
// fills with a compiled tcpdump expression. Included by common.h only.
#ifndef PATHCAP_FILTER_H
#define PATHCAP_FILTER_H

// Where the packet filter reads from: one entry per possible CPU (indexed by
// bpf_get_smp_processor_id), holding the first filter_window bytes of the
// packet being filtered. User space sets max_entries to the number of
// possible CPUs and value_size to at least the furthest constant offset the
// compiled filter loads from, rounded up. A plain array rather than a
// per-CPU one: per-CPU values are limited to 32 KiB, and a filter may need a
// whole 64 KiB snap length.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);  // replaced by user space
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 64);  // replaced by user space
} filter_buf SEC(".maps");

// Packet filter seam. Returns non-zero to keep the packet whose first bytes
// are [data, data_end); header is HEADER_* (where those bytes start in the
// packet) and wire_len the packet's length from there, including bytes that
// were not copied. User space replaces the body of this function with
// compiled filter expressions before loading (one program for bytes from the
// MAC header, one for bytes from the network header, chosen by header); the
// default keeps everything. The empty asm makes the result opaque to the
// compiler, so the call stays a real BPF-to-BPF call with the arguments in
// R1 to R4 instead of being folded into the caller.
//
// data points into a filter_buf entry, memory of a size the verifier knows:
// there, unlike for packet pointers, comparing a pointer against data_end
// proves nothing, so the replacement body must keep every load provably
// inside the entry by itself (see capture/filter.go).
static __noinline int filter_packet(void *data, void *data_end, __u32 header, __u32 wire_len)
{
	int keep = 1;

	asm volatile("" : "+r"(keep) : "r"(data), "r"(data_end), "r"(header), "r"(wire_len));
	return keep;
}

// Reports whether an skb not yet followed is to be recorded: the metadata
// knobs first (cheap, no copy), then the compiled expression on a copy of
// the packet's first bytes. Every knob is a load-time constant, so the
// verifier removes the checks that are off; without any, this is "return 1".
static __always_inline int wanted(struct sk_buff *skb, struct where *w)
{
	if (match_netns && w->netns != match_netns)
		return 0;
	if (match_ifindex && w->ifindex != match_ifindex)
		return 0;
	if (match_mark_mask && (skb->mark & match_mark_mask) != match_mark)
		return 0;
	if (match_pid) {
		// Helper: the current task's thread group id. In softirq context
		// that is whichever task was interrupted.
		if ((bpf_get_current_pid_tgid() >> 32) != match_pid)
			return 0;
	}
	if (!has_expr)
		return 1;

	__u64 n64 = w->caplen;
	// Clamp in one register the verifier can follow: written in C, the
	// compiler may compare a zero-extended copy and pass the original.
	__u64 limit = filter_window;
	asm volatile("if %[n] <= %[limit] goto +1\n\t"
		     "%[n] = %[limit]"
		     : [n] "+r"(n64) : [limit] "r"(limit));
#if BTF_READS
	if (direct_read) {
		// The filter loads straight from the packet: loads through
		// skb->head are fault-safe loads the verifier converts from plain
		// ones, and the filter's own comparisons against the end keep
		// them inside the linear bytes. No copy, no helper call.
		unsigned char *data = w->head + w->start;

		return filter_packet(data, data + n64, w->header, w->wire_len);
	}
#endif
	// Copy the bytes the filter may read into this CPU's filter_buf entry,
	// and filter there: the filter reads only bytes copied here, never the
	// kernel's memory, and a rejected packet costs one small copy instead
	// of a reservation, a snaplen copy and a discard.
	__u32 cpu = bpf_get_smp_processor_id(); // Helper: inlined per-CPU read
	void *buf;

	// Helper: array lookup (inlined by the verifier); fails only if
	// user space sized the map for fewer CPUs than there are.
	buf = bpf_map_lookup_elem(&filter_buf, &cpu);
	if (!buf)
		return 0;
	if (bpf_probe_read_kernel(buf, n64, w->head + w->start) < 0) {
		// Helper: the only way to read packet bytes where the kernel
		// does not type skb->head as memory (and in kprobes).
		n64 = 0;
	}
	return filter_packet(buf, buf + n64, w->header, w->wire_len);
}

#endif // PATHCAP_FILTER_H
