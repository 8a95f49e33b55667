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
};

// Knobs set by user space before loading (one copy per tracepoint).
volatile const __u32 hook_id = 0;
volatile const __s32 skb_arg = 0;       // argument index of the skb
volatile const __s32 dev_arg = -1;      // index of a struct net_device *, or -1
volatile const __s32 reason_arg = -1;   // index of the drop reason, or -1
volatile const __s32 location_arg = -1; // index of the free location, or -1
volatile const __u32 is_free_hook = 0;  // 1 where the skb is freed (forget its id)
volatile const __u32 snaplen = 256;     // bytes of packet data reserved per record
volatile const __u32 nr_cpus = 1;       // possible CPUs, spreads ids over CPUs
volatile const __u64 wakeup_bytes = 0;  // wake the reader at multiples of this fill level

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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_state);
} cpu_states SEC(".maps");

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

// Packet filter seam. Returns non-zero to keep the packet whose captured bytes
// are [data, data_end). User space may replace the body of this function with
// a compiled filter before loading; the default keeps everything. The empty
// asm makes the result opaque to the compiler, so the call stays a real
// BPF-to-BPF call with both arguments in R1 and R2 instead of being folded
// into the caller.
static __noinline int filter_packet(void *data, void *data_end)
{
	int keep = 1;

	asm volatile("" : "+r"(keep) : "r"(data), "r"(data_end));
	return keep;
}

SEC("tp_btf/placeholder")
int on_skb(void *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)load_arg(ctx, skb_arg);
	struct net_device *dev;
	struct cpu_state *state;
	struct event *ev;
	__u64 key, *known, id = 0, avail, flags;
	__u32 zero = 0, cpu, caplen = 0;
	unsigned char *head;
	__u32 tail, start;
	__u16 mac, network;
	__u8 header;

	// Some tracepoints (qdisc_dequeue) pass NULL when there is no packet.
	if (!skb)
		return 0;
	key = (__u64)skb;

	// Helper: the only way to reach per-CPU state. One lookup serves both the
	// id counter and the loss counter. Only fails if the map is misconfigured.
	state = bpf_map_lookup_elem(&cpu_states, &zero);
	if (!state)
		return 0;

	// Helper: is this skb already being followed? Decides whether the filter
	// runs and which id the record carries.
	known = bpf_map_lookup_elem(&tracked, &key);
	if (known)
		id = *known;

	// Helper: reserve the record in place, so the packet bytes are copied
	// once, straight into the ring. snaplen is a load-time constant, as the
	// verifier requires for the size.
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev) + snaplen, 0);
	if (!ev) {
		// Never silent: the next record from this CPU carries the count.
		state->lost++;
		// The skb is gone after a free hook even if we could not record it.
		if (known && is_free_hook)
			// Helper: drop the tracking entry so a new skb at the same
			// address gets a new id.
			bpf_map_delete_elem(&tracked, &key);
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
	ev->flags = 0;
	ev->drop_reason = 0;
	ev->drop_location = 0;

	// Everything below reads kernel memory through BTF-typed pointers: plain
	// loads, checked by the verifier, no bpf_probe_read_kernel calls.
	ev->len = skb->len;
	ev->data_len = skb->data_len;
	ev->mark = skb->mark;
	ev->protocol = skb->protocol;
	ev->pkt_type = BPF_CORE_READ_BITFIELD(skb, pkt_type);

	// The device: the tracepoint's own argument where it has one (after a
	// veth transmit, skb->dev already points at the peer), else skb->dev.
	if (dev_arg >= 0)
		dev = (struct net_device *)load_arg(ctx, dev_arg);
	else
		dev = skb->dev;

	if (dev) {
		ev->flags |= FLAG_HAS_DEV;
		ev->ifindex = dev->ifindex;
		ev->dev_type = dev->type;
		ev->netns = dev->nd_net.net->ns.inum;
	} else {
		struct sock *sk = skb->sk;

		ev->ifindex = skb->skb_iif;
		ev->dev_type = 0;
		ev->netns = sk ? sk->__sk_common.skc_net.net->ns.inum : 0;
	}

	if (reason_arg >= 0) {
		ev->flags |= FLAG_HAS_DROP;
		ev->drop_reason = (__u32)load_arg(ctx, reason_arg);
	}
	if (location_arg >= 0)
		ev->drop_location = load_arg(ctx, location_arg);

	// Choose where the captured bytes start: the MAC header when it is set
	// and is a full Ethernet header, else the network header, else skb->data.
	// Offsets are relative to skb->head.
	head = skb->head;
	tail = skb->tail;
	mac = skb->mac_header;
	network = skb->network_header;
	start = (__u32)(skb->data - head);
	header = HEADER_DATA;
	if (network != OFFSET_UNSET && network != 0 && network <= tail) {
		start = network;
		header = HEADER_NETWORK;
	}
	if (mac != OFFSET_UNSET && mac <= tail &&
	    (ev->dev_type == ARPHRD_ETHER || ev->dev_type == ARPHRD_LOOPBACK)) {
		// On transmit mac_len is often 0 while the MAC header is in place
		// in front of the network header: accept either measure.
		__u32 maclen = skb->mac_len;

		if (header == HEADER_NETWORK && network > mac)
			maclen = network - mac;
		if (maclen >= ETH_HLEN) {
			start = mac;
			header = HEADER_MAC;
		}
	}
	ev->header = header;

	if (start < tail)
		caplen = tail - start;
	if (caplen > snaplen)
		caplen = snaplen;
	if (caplen > MAX_SNAPLEN)
		caplen = MAX_SNAPLEN;
	ev->caplen = caplen;

	// Helper: the one copy of packet bytes (linear area only). Packet data is
	// not reachable through BTF-typed loads.
	if (bpf_probe_read_kernel((void *)(ev + 1), caplen, head + start) < 0)
		ev->caplen = caplen = 0;

	if (!known) {
		void *data = (void *)(ev + 1);

		// Only packets not yet followed are filtered; once kept, a packet is
		// recorded at every hook whatever its bytes become.
		if (!filter_packet(data, data + caplen)) {
			// Helper: release the reservation without waking anyone.
			bpf_ringbuf_discard(ev, BPF_RB_NO_WAKEUP);
			return 0;
		}
		// Unique over CPUs without atomic fetch-and-add: each CPU hands out
		// its own residue class modulo nr_cpus. (A hook that interrupts
		// another one on the same CPU between this read and write could
		// reuse an id; the skb tracepoints run with bottom halves disabled
		// or in softirq, which makes that nesting rare.)
		id = state->next_id++ * nr_cpus + cpu + 1;
		if (!is_free_hook)
			// Helper: remember the skb so later hooks reuse the id.
			bpf_map_update_elem(&tracked, &key, &id, BPF_ANY);
	} else if (is_free_hook) {
		// Helper: the skb is freed; its address may be reused by a new one.
		bpf_map_delete_elem(&tracked, &key);
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
