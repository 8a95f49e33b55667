// Package capture records the sk_buffs that kernel hooks see.
//
// A [Recorder] attaches one BPF program per hook, follows each packet from
// hook to hook under one packet id, and delivers every hit as an [Event]
// carrying the packet bytes and the kernel's metadata (device, network
// namespace, mark, drop reason, process).
//
// Hooks are discovered at run time from the kernel's BTF: every tracepoint
// whose arguments include a struct sk_buff pointer can be recorded
// ([ListHooks]). Drop reason names also come from the kernel's BTF, so
// reasons added by newer kernels are named without a table in this package.
//
// A [Filter] (a tcpdump expression compiled by [CompileFilter]) and a
// [Match] (namespace, device, mark, process) select the packets recorded;
// both run in the kernel, on packets not yet followed.
//
// # Errors
//
// [NewRecorder] and [ListHooks] return errors that answer [errors.Is] for
// [ErrPermission] (the process lacks root or CAP_BPF and CAP_PERFMON),
// [ErrNoBTF] (the kernel exposes no BTF) and [ErrNoHooks] (no usable hook);
// [CompileFilter] and [NewRecorder] return errors that answer [errors.Is]
// for [ErrFilter] for a filter that cannot be used.
package capture
