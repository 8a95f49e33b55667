// xdp_drop_flow.c: an XDP program for the tests of record --trace-xdp
// (TestInVMTraceXDP). It returns XDP_DROP for IPv4 UDP datagrams to port
// drop_port and XDP_PASS for everything else, and counts both in its own
// map: an oracle the recorder does not write.
//
// TestVMFunctionBackends compiles it on the host with clang -g (fentry and
// fexit find a BPF program through its BTF) and copies it into the VMs.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// counts[0]: datagrams dropped; counts[1]: frames passed.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

// The UDP port whose datagrams are dropped; set by the test when it loads.
volatile const __u16 drop_port = 9999;

static __always_inline void count(__u32 k)
{
	__u64 *n = bpf_map_lookup_elem(&counts, &k);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("xdp")
int xdp_drop_flow(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);

	if ((void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_UDP || udp->dest != bpf_htons(drop_port)) {
		count(1);
		return XDP_PASS;
	}
	count(0);
	return XDP_DROP;
}

char __license[] SEC("license") = "GPL";
