// knobs.h: the load-time settings user space sets before loading (volatile
// const: the verifier sees them as constants and removes the branches they
// turn off). Included by common.h only.
#ifndef PATHCAP_KNOBS_H
#define PATHCAP_KNOBS_H

// Knobs set by user space before loading. The verifier sees them as
// constants, so branches that are off are dead code and never checked.
volatile const __u32 hook_id = 0;       // BTF-typed programs: the hook's id
volatile const __s32 skb_arg = 0;       // BTF-typed programs: argument index of the skb
volatile const __s32 dev_arg = -1;      // index of a struct net_device *, or -1
volatile const __s32 reason_arg = -1;   // index of the drop reason, or -1
volatile const __s32 location_arg = -1; // index of the free location, or -1
volatile const __s32 ret_arg = -1;      // fexit: index of the return value, or -1
volatile const __u32 is_free_hook = 0;  // 1 where the skb is freed (forget its id)
volatile const __u32 no_start = 0;      // 1: a hook that never starts following a packet
volatile const __u32 untrack_only = 0;  // 1: a free hook attached only to end tracking
volatile const __u32 exit_hook = 0;     // 1: function exit, pairs with its entry's call
volatile const __u32 entry_hook = 0;    // exit_hook: the hook id of the paired entry
volatile const __u32 pair_calls = 0;    // 1: an entry whose exit is hooked too: remember calls
volatile const __s32 nf_state_arg = -1; // index of a struct nf_hook_state * (nf_hook_slow), or -1
volatile const __u32 nft_chain = 0;     // 1: nft_do_chain's entry or exit: the skb is pkt->skb (skb.c)
volatile const __u32 clone_hook = 0;    // 1: exit of skb_clone & co: the skb argument is
                                        // the original, the return value the clone
volatile const __u32 snaplen = 256;     // bytes of packet data reserved per record
volatile const __u32 stack_bytes = 0;   // bytes of kernel stack reserved per record, 0: none
volatile const __u32 nr_cpus = 1;       // possible CPUs, spreads ids over CPUs
volatile const __u64 wakeup_bytes = 0;  // wake the reader at multiples of this fill level

// Kernel compatibility and host safety knobs (see docs/BACKENDS.md).
volatile const __u32 task_btf = 1;      // 1: bpf_get_current_task_btf exists (Linux 5.11+)
volatile const __u32 rdonly_cast = 0;   // 1: the kfunc bpf_rdonly_cast exists (Linux 6.2+): skb.c
                                        // walks the skb through an untrusted pointer
volatile const __u32 copy_bytes = 1;    // 0: record no packet bytes, so that a recorded hit
                                        // makes no bpf_probe_read_kernel call (audit-safe mode)
volatile const __u64 budget_per_cpu = 0; // most events recorded per second on one CPU, 0: no limit
volatile const __u32 bytes_changed = 0; // 1: record a followed packet's bytes only where their
                                        // fingerprint changed (record --bytes changed)

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

#endif // PATHCAP_KNOBS_H
