package capture

import "errors"

var (
	// ErrPermission means the kernel refused to create BPF objects: run as
	// root, or with CAP_BPF and CAP_PERFMON.
	ErrPermission = errors.New("permission denied: recording needs root or CAP_BPF and CAP_PERFMON")

	// ErrNoBTF means the running kernel does not expose its BTF
	// (/sys/kernel/btf/vmlinux), which hook discovery and tp_btf need.
	ErrNoBTF = errors.New("kernel BTF not available")

	// ErrNoHooks means no hook could be selected: the kernel has no
	// tracepoint that takes a struct sk_buff, or none of the requested
	// names is one.
	ErrNoHooks = errors.New("no usable hook")

	// ErrUnknownHook means a requested hook name is not among the hooks
	// that the kernel offers.
	ErrUnknownHook = errors.New("unknown hook")

	// ErrBackend means the requested backend is unknown or not available
	// on this kernel.
	ErrBackend = errors.New("backend not available")

	// ErrFilter means a filter is unusable: an expression libpcap cannot
	// compile or that needs what kernel hooks lack (see [FilterError]), or
	// metadata conditions that can never match.
	ErrFilter = errors.New("bad filter")

	// ErrProbeRead means recording would need bpf_probe_read_kernel where
	// it is refused or unsafe (see [DetectAuditHazard]).
	ErrProbeRead = errors.New("bpf_probe_read_kernel not usable")
)
