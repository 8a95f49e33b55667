// event.h: the ring buffer record (struct event), its constants, the ring
// buffer and the per-CPU state. Included by common.h only.
#ifndef PATHCAP_EVENT_H
#define PATHCAP_EVENT_H

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
#define FLAG_HAS_NF 16   // nf_hook and nf_pf hold a netfilter hook's place;
                         // at nft_do_chain's exit drop_location is the base
                         // chain's address and drop_reason its handle's low bits
// FLAG_BYTES_SAME: the record
// carries no packet bytes (caplen 0) because they are the bytes of this
// packet's previous record that carried any (bytes_changed mode, see
// fingerprint in record.h). Distinct from caplen 0 without the flag, which
// means no bytes at all (audit-safe mode, an skb gone at a function's exit).
#define FLAG_BYTES_SAME 32

// Bytes of the packet (from where the captured bytes start) that the
// fingerprint of bytes_changed mode hashes: an Ethernet header, an IPv6
// header and a TCP header with the most options fit (14 + 40 + 60 = 114).
#define FP_WINDOW 128
#define FP_WORDS (FP_WINDOW / 8)

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
	// Running counts of this CPU, modulo 2^32 (user space takes differences
	// between a CPU's records, which stay far below 2^32).
	__u32 lost;          // events lost (the ring buffer was full)
	__u32 skipped;       // hits skipped under budget_per_cpu
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
	__u8 nf_hook;        // FLAG_HAS_NF: enum nf_inet_hooks (NF_INET_LOCAL_IN, ...)
	__u8 nf_pf;          // FLAG_HAS_NF: the protocol family (NFPROTO_IPV4, ...)
	__u8 _pad;
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
	__u64 window[FP_WORDS]; // bytes_changed: the packet bytes fingerprint() hashes
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); // replaced by user space
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_state);
} cpu_states SEC(".maps");

// This CPU's cpu_states entry. Helper: the only way to reach per-CPU
// state; inlined by the verifier. Only fails if the map is misconfigured.
static __always_inline struct cpu_state *cpu_state(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&cpu_states, &zero);
}

#endif // PATHCAP_EVENT_H
