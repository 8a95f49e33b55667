//go:build ignore

// skbshared.c: on_skb_shared, the raw tracepoint program that one argument
// layout's tracepoints share on Linux 6.10+ (see skb.c and
// capture/sharedtp.go). User space loads it once per layout, with that
// layout's knobs as in skb.c, and attaches it to each tracepoint of the
// layout with the hook's id as the attach cookie. Its maps are skb.c's:
// user space creates them once and hands the same ones to both objects.

#define BTF_READS 1
#include "common.h"
#define HIT_SECTION "raw_tp"
#define HIT_ENTRY on_skb_shared
#define HIT_HOOK(ctx) ((__u32)bpf_get_attach_cookie(ctx))
#include "hit.h"
