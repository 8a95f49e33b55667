//go:build ignore

// skb.c: the BTF-typed program that records a struct sk_buff seen at a
// kernel tracepoint (tp_btf) or at a kernel function's entry or exit
// (fentry, fexit) into the shared ring buffer.
//
// All three are BPF_PROG_TYPE_TRACING programs whose context is the array
// of the hook's arguments, so they share one body: user space loads this
// object once per hook, setting the attach type and target and the
// `volatile const` knobs (where the skb, device, drop reason, location and
// return value are in the argument list, the hook's id, the snap length).
// The verifier sees those values as constants, so branches for other
// argument positions are dead code and never checked against this hook's
// prototype.
//
// On Linux 6.10+ (attach cookies for raw tracepoints) user space loads the
// tracepoint variant once per argument layout instead, as a raw tracepoint
// program attached to every tracepoint of that layout: the arguments are
// then plain numbers, which walk_skb and walk_dev turn into untrusted typed
// pointers (bpf_rdonly_cast), and the hook's id comes from each link's
// cookie (on_skb_shared, in skbshared.c). Fewer programs to verify is most of what start-up
// saves; the loads per hit are the same.

#define BTF_READS 1
#include "common.h"
#define HIT_SECTION "tp_btf/placeholder"
#define HIT_ENTRY on_skb
#define HIT_HOOK(ctx) hook_id
#include "hit.h"
