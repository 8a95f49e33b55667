package kmeta

import "strings"

// Hook kinds: the KIND of the hook key ("hook=KIND:NAME").
const (
	// KindTracepoint is a kernel tracepoint.
	KindTracepoint = "tp"
	// KindKprobe is a kernel function's entry, hooked by a kprobe or
	// kprobe-multi.
	KindKprobe = "kprobe"
	// KindKretprobe is a kernel function's return, hooked by a kretprobe
	// (clone functions only).
	KindKretprobe = "kretprobe"
	// KindFentry is a kernel function's entry, hooked by fentry.
	KindFentry = "fentry"
	// KindFexit is a kernel function's exit, hooked by fexit.
	KindFexit = "fexit"
	// KindCapture is not written in recordings: analyze shows it as the
	// kind and hook of events without pathcap metadata (packets of other
	// tools' captures).
	KindCapture = "capture"
)

// IsFunctionKind reports whether kind hooks a kernel function (kprobe,
// kretprobe, fentry, fexit) rather than a tracepoint. The empty kind (no
// metadata) is not one.
func IsFunctionKind(kind string) bool {
	return kind != "" && kind != KindTracepoint && kind != KindCapture
}

// HookLabel returns "KIND:NAME", the value of the hook key.
func HookLabel(kind, name string) string { return kind + ":" + name }

// AppendHookLabel appends HookLabel(kind, name).
func AppendHookLabel(dst []byte, kind, name string) []byte {
	dst = append(dst, kind...)
	dst = append(dst, ':')
	return append(dst, name...)
}

// HookClass says what a hook means for a packet's journey, by the hook's
// name (whatever its kind: a tracepoint and a kernel function of the same
// name are in the same class). docs/FORMAT.md lists the classes: they
// decide the direction flag a recording writes (epb_flags) and how analyze
// classifies a packet's outcome.
type HookClass uint8

// Hook classes.
const (
	// ClassOther: the hook implies nothing about direction or lifetime.
	ClassOther HookClass = iota
	// ClassReceive: a device received the packet (netif_receive_skb*,
	// netif_rx*, napi_gro_*).
	ClassReceive
	// ClassQueue: the packet is on its way to a device's transmit queue
	// (net_dev_queue, qdisc_*).
	ClassQueue
	// ClassTransmit: a device transmits the packet (net_dev_start_xmit,
	// net_dev_xmit).
	ClassTransmit
	// ClassFree: the skb is freed, with a drop reason (kfree_skb) or
	// without (consume_skb).
	ClassFree
	// ClassMemoryFree: the skb's memory is released (kfree_skbmem), on
	// every path that frees it.
	ClassMemoryFree
)

var classNames = [...]string{"other", "receive", "queue", "transmit", "free", "memory-free"}

// String returns the class's name: "other", "receive", "queue",
// "transmit", "free" or "memory-free".
func (c HookClass) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "other"
}

// Inbound reports classes on the receive path (the inbound epb_flags
// direction).
func (c HookClass) Inbound() bool { return c == ClassReceive }

// Outbound reports classes on the transmit path (the outbound epb_flags
// direction).
func (c HookClass) Outbound() bool { return c == ClassQueue || c == ClassTransmit }

// EndsTracking reports classes after which the tracking id no longer
// identifies the packet: the skb was freed.
func (c HookClass) EndsTracking() bool { return c == ClassFree || c == ClassMemoryFree }

// Hook names that start or are a class.
const (
	// HookDrop is the tracepoint of freeing an skb with a drop reason.
	HookDrop = "kfree_skb"
	// HookConsume is the tracepoint of freeing an skb normally.
	HookConsume = "consume_skb"
	// HookMemoryFree is the function that releases an skb's memory.
	HookMemoryFree = "kfree_skbmem"
)

// ClassOf returns the class of the hook named name.
func ClassOf(name string) HookClass {
	switch name {
	case HookDrop, HookConsume:
		return ClassFree
	case HookMemoryFree:
		return ClassMemoryFree
	case "net_dev_start_xmit", "net_dev_xmit":
		return ClassTransmit
	case "net_dev_queue":
		return ClassQueue
	}
	switch {
	case strings.HasPrefix(name, "netif_receive_skb"), strings.HasPrefix(name, "netif_rx"),
		strings.HasPrefix(name, "napi_gro_"):
		return ClassReceive
	case strings.HasPrefix(name, "qdisc_"):
		return ClassQueue
	}
	return ClassOther
}
