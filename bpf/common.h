// common.h: what every pathcap BPF program shares: the ring buffer record,
// the maps, the load-time knobs, where an skb's bytes and device are, the
// packet filter seam, tracking and the recording of one hit.
//
// Two objects include it:
//   skb.c     BTF-typed programs (tp_btf, fentry, fexit): the skb and the
//             kernel objects it points to are read with plain loads that
//             the verifier checks against BTF (BTF_READS 1).
//   kprobe.c  kprobe and kprobe-multi programs: the skb pointer is a plain
//             number, so kernel memory is read with bpf_probe_read_kernel
//             (BTF_READS 0). The sk_buff itself is copied once per hit into
//             per-CPU scratch memory, and its fields are read from the copy.
//
// In both, struct sk_buff *skb below points at something whose fields are
// read with plain loads: the kernel's skb (BTF_READS 1) or the copy
// (BTF_READS 0). KREAD reads a field of any other kernel object.
//
// Maps are created once by user space from one object and shared with
// every program of both objects (the definitions here are the same for
// both), so packet ids and tracking are common to all backends.

#ifndef PATHCAP_COMMON_H
#define PATHCAP_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#ifndef BTF_READS
#error "define BTF_READS to 1 (BTF-typed programs) or 0 (kprobes) before including common.h"
#endif

#if BTF_READS
// Plain loads, checked by the verifier against BTF: no helper call.
#define KREAD(p, f) ((p)->f)
#define KREAD2(p, f, g) ((p)->f->g)
#else
// One bpf_probe_read_kernel per pointer followed (CO-RE relocated).
#define KREAD(p, f) BPF_CORE_READ(p, f)
#define KREAD2(p, f, g) BPF_CORE_READ(p, f, g)
#endif

char __license[] SEC("license") = "Dual MIT/GPL";

// Largest snap length the program accepts. Keeps the copy length provably
// bounded for the verifier.
#define MAX_SNAPLEN 65535

// Largest number of stack bytes per record (127 frames: the default of
// kernel.perf_event_max_stack).
#define MAX_STACK_BYTES (127 * 8)

// Largest filter window copied with direct loads rather than a helper.
#define DIRECT_MAX 512

// Values of struct event.header: where the captured bytes start.
#define HEADER_MAC 0
#define HEADER_NETWORK 1
#define HEADER_DATA 2

// Bits of struct event.flags.
#define FLAG_HAS_DROP 1
#define FLAG_HAS_DEV 2
#define FLAG_HAS_RET 4   // retval holds the function's return value
#define FLAG_HAS_STACK 8 // stack_len holds bpf_get_stack's result

// ARPHRD_* device types whose link-layer header is a 14-byte Ethernet header.
#define ARPHRD_ETHER 1
#define ARPHRD_LOOPBACK 772
#define ETH_HLEN 14

// Header offsets in struct sk_buff are 16 bits; all ones means "not set".
#define OFFSET_UNSET 0xffff

// Record written to the ring buffer for each hit. It is followed by
// stack_bytes bytes of kernel stack (when stacks are on; bytes past
// stack_len are undefined) and then caplen bytes of packet data (the
// reservation is sizeof(struct event) + stack_bytes + snaplen bytes; bytes
// past caplen are undefined).
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
	__u32 caplen;        // bytes of packet data following the stack
	__u16 hook_id;       // index into user space's hook table
	__u16 protocol;      // skb->protocol, network byte order
	__u16 dev_type;      // ARPHRD_* of the device, 0 if none
	__u8 pkt_type;       // PACKET_* of the skb
	__u8 header;         // HEADER_*: where the bytes start
	__u8 flags;          // FLAG_* bits
	__u8 _pad[3];
	__s32 stack_len;     // bytes of stack written, or a negative error
	char comm[16];       // comm of the current task
	__u64 parent;        // clones and copies: the original's packet id
	__u64 retval;        // fexit: the function's return value
};

// Keeps struct event in the object's BTF so bpf2go can generate its Go mirror;
// the ring buffer only ever sees it through a void pointer.
const struct event *unused_event __attribute__((unused));

// Per-CPU state. One lookup per hit returns both counters.
struct cpu_state {
	__u64 next_id; // packet ids handed out on this CPU
	__u64 lost;    // records that could not be reserved on this CPU
	__u64 addr;    // the current skb's address, see address_of
	__u64 unchecked; // ring bytes written since the last fill-level check
	__u64 budget_start; // budget_per_cpu: start of the current second
	__u64 budget_used;  // budget_per_cpu: events recorded in it
	__u64 over_budget;  // hits not recorded because the budget was spent
};

// Knobs set by user space before loading. The verifier sees them as
// constants, so branches that are off are dead code and never checked.
volatile const __u32 hook_id = 0;       // BTF-typed programs: the hook's id
volatile const __s32 skb_arg = 0;       // BTF-typed programs: argument index of the skb
volatile const __s32 dev_arg = -1;      // index of a struct net_device *, or -1
volatile const __s32 reason_arg = -1;   // index of the drop reason, or -1
volatile const __s32 location_arg = -1; // index of the free location, or -1
volatile const __s32 ret_arg = -1;      // fexit: index of the return value, or -1
volatile const __u32 is_free_hook = 0;  // 1 where the skb is freed (forget its id)
volatile const __u32 untrack_only = 0;  // 1: a free hook attached only to end tracking
volatile const __u32 exit_hook = 0;     // 1: function exit, pairs with its entry's call
volatile const __u32 entry_hook = 0;    // exit_hook: the hook id of the paired entry
volatile const __u32 pair_calls = 0;    // 1: an entry whose exit is hooked too: remember calls
volatile const __u32 clone_hook = 0;    // 1: exit of skb_clone & co: the skb argument is
                                        // the original, the return value the clone
volatile const __u32 snaplen = 256;     // bytes of packet data reserved per record
volatile const __u32 stack_bytes = 0;   // bytes of kernel stack reserved per record, 0: none
volatile const __u32 nr_cpus = 1;       // possible CPUs, spreads ids over CPUs
volatile const __u64 wakeup_bytes = 0;  // wake the reader at multiples of this fill level

// Kernel compatibility and host safety knobs (see docs/BACKENDS.md).
volatile const __u32 task_btf = 1;      // 1: bpf_get_current_task_btf exists (Linux 5.11+)
volatile const __u32 copy_bytes = 1;    // 0: record no packet bytes, so that a recorded hit
                                        // makes no bpf_probe_read_kernel call (audit-safe mode)
volatile const __u64 budget_per_cpu = 0; // most events recorded per second on one CPU, 0: no limit

// Filter knobs: conditions a packet not yet followed must meet to be
// recorded, ANDed. A zero value means "any" (a mask of 0 ignores the mark).
volatile const __u32 match_netns = 0;     // namespace inode, as in struct event
volatile const __u32 match_ifindex = 0;   // device index, as in struct event
volatile const __u32 match_mark = 0;      // skb->mark & match_mark_mask must equal this
volatile const __u32 match_mark_mask = 0;
volatile const __u32 match_pid = 0;       // thread group id of the current task
volatile const __u32 has_expr = 0;        // 1: filter_packet holds a compiled expression
volatile const __u32 filtered = 0;        // 1: any of the above is set (one load instead of five)
volatile const __u32 filter_window = 0;   // bytes filter_packet may read (<= filter_buf value size)
volatile const __u32 track = 1;           // 0: run the filter at every hook, tracked or not
volatile const __u32 direct_read = 0;     // 1: the kernel lets BPF load through skb->head

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); // replaced by user space
} events SEC(".maps");

// Packets being followed: a set-associative table of skb addresses and
// packet ids in an array map. An skb address picks one set of TRACK_WAYS
// entries; a lookup compares the set's keys, an insert takes an empty entry
// or else the set's oldest, a delete clears the key. All of it is plain
// loads and stores on memory the verifier knows (the array lookup is
// inlined): no helper call, no lock. A hash map's update and delete cost
// about 150 ns each here, more than the rest of a recorded hit.
//
// Entries are written without a lock: two CPUs inserting into the same entry
// at the same moment could leave one's key with the other's id. Each tag
// therefore carries check bits of its key next to the id, and a tag whose
// check bits do not match is taken as no entry (that packet is no longer
// followed, which a collision could cause anyway), never as another
// packet's id.
#define TRACK_WAYS 4
#define TRACK_ID_BITS 44
#define TRACK_ID_MASK ((1ULL << TRACK_ID_BITS) - 1)

struct track_set {
	__u64 key[TRACK_WAYS];  // skb address, 0 for an empty entry
	__u64 tag[TRACK_WAYS];  // packet id, check bits of the key above TRACK_ID_BITS
	__u64 when[TRACK_WAYS]; // bpf_ktime_get_ns() of the insert: the oldest goes first
	__u64 head[TRACK_WAYS]; // tracked: the buffer last remembered in heads for the entry
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << 14); // sets; replaced by user space (a power of two)
	__type(key, __u32);
	__type(value, struct track_set);
} tracked SEC(".maps");

volatile const __u32 track_set_mask = (1 << 14) - 1; // sets in tracked (and heads), minus one

// Data buffers (skb->head) of followed packets, to link clones to the
// packet they came from on every backend, tracepoints included: a clone
// (skb_clone) is a new struct sk_buff sharing its original's buffer, and
// both have skb->cloned set. The same set-associative layout as tracked,
// keyed by the buffer's address, with the packet id in the tag. An entry
// is trusted for HEAD_TTL_NS after it was written: the buffer of a freed
// packet may be reused by an unrelated one, which then has the cloned bit
// clear, or is cloned long after.
#define HEAD_TTL_NS 2000000000ULL

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << 14); // sets; replaced by user space (as tracked)
	__type(key, __u32);
	__type(value, struct track_set);
} heads SEC(".maps");

volatile const __u32 link_clones = 0; // 1: link clones to their originals by buffer

// How many tracked entries may exist per slot of sets (a counting Bloom
// filter of the table's occupancy). A hit whose slot counts 0 is of a packet
// not followed, and does not touch the tracked table: the table is far
// larger than the CPU caches, and loading a set that is not cached costs
// about as much as the rest of a rejected hit. A count is raised when an
// entry goes from empty to used and lowered when one is cleared; replacing
// the oldest entry of a full set leaves it alone (sets map to slots, so the
// old and the new key share the slot).
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

// Calls of functions whose entry and exit are both hooked (fentry and
// fexit): the skb's address and the entry's hook id, to the packet id the
// entry recorded. The exit takes its entry out and records under the same
// id even if the function freed the skb meanwhile. Bounded: the entry of a
// call whose exit never comes (a failed attachment) is evicted.
struct call_key {
	__u64 skb;
	__u64 hook;
};

// What the exit of a call takes from its entry: the packet id and where the
// skb was (for an exit after the function freed it).
struct call_info {
	__u64 id;
	__u32 netns;
	__u32 ifindex;
	__u16 dev_type;
	__u8 has_dev;
	__u8 _pad[5];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct call_key);
	__type(value, struct call_info);
} calls SEC(".maps");

// The set of the tracked table an skb address belongs to: the top bits of a
// multiplicative hash, since the low bits of slab addresses are all alike.
static __always_inline __u32 track_set_of(__u64 addr)
{
	return (__u32)((addr * 0x9E3779B97F4A7C15ULL) >> 32) & track_set_mask;
}

// The check bits of an skb address in a tag: another hash of it, so that
// entries whose keys share a set rarely share check bits.
static __always_inline __u64 track_check(__u64 addr)
{
	return ((addr * 0xC2B2AE3D27D4EB4FULL) >> TRACK_ID_BITS) << TRACK_ID_BITS;
}

// A followed packet's place in the tracked table.
struct track_ref {
	struct track_set *set; // the skb address's set, NULL if not looked up
	__u32 *count;          // its hint count
	__u64 key;             // the skb address
	int way;               // the entry holding key, -1 if none
};

// Reports whether the skb at key may be followed: false when the hint count
// of its group of sets is 0. Helper: one array lookup, inlined.
static __always_inline int maybe_followed(__u64 key)
{
	struct tracked_hint *hint;
	__u32 zero = 0;

	hint = bpf_map_lookup_elem(&hints, &zero);
	return !hint || hint->count[track_set_of(key) & (HINT_SLOTS - 1)] != 0;
}

// Looks key up. Returns its packet id, or 0 if it is not followed; ref
// remembers where, for track_insert and track_forget. Helper calls: two
// array lookups, both inlined by the verifier.
static __always_inline __u64 track_lookup(__u64 key, struct track_ref *ref)
{
	struct tracked_hint *hint;
	__u32 zero = 0, set = track_set_of(key);

	ref->set = NULL;
	ref->count = NULL;
	ref->key = key;
	ref->way = -1;
	hint = bpf_map_lookup_elem(&hints, &zero);
	if (!hint)
		return 0;
	ref->count = &hint->count[set & (HINT_SLOTS - 1)];
	if (!*ref->count)
		return 0;
	ref->set = bpf_map_lookup_elem(&tracked, &set);
	if (!ref->set)
		return 0;
	for (int i = 0; i < TRACK_WAYS; i++) {
		if (ref->set->key[i] == key) {
			__u64 tag = ref->set->tag[i];

			ref->way = i;
			if ((tag & ~TRACK_ID_MASK) != track_check(key))
				return 0; // torn by concurrent inserts: not followed
			return tag & TRACK_ID_MASK;
		}
	}
	return 0;
}

// Follows the skb of ref (looked up by track_lookup, and not found) under
// id from now on. ids beyond TRACK_ID_BITS are not followed. Helper calls:
// one array lookup, inlined by the verifier.
static __always_inline void track_insert(struct track_ref *ref, __u64 id, __u64 now)
{
	struct track_set *set = ref->set;
	__u32 index = track_set_of(ref->key);
	int way = 0, empty = 0;

	if (!ref->count || id > TRACK_ID_MASK)
		return;
	if (!set) {
		set = bpf_map_lookup_elem(&tracked, &index);
		if (!set)
			return;
	}
	{
		__u64 oldest = ~0ULL;

		// The key's own entry if it has one (a torn one, or a stale one
		// under a clone, which skips the lookup), else an empty entry,
		// else the oldest.
		for (int i = 0; i < TRACK_WAYS; i++) {
			__u64 k = set->key[i];

			if (k == ref->key) {
				way = i;
				empty = 0;
				break;
			}
			if (empty)
				continue;
			if (!k) {
				way = i;
				empty = 1;
			} else if (set->when[i] < oldest) {
				oldest = set->when[i];
				way = i;
			}
		}
	}
	// Count first, so that the count is never below the entries it covers.
	if (empty)
		__sync_fetch_and_add(ref->count, 1);
	// The way index is in [0, TRACK_WAYS): the verifier needs it bounded.
	way &= TRACK_WAYS - 1;
	set->tag[way] = id | track_check(ref->key);
	set->when[way] = now;
	set->head[way] = 0;
	set->key[way] = ref->key;
	ref->set = set;
	ref->way = way;
}

// Stops following the skb of ref, which is freed: its address may be
// reused by a new one.
static __always_inline void track_forget(struct track_ref *ref)
{
	int way = ref->way & (TRACK_WAYS - 1);

	if (!ref->set || ref->way < 0 || !ref->count)
		return;
	// Clear the key only if it is still ours (another CPU may have taken the
	// entry meanwhile), then uncount it.
	if (ref->set->key[way] != ref->key)
		return;
	ref->set->key[way] = 0;
	__sync_fetch_and_add(ref->count, -1);
}

// Remembers that the buffer at head belongs to packet id (a followed
// packet's current buffer). Helper calls: one array lookup, inlined.
static __always_inline void head_remember(__u64 head, __u64 id, __u64 now)
{
	__u32 index = track_set_of(head);
	struct track_set *set;
	__u64 oldest = ~0ULL;
	int way = 0;

	if (!head || id > TRACK_ID_MASK)
		return;
	set = bpf_map_lookup_elem(&heads, &index);
	if (!set)
		return;
	// The buffer's own entry, else the oldest.
	for (int i = 0; i < TRACK_WAYS; i++) {
		if (set->key[i] == head) {
			way = i;
			break;
		}
		if (set->when[i] < oldest) {
			oldest = set->when[i];
			way = i;
		}
	}
	way &= TRACK_WAYS - 1;
	set->tag[way] = id | track_check(head);
	set->when[way] = now;
	set->key[way] = head;
}

// The packet id whose buffer is at head, if one was remembered within
// HEAD_TTL_NS, else 0. Helper calls: one array lookup, inlined, and the
// clock.
static __always_inline __u64 head_owner(__u64 head)
{
	__u32 index = track_set_of(head);
	struct track_set *set;

	if (!head)
		return 0;
	set = bpf_map_lookup_elem(&heads, &index);
	if (!set)
		return 0;
	for (int i = 0; i < TRACK_WAYS; i++) {
		if (set->key[i] == head) {
			__u64 tag = set->tag[i];

			if ((tag & ~TRACK_ID_MASK) != track_check(head))
				return 0;
			if (bpf_ktime_get_ns() - set->when[i] > HEAD_TTL_NS)
				return 0;
			return tag & TRACK_ID_MASK;
		}
	}
	return 0;
}


// Returns the address of p as a number. The verifier allows no arithmetic
// but addition on a pointer; a pointer stored to a map value reads back as a
// number (stores of pointers to maps need CAP_PERFMON, which loading these
// programs needs anyway). The volatile accesses keep the compiler from
// short-circuiting the round trip.
static __always_inline __u64 address_of(struct cpu_state *state, void *p)
{
	*(volatile __u64 *)&state->addr = (__u64)p;
	return *(volatile __u64 *)&state->addr;
}

// Forgets the buffer of a followed packet (id) whose skb is freed, unless
// a clone still shares it (skb->cloned): an unrelated cloned skb that gets
// the same buffer later must not be taken for a clone of it. Helper calls:
// one array lookup, inlined.
static __always_inline void head_forget(struct cpu_state *state, struct sk_buff *skb, __u64 id)
{
	__u64 head;
	__u32 index;
	struct track_set *set;

	if (!link_clones || BPF_CORE_READ_BITFIELD(skb, cloned))
		return;
	head = address_of(state, skb->head);
	index = track_set_of(head);
	set = bpf_map_lookup_elem(&heads, &index);
	if (!set)
		return;
	for (int i = 0; i < TRACK_WAYS; i++) {
		if (set->key[i] == head && (set->tag[i] & TRACK_ID_MASK) == id)
			set->key[i] = 0;
	}
}

// The packet a clone not yet followed came from: skb is cloned and its
// buffer (head) belongs to a followed packet. Else 0. state is this CPU's
// state, for address_of.
static __always_inline __u64 clone_parent(struct cpu_state *state, struct sk_buff *skb, unsigned char *head)
{
	if (!link_clones || !BPF_CORE_READ_BITFIELD(skb, cloned))
		return 0;
	return head_owner(address_of(state, head));
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

// Where an skb's bytes start and what device it is on: what the filter and
// the record need to know. locate fills in the first part, which every hit
// needs; locate_device the device's index and namespace, which only a
// recorded hit (or a filter on them) needs: they are loads from other
// objects (the device, its namespace), and a rejected hit does not pay them.
struct where {
	unsigned char *head;    // skb->head
	struct net_device *dev; // the device, NULL if none
	__u32 start;            // offset from head of the first byte to copy
	__u32 caplen;           // linear bytes from start, at most snaplen
	__u32 wire_len;         // packet bytes from start, linear or not
	__u32 netns;            // locate_device
	__u32 ifindex;          // locate_device
	__u16 dev_type;
	__u8 header;            // HEADER_*
	__u8 has_dev;
};

// Fills in where the bytes of skb start and the type of its device: dev (a
// device argument of the hook), or NULL to use skb->dev. Helper calls: none
// with BTF_READS; otherwise one bpf_probe_read_kernel for the device type.
static __always_inline void locate(struct sk_buff *skb, struct net_device *dev, struct where *w)
{
	__u32 tail, data, len;
	__u16 mac, network;

	// The device: the hook's own argument where it has one (after a veth
	// transmit, skb->dev already points at the peer), else skb->dev.
	if (!dev)
		dev = skb->dev;
	w->dev = dev;
	w->has_dev = dev != NULL;
	w->dev_type = dev ? KREAD(dev, type) : 0;

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

// Fills in the device index and network namespace of w, located for skb.
// Helper calls: none with BTF_READS; otherwise three bpf_probe_read_kernel
// for a device (ifindex, the namespace pointer and its inode: fields of
// different objects, or far apart in struct net_device) or two for a socket
// (namespace pointer, inode).
static __always_inline void locate_device(struct sk_buff *skb, struct where *w)
{
	struct net_device *dev = w->dev;

	if (dev) {
		w->ifindex = KREAD(dev, ifindex);
		w->netns = KREAD2(dev, nd_net.net, ns.inum);
	} else {
		struct sock *sk = skb->sk;

		w->ifindex = skb->skb_iif;
		w->netns = sk ? KREAD2(sk, __sk_common.skc_net.net, ns.inum) : 0;
	}
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

// Records one hit of h at ctx (the program's context, for the stack) if its
// skb is followed or wanted, and keeps the tracking table up to date. state
// is this CPU's cpu_states entry.
static __always_inline int record(void *ctx, struct hit *h, struct cpu_state *state)
{
	struct sk_buff *skb = h->skb;
	struct track_ref ref = {};
	struct call_key call;
	struct call_info *entry, info;
	struct event *ev;
	struct where w;
	__u64 known = 0, id = 0, now, avail, flags, n, limit;
	__u32 cpu, paired = 0, gone = 0;

	// Is this skb already being followed? Decides whether the filter runs
	// and which id the record carries. A clone is a fresh skb: whatever
	// entry its address still has is stale, and is replaced below.
	if (!h->parent)
		known = track_lookup(h->key, &ref);
	else
		ref.key = h->key;
	id = known;

	// A free hook the user did not ask for, attached so that the ids of
	// freed skbs are not inherited by new skbs at the same address.
	if (untrack_only) {
		if (known) {
			track_forget(&ref);
			head_forget(state, skb, known);
		}
		return 0;
	}
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
	if (!known && !h->parent && !paired && !gone)
		h->parent = clone_parent(state, skb, w.head);

	if (!h->parent && !paired && (!known || !track) && !h->wanted && !wanted(skb, &w)) {
		if (known && (is_free_hook || h->frees)) {
			track_forget(&ref);
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
				track_forget(&ref);
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
			track_forget(&ref);
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
	ev->lost = state->lost;
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
		// Remember the skb so later hooks reuse the id.
		if (!(is_free_hook || h->frees))
			track_insert(&ref, id, now);
	} else if (is_free_hook || h->frees) {
		track_forget(&ref);
		if (!gone)
			head_forget(state, skb, id);
	}
	ev->packet_id = id;

	// Remember the packet's buffer for its clones, when it is new or
	// changed since the entry last remembered it (pskb_expand_head, a
	// linearized copy).
	if (link_clones && !paired && !gone && ref.set && ref.way >= 0 && !(is_free_hook || h->frees)) {
		int way = ref.way & (TRACK_WAYS - 1);
		__u64 head = address_of(state, w.head);

		if (ref.set->head[way] != head) {
			ref.set->head[way] = head;
			head_remember(head, id, now);
		}
	}

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

// This CPU's cpu_states entry. Helper: the only way to reach per-CPU
// state; inlined by the verifier. Only fails if the map is misconfigured.
static __always_inline struct cpu_state *cpu_state(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&cpu_states, &zero);
}

// The packet id of the skb at key if it is followed, else 0. Helper calls:
// two array lookups, inlined by the verifier; the set is not loaded when the
// hint rules an entry out.
static __always_inline __u64 followed_id(__u64 key)
{
	struct track_ref ref;

	return track_lookup(key, &ref);
}

#endif // PATHCAP_COMMON_H
