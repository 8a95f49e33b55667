// Package capture records the sk_buffs that kernel hooks see.
//
// A [Recorder] attaches BPF programs to kernel hooks, follows each packet
// from hook to hook under one packet id (and its clones under ids of their
// own, linked by [Event.Parent]), and delivers every hit as an [Event]
// carrying the packet bytes, the kernel's metadata (device, network
// namespace, mark, drop reason, process, a function's return value) and,
// on request, the kernel stack.
//
// Hooks are discovered at run time from the kernel's BTF: every tracepoint
// whose arguments include a struct sk_buff pointer ([ListHooks]), and every
// kernel function that takes one among its first five arguments
// ([ListFunctions]). Tracepoints are always attached; a function backend
// (kprobe-multi, kprobe or fentry/fexit, see [Config.Backend]) adds the
// functions. Drop reason names also come from the kernel's BTF, so reasons
// added by newer kernels are named without a table in this package.
//
// A [Filter] (a tcpdump expression compiled by [CompileFilter]) and a
// [Match] (namespace, device, mark, process) select the packets recorded;
// both run in the kernel, on packets not yet followed.
//
// # Errors
//
// [NewRecorder] and [ListHooks] return errors that answer [errors.Is] for
// [ErrPermission] (the process lacks root or CAP_BPF and CAP_PERFMON),
// [ErrNoBTF] (the kernel exposes no BTF), [ErrNoHooks] (no usable hook) and
// [ErrBackend] (a backend asked for by name that the kernel does not allow);
// [CompileFilter] and [NewRecorder] return errors that answer [errors.Is]
// for [ErrFilter] for a filter that cannot be used.
package capture
