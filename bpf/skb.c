//go:build ignore

// skb.c: one tp_btf program that records a struct sk_buff seen at a kernel
// tracepoint into a shared ring buffer.
//
// The same object is loaded once per tracepoint. Everything that differs
// between tracepoints (where the skb, device, drop reason and location are in
// the argument list, the hook's id, the snap length) is a `volatile const`
// knob in .rodata that user space sets before loading. The verifier sees
// those values as constants, so branches for other argument positions are
// dead code and never checked against this tracepoint's prototype.
//
// Maps (ring buffer, tracking table, per-CPU state) are created once by user
// space and shared between all loaded copies.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char __license[] SEC("license") = "Dual MIT/GPL";

// Largest snap length the program accepts. Keeps the copy length provably
// bounded for the verifier.
#define MAX_SNAPLEN 65535

// Largest filter window copied with direct loads rather than a helper.
#define DIRECT_MAX 512

// Values of struct event.header: where the captured bytes start.
#define HEADER_MAC 0
#define HEADER_NETWORK 1
#define HEADER_DATA 2

// Bits of struct event.flags.
#define FLAG_HAS_DROP 1
#define FLAG_HAS_DEV 2

// ARPHRD_* device types whose link-layer header is a 14-byte Ethernet header.
#define ARPHRD_ETHER 1
#define ARPHRD_LOOPBACK 772
#define ETH_HLEN 14

// Header offsets in struct sk_buff are 16 bits; all ones means "not set".
#define OFFSET_UNSET 0xffff

// Record written to the ring buffer for each hit. It is followed by
// caplen bytes of packet data (the reservation is sizeof(struct event) +
// snaplen bytes; bytes past caplen are undefined).
struct event {
	__u64 ktime_ns;      // bpf_ktime_get_ns() at the hit
	__u64 skb;           // address of the struct sk_buff
	__u64 packet_id;     // tracking id, the same at every hook
	__u64 drop_location; // kfree_skb: code address that freed the skb
	__u64 lost;          // events lost on this CPU so far (running count)
	__u32 pid;           // thread group id of the current task
	__u32 tid;           // thread id of the current task
	__u32 netns;         // network namespace inode, 0 if unknown
	__u32 ifindex;       // device index, 0 if unknown
	__u32 mark;          // skb->mark
	__u32 len;           // skb->len
	__u32 data_len;      // skb->data_len (bytes not in the linear area)
	__u32 drop_reason;   // kfree_skb: enum skb_drop_reason
	__u32 cpu;           // CPU the hook ran on
	__u32 caplen;        // bytes of packet data following the record
	__u16 hook_id;       // index into user space's hook table
	__u16 protocol;      // skb->protocol, network byte order
	__u16 dev_type;      // ARPHRD_* of the device, 0 if none
	__u8 pkt_type;       // PACKET_* of the skb
	__u8 header;         // HEADER_*: where the bytes start
	__u8 flags;          // FLAG_* bits
	__u8 _pad[7];
	char comm[16];       // comm of the current task
};

// Keeps struct event in the object's BTF so bpf2go can generate its Go mirror;
// the ring buffer only ever sees it through a void pointer.
const struct event *unused_event __attribute__((unused));

// Per-CPU state. One lookup per hit returns both counters.
struct cpu_state {
	__u64 next_id; // packet ids handed out on this CPU
	__u64 lost;    // records that could not be reserved on this CPU
	__u64 addr;    // the current skb's address, see address_of
};

// Knobs set by user space before loading (one copy per tracepoint).
volatile const __u32 hook_id = 0;
volatile const __s32 skb_arg = 0;       // argument index of the skb
volatile const __s32 dev_arg = -1;      // index of a struct net_device *, or -1
volatile const __s32 reason_arg = -1;   // index of the drop reason, or -1
volatile const __s32 location_arg = -1; // index of the free location, or -1
volatile const __u32 is_free_hook = 0;  // 1 where the skb is freed (forget its id)
volatile const __u32 untrack_only = 0;  // 1: a free hook attached only to end tracking
volatile const __u32 snaplen = 256;     // bytes of packet data reserved per record
volatile const __u32 nr_cpus = 1;       // possible CPUs, spreads ids over CPUs
volatile const __u64 wakeup_bytes = 0;  // wake the reader at multiples of this fill level

// Filter knobs: conditions a packet not yet followed must meet to be
// recorded, ANDed. A zero value means "any" (a mask of 0 ignores the mark).
volatile const __u32 match_netns = 0;     // namespace inode, as in struct event
volatile const __u32 match_ifindex = 0;   // device index, as in struct event
volatile const __u32 match_mark = 0;      // skb->mark & match_mark_mask must equal this
volatile const __u32 match_mark_mask = 0;
volatile const __u32 match_pid = 0;       // thread group id of the current task
volatile const __u32 has_expr = 0;        // 1: filter_packet holds a compiled expression
volatile const __u32 filter_window = 0;   // bytes filter_packet may read (<= filter_buf value size)
volatile const __u32 track = 1;           // 0: run the filter at every hook, tracked or not
volatile const __u32 direct_read = 0;     // 1: the kernel lets BPF load through skb->head

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); // replaced by user space
} events SEC(".maps");

// Packets being followed. Per-CPU LRU lists avoid a lock shared by all
// CPUs on every insert; lookups still see entries inserted on any CPU.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(max_entries, 1 << 16);
	__type(key, __u64);   // skb address
	__type(value, __u64); // packet id
} tracked SEC(".maps");

// How many tracked entries may exist per slot of skb addresses (a counting
// Bloom filter with one hash). A hit whose slot counts 0 is of a packet not
// followed, and skips the tracked lookup: the tracked table is far larger
// than the CPU caches, and a lookup that misses costs about as much as the
// rest of a rejected hit. Counts are incremented before an entry is added
// and decremented after one is deleted, so a count is never below the
// number of entries in its slot; entries that the LRU evicts leave their
// counts behind, which only costs a lookup.
#define HINT_SLOTS 4096
struct tracked_hint {
	__u32 count[HINT_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tracked_hint);
} hints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_state);
} cpu_states SEC(".maps");

// The hint slot of an skb address: the top bits of a multiplicative hash,
// since the low bits of slab addresses are all alike.
static __always_inline __u32 hint_slot(__u64 addr)
{
	return (__u32)((addr * 0x9E3779B97F4A7C15ULL) >> 52) & (HINT_SLOTS - 1);
}

// Returns the address of skb as a number. The verifier allows no arithmetic
// but addition on a pointer; a pointer stored to a map value reads back as a
// number (stores of pointers to maps need CAP_PERFMON, which loading these
// programs needs anyway). The volatile accesses keep the compiler from
// short-circuiting the round trip.
static __always_inline __u64 address_of(struct cpu_state *state, struct sk_buff *skb)
{
	*(volatile __u64 *)&state->addr = (__u64)skb;
	return *(volatile __u64 *)&state->addr;
}

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

// Loads argument idx of the tracepoint. Each index is a separate inline asm
// load at a fixed offset: tp_btf only types (and lets us dereference) context
// loads at constant offsets, and the compiler must not merge the cases into
// one load at a computed offset. idx is a .rodata constant, so the verifier
// only walks the live case.
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
	}
	return v;
}

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

// Where an skb's bytes start and what device it is on: everything both the
// filter and the record need to know before any byte is copied.
struct where {
	unsigned char *head; // skb->head
	__u32 start;         // offset from head of the first byte to copy
	__u32 caplen;        // linear bytes from start, at most snaplen
	__u32 wire_len;      // packet bytes from start, linear or not
	__u32 netns;
	__u32 ifindex;
	__u16 dev_type;
	__u8 header;         // HEADER_*
	__u8 has_dev;
};

// Fills w from skb and the tracepoint's device argument. Plain BTF-typed
// loads only: no helper calls.
static __always_inline void locate(void *ctx, struct sk_buff *skb, struct where *w)
{
	struct net_device *dev;
	__u32 tail, data, len;
	__u16 mac, network;

	// The device: the tracepoint's own argument where it has one (after a
	// veth transmit, skb->dev already points at the peer), else skb->dev.
	if (dev_arg >= 0)
		dev = (struct net_device *)load_arg(ctx, dev_arg);
	else
		dev = skb->dev;

	if (dev) {
		w->has_dev = 1;
		w->ifindex = dev->ifindex;
		w->dev_type = dev->type;
		w->netns = dev->nd_net.net->ns.inum;
	} else {
		struct sock *sk = skb->sk;

		w->has_dev = 0;
		w->ifindex = skb->skb_iif;
		w->dev_type = 0;
		w->netns = sk ? sk->__sk_common.skc_net.net->ns.inum : 0;
	}

	// Choose where the captured bytes start: the MAC header when it is set
	// and is a full Ethernet header, else the network header, else skb->data.
	// Offsets are relative to skb->head.
	w->head = skb->head;
	tail = skb->tail;
	mac = skb->mac_header;
	network = skb->network_header;
	data = (__u32)(skb->data - w->head);
	w->start = data;
	w->header = HEADER_DATA;
	if (network != OFFSET_UNSET && network != 0 && network <= tail) {
		w->start = network;
		w->header = HEADER_NETWORK;
	}
	if (mac != OFFSET_UNSET && mac <= tail &&
	    (w->dev_type == ARPHRD_ETHER || w->dev_type == ARPHRD_LOOPBACK)) {
		// On transmit mac_len is often 0 while the MAC header is in place
		// in front of the network header: accept either measure.
		__u32 maclen = skb->mac_len;

		if (w->header == HEADER_NETWORK && network > mac)
			maclen = network - mac;
		if (maclen >= ETH_HLEN) {
			w->start = mac;
			w->header = HEADER_MAC;
		}
	}

	w->caplen = 0;
	if (w->start < tail)
		w->caplen = tail - w->start;
	if (w->caplen > snaplen)
		w->caplen = snaplen;
	if (w->caplen > MAX_SNAPLEN)
		w->caplen = MAX_SNAPLEN;

	// skb->len counts from skb->data; the filter's "len" counts from start.
	len = skb->len;
	w->wire_len = 0;
	if (len + data > w->start)
		w->wire_len = len + data - w->start;
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

	// Copy the bytes the filter may read into this CPU's filter_buf entry,
	// and filter there. Copying before reserving a ring buffer record makes
	// a rejected packet cost one small copy instead of a reservation, a
	// snaplen copy and a discard; and the filter reads only bytes copied
	// here, never the kernel's memory (no helper call per filter load).
	__u32 cpu = bpf_get_smp_processor_id(); // Helper: inlined per-CPU read
	__u64 n64 = w->caplen;
	void *buf;

	// Helper: array lookup (inlined by the verifier); fails only if
	// user space sized the map for fewer CPUs than there are.
	buf = bpf_map_lookup_elem(&filter_buf, &cpu);
	if (!buf)
		return 0;
	// Clamp in one register the verifier can follow: written in C, the
	// compiler may compare a zero-extended copy and pass the original.
	__u64 limit = filter_window;
	asm volatile("if %[n] <= %[limit] goto +1\n\t"
		     "%[n] = %[limit]"
		     : [n] "+r"(n64) : [limit] "r"(limit));
	if (direct_read && filter_window <= DIRECT_MAX) {
		// Loads through skb->head are fault-safe loads the verifier
		// converts from plain ones; no helper call. The loop counts words
		// in a variable of its own: were it compared with n64, each exit
		// would leave the verifier a different range for n64 and it would
		// check filter_packet once per exit instead of once.
		unsigned char *src = w->head + w->start;
		__u64 *dst = buf;
		__u64 words = (n64 + 7) >> 3;

		for (int i = 0; i < DIRECT_MAX / 8; i++) {
			if (i >= words)
				break;
			dst[i] = *(__u64 *)(src + i * 8);
		}
	} else if (bpf_probe_read_kernel(buf, n64, w->head + w->start) < 0) {
		// Helper: the only way to read packet bytes in a tracing program.
		n64 = 0;
	}
	return filter_packet(buf, buf + n64, w->header, w->wire_len);
}

// Stops following the skb at *key, which is freed: its address may be
// reused by a new one.
static __always_inline void forget(__u64 *key, __u32 *slot)
{
	// Helper: drop the tracking entry; only a deleted entry uncounts.
	if (bpf_map_delete_elem(&tracked, key) == 0)
		__sync_fetch_and_add(slot, -1);
}

SEC("tp_btf/placeholder")
int on_skb(void *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)load_arg(ctx, skb_arg);
	struct cpu_state *state;
	struct tracked_hint *hint;
	struct event *ev;
	struct where w;
	__u32 *slot;
	__u64 key, *known, id = 0, avail, flags;
	__u32 zero = 0, cpu;

	// Some tracepoints (qdisc_dequeue) pass NULL when there is no packet.
	if (!skb)
		return 0;
	key = (__u64)skb;

	// Helper: the only way to reach per-CPU state; inlined by the verifier.
	// One lookup serves the id counter, the loss counter and address_of.
	// Only fails if the map is misconfigured.
	state = bpf_map_lookup_elem(&cpu_states, &zero);
	if (!state)
		return 0;
	// Helper: array lookup, inlined by the verifier. Only fails if the map
	// is misconfigured.
	hint = bpf_map_lookup_elem(&hints, &zero);
	if (!hint)
		return 0;
	slot = &hint->count[hint_slot(address_of(state, skb))];

	// Helper: is this skb already being followed? Decides whether the filter
	// runs and which id the record carries. Skipped when the hint says no
	// entry can exist.
	known = NULL;
	if (*slot)
		known = bpf_map_lookup_elem(&tracked, &key);
	if (known)
		id = *known;

	// A free hook the user did not ask for, attached so that the ids of
	// freed skbs are not inherited by new skbs at the same address.
	if (untrack_only) {
		if (known)
			forget(&key, slot);
		return 0;
	}

	locate(ctx, skb, &w);

	// Only packets not yet followed are filtered (unless tracking is off);
	// once kept, a packet is recorded at every hook whatever its bytes
	// become (NAT, encapsulation).
	if ((!known || !track) && !wanted(skb, &w)) {
		if (known && is_free_hook)
			forget(&key, slot);
		return 0;
	}

	// Helper: reserve the record in place, so the packet bytes are copied
	// once, straight into the ring. snaplen is a load-time constant, as the
	// verifier requires for the size.
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev) + snaplen, 0);
	if (!ev) {
		// Never silent: the next record from this CPU carries the count.
		state->lost++;
		// The skb is gone after a free hook even if we could not record it.
		if (known && is_free_hook)
			forget(&key, slot);
		return 0;
	}

	// Helper: monotonic clock; user space converts to wall-clock time.
	ev->ktime_ns = bpf_ktime_get_ns();
	// Helper: inlined by the verifier into a per-CPU variable read on x86-64.
	cpu = bpf_get_smp_processor_id();
	ev->cpu = cpu;
	// Helper: one call returns both thread and thread-group ids.
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	ev->pid = pid_tgid >> 32;
	ev->tid = (__u32)pid_tgid;
	// Helper: copies the task's comm straight into the record.
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));

	ev->hook_id = hook_id;
	ev->skb = key;
	ev->lost = state->lost;
	ev->flags = w.has_dev ? FLAG_HAS_DEV : 0;
	ev->drop_reason = 0;
	ev->drop_location = 0;
	ev->netns = w.netns;
	ev->ifindex = w.ifindex;
	ev->dev_type = w.dev_type;
	ev->header = w.header;

	// Everything below reads kernel memory through BTF-typed pointers: plain
	// loads, checked by the verifier, no bpf_probe_read_kernel calls.
	ev->len = skb->len;
	ev->data_len = skb->data_len;
	ev->mark = skb->mark;
	ev->protocol = skb->protocol;
	ev->pkt_type = BPF_CORE_READ_BITFIELD(skb, pkt_type);

	if (reason_arg >= 0) {
		ev->flags |= FLAG_HAS_DROP;
		ev->drop_reason = (__u32)load_arg(ctx, reason_arg);
	}
	if (location_arg >= 0)
		ev->drop_location = load_arg(ctx, location_arg);

	// Helper: the one copy of packet bytes into the record (linear area
	// only). Packet data is not reachable through BTF-typed loads.
	ev->caplen = w.caplen;
	if (bpf_probe_read_kernel((void *)(ev + 1), w.caplen, w.head + w.start) < 0)
		ev->caplen = 0;

	if (!known) {
		// Unique over CPUs without atomic fetch-and-add: each CPU hands out
		// its own residue class modulo nr_cpus. (A hook that interrupts
		// another one on the same CPU between this read and write could
		// reuse an id; the skb tracepoints run with bottom halves disabled
		// or in softirq, which makes that nesting rare.)
		id = state->next_id++ * nr_cpus + cpu + 1;
		if (!is_free_hook) {
			__sync_fetch_and_add(slot, 1);
			// Helper: remember the skb so later hooks reuse the id.
			if (bpf_map_update_elem(&tracked, &key, &id, BPF_ANY))
				__sync_fetch_and_add(slot, -1);
		}
	} else if (is_free_hook) {
		forget(&key, slot);
	}
	ev->packet_id = id;

	// Wake the reader only when this record crosses a multiple of
	// wakeup_bytes of unread data; a wakeup per record costs far more than
	// the record. User space also polls on a timer for quiet streams.
	flags = BPF_RB_NO_WAKEUP;
	if (wakeup_bytes) {
		// Helper: unread bytes, including this reserved record.
		avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
		// This record's share: 8-byte ring header, data padded to 8.
		__u64 size = ((sizeof(*ev) + snaplen + 7) & ~7ULL) + 8;
		if (avail >= wakeup_bytes &&
		    (avail < size || avail / wakeup_bytes != (avail - size) / wakeup_bytes))
			flags = BPF_RB_FORCE_WAKEUP;
	}
	// Helper: publish the record.
	bpf_ringbuf_submit(ev, flags);
	return 0;
}
