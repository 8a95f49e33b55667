// tc_drop_flow.c: a tc program (cls_bpf, direct-action) for the tests of
// record --trace-tc (TestInVMTraceTC). It returns TC_ACT_SHOT for IPv4 UDP
// datagrams to port drop_port and TC_ACT_OK for everything else, and
// counts both in its own map: an oracle the recorder does not write.
//
// TestVMFunctionBackends compiles it on the host with clang -g (fentry and
// fexit find a BPF program through its BTF, which -g gives) and copies the
// object into the VMs.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// counts[0]: datagrams shot; counts[1]: packets passed.
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

SEC("tc")
int drop_flow(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);

	if ((void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_UDP || udp->dest != bpf_htons(drop_port)) {
		count(1);
		return TC_ACT_OK;
	}
	count(0);
	return TC_ACT_SHOT;
}

char __license[] SEC("license") = "GPL";
