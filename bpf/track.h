// track.h: following packets from hook to hook: the tracked table of skb
// addresses, the heads table of their buffers (clones), the hints in front
// of them, and the calls of functions whose exits are hooked. Included by
// common.h only.
#ifndef PATHCAP_TRACK_H
#define PATHCAP_TRACK_H

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

// A set of the tracked table: a track_set and, per entry, the fingerprint
// of the bytes last recorded for the packet (bytes_changed; 0: none, so the
// next hit records its bytes). The heads table keeps plain track_sets.
struct tracked_set {
	struct track_set s;
	__u64 fp[TRACK_WAYS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << 14); // sets; replaced by user space (a power of two)
	__type(key, __u32);
	__type(value, struct tracked_set);
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

// The hint count of the group of sets index belongs to, or NULL (only if
// the hints map is misconfigured). Helper: one array lookup, inlined.
static __always_inline __u32 *track_count(__u32 index)
{
	struct tracked_hint *hint;
	__u32 zero = 0;

	hint = bpf_map_lookup_elem(&hints, &zero);
	if (!hint)
		return NULL;
	return &hint->count[index & (HINT_SLOTS - 1)];
}

// Reports whether the skb at key may be followed: false when the hint count
// of its group of sets is 0. Helper: one array lookup, inlined.
static __always_inline int maybe_followed(__u64 key)
{
	__u32 *count = track_count(track_set_of(key));

	return !count || *count != 0;
}

// The packet id of the skb at key if it is followed, else 0. Helper calls:
// two array lookups, both inlined by the verifier; the set is not loaded
// when the hint rules an entry out.
//
// The tracking functions take the skb's address and look its set up
// themselves, rather than passing a reference to the entry from the lookup
// to the insert or delete: the entry's place (which way, whether the set
// was loaded) would be live across everything in between, and the verifier
// walks that code once for each combination of its values.
static __always_inline __u64 followed_id(__u64 key)
{
	__u32 index = track_set_of(key);
	__u32 *count = track_count(index);
	struct track_set *set;

	if (!count || !*count)
		return 0;
	set = bpf_map_lookup_elem(&tracked, &index); // struct tracked_set: s comes first
	if (!set)
		return 0;
	for (int i = 0; i < TRACK_WAYS; i++) {
		if (set->key[i] == key) {
			__u64 tag = set->tag[i];

			if ((tag & ~TRACK_ID_MASK) != track_check(key))
				return 0; // torn by concurrent inserts: not followed
			return tag & TRACK_ID_MASK;
		}
	}
	return 0;
}

// Follows the skb at key (not followed: a new packet, or a clone) under id
// from now on; head is its buffer's address as remembered for clones (0:
// none), fp the fingerprint of the bytes recorded at this hit (0: none).
// ids beyond TRACK_ID_BITS are not followed. Helper calls: two array
// lookups, inlined by the verifier.
static __always_inline void track_insert(__u64 key, __u64 id, __u64 now, __u64 head, __u64 fp)
{
	__u32 index = track_set_of(key);
	__u32 *count = track_count(index);
	struct tracked_set *ts;
	struct track_set *set;
	int way = 0, empty = 0;
	__u64 oldest = ~0ULL;

	if (!count || id > TRACK_ID_MASK)
		return;
	ts = bpf_map_lookup_elem(&tracked, &index);
	if (!ts)
		return;
	set = &ts->s;
	// The key's own entry if it has one (a torn one, or a stale one under
	// a clone), else an empty entry, else the oldest.
	for (int i = 0; i < TRACK_WAYS; i++) {
		__u64 k = set->key[i];

		if (k == key) {
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
	// Count first, so that the count is never below the entries it covers.
	if (empty)
		__sync_fetch_and_add(count, 1);
	// The way index is in [0, TRACK_WAYS): the verifier needs it bounded.
	way &= TRACK_WAYS - 1;
	set->tag[way] = id | track_check(key);
	set->when[way] = now;
	set->head[way] = head;
	ts->fp[way] = fp;
	set->key[way] = key;
}

// The fingerprint remembered for the followed skb at key, or NULL if it
// has no entry (evicted, torn): then its bytes are recorded. Helper: one
// array lookup, inlined.
static __always_inline __u64 *fp_of(__u64 key)
{
	__u32 index = track_set_of(key);
	struct tracked_set *ts;

	ts = bpf_map_lookup_elem(&tracked, &index);
	if (!ts)
		return NULL;
	for (int i = 0; i < TRACK_WAYS; i++) {
		if (ts->s.key[i] == key)
			return &ts->fp[i];
	}
	return NULL;
}

// Reports whether fp is the fingerprint remembered for the followed skb at
// key: the bytes of this hit are those last recorded for the packet.
static __always_inline int fp_same(__u64 key, __u64 fp)
{
	__u64 *old = fp_of(key);

	return old && fp && *old == fp;
}

// Remembers fp as the fingerprint of the bytes last recorded for the
// followed skb at key.
static __always_inline void fp_store(__u64 key, __u64 fp)
{
	__u64 *old = fp_of(key);

	if (old)
		*old = fp;
}

// Stops following the skb at key, which is freed: its address may be
// reused by a new one. Helper calls: two array lookups, inlined.
static __always_inline void track_forget(__u64 key)
{
	__u32 index = track_set_of(key);
	__u32 *count = track_count(index);
	struct track_set *set;

	if (!count)
		return;
	set = bpf_map_lookup_elem(&tracked, &index);
	if (!set)
		return;
	for (int i = 0; i < TRACK_WAYS; i++) {
		if (set->key[i] == key) {
			// Another CPU may clear the same entry at the same moment;
			// the count is a hint, and a lost decrement only costs a
			// set lookup for rejected hits of this group.
			set->key[i] = 0;
			__sync_fetch_and_add(count, -1);
			return;
		}
	}
}

// Swaps the buffer remembered for the followed skb at key for head, and
// reports whether it changed (then the caller remembers head for clones).
// Helper: one array lookup, inlined.
static __always_inline int track_buffer(__u64 key, __u64 head)
{
	__u32 index = track_set_of(key);
	struct track_set *set;
	int way = -1;

	set = bpf_map_lookup_elem(&tracked, &index);
	if (!set)
		return 0;
	for (int i = 0; i < TRACK_WAYS; i++) {
		if (set->key[i] == key) {
			way = i;
			break;
		}
	}
	if (way < 0)
		return 0;
	way &= TRACK_WAYS - 1;
	if (set->head[way] == head)
		return 0;
	set->head[way] = head;
	return 1;
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


#endif // PATHCAP_TRACK_H
