// common.h: what every pathcap BPF program shares, in headers by concern:
// event.h (the ring buffer record), knobs.h (load-time settings), track.h
// (tracking), locate.h (where an skb's bytes and device are), filter.h (the
// packet filter seam) and record.h (recording one hit).
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

// The parts, in dependency order.
#include "event.h"  // the record, the ring buffer, per-CPU state
#include "knobs.h"  // load-time settings
#include "track.h"  // packets followed, their buffers, paired calls
#include "locate.h" // where an skb's bytes and device are
#include "filter.h" // the packet filter
#include "netfilter.h" // names of nftables chains
#include "record.h" // recording one hit

#endif // PATHCAP_COMMON_H
