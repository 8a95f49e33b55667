// netfilter.h: naming the nftables base chain of an nft_do_chain hit
// (see skb.c, which hooks its entry and exit). Included by common.h only;
// the kprobe object has the maps too (shared, never used there).
#ifndef PATHCAP_NETFILTER_H
#define PATHCAP_NETFILTER_H

// Names of nftables base chains by the chain's address, for user space
// (capture/netfilter.go): the table's family and name and the chain's
// name, read once per chain rather than at every hit. An entry is renewed
// when the chain at that address has another handle or table (a chain
// deleted and another created in its memory). Names longer than
// NFT_NAME_BYTES - 1 bytes are cut.
#define NFT_NAME_BYTES 64

struct nft_names {
	__u64 handle; // the chain's handle
	__u64 table;  // the address of its table
	__u32 family; // the table's family (NFPROTO_*)
	__u32 _pad;
	char table_name[NFT_NAME_BYTES];
	char chain_name[NFT_NAME_BYTES];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct nft_names);
} nft_chains SEC(".maps");

// Where a chain's names are put together before they go into nft_chains
// (too large for the stack next to the rest of a hit).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nft_names);
} nft_scratch SEC(".maps");

// Makes sure nft_chains holds the names of the chain at address chain and
// returns the low 32 bits of its handle, which the event carries so that
// user space can tell a renewed entry from the one it knew.
static __always_inline __u32 nft_chain_names(__u64 chain)
{
	struct nft_chain *c = (struct nft_chain *)chain;
	struct nft_table *table = NULL;
	struct nft_names *n;
	__u64 handle = 0;
	__u32 zero = 0;
	char *name = NULL;

	// Helpers: two probe reads per hit (priv is an untyped pointer, so
	// the chain cannot be read with plain loads); only for followed
	// packets, and never in audit-safe mode (the caller checks).
	bpf_core_read(&handle, sizeof(handle), &c->handle);
	bpf_core_read(&table, sizeof(table), &c->table);
	// Helper: the names known for this chain.
	n = bpf_map_lookup_elem(&nft_chains, &chain);
	if (n && n->handle == handle && n->table == (__u64)table)
		return (__u32)handle;
	// A chain not seen yet: read its names once. Helper: per-CPU array
	// lookup, inlined by the verifier.
	n = bpf_map_lookup_elem(&nft_scratch, &zero);
	if (!n || !table)
		return (__u32)handle;
	n->handle = handle;
	n->table = (__u64)table;
	n->family = 0;
	n->table_name[0] = 0;
	n->chain_name[0] = 0;
	// Helpers: five probe reads, once per chain: the two name pointers,
	// the two strings and the table's family.
	if (bpf_core_read(&name, sizeof(name), &c->name) == 0 && name)
		bpf_probe_read_kernel_str(n->chain_name, sizeof(n->chain_name), name);
	name = NULL;
	if (bpf_core_read(&name, sizeof(name), &table->name) == 0 && name)
		bpf_probe_read_kernel_str(n->table_name, sizeof(n->table_name), name);
	n->family = BPF_CORE_READ_BITFIELD_PROBED(table, family);
	// Helper: publish the names (LRU hash update, once per chain).
	bpf_map_update_elem(&nft_chains, &chain, n, BPF_ANY);
	return (__u32)handle;
}

#endif // PATHCAP_NETFILTER_H
