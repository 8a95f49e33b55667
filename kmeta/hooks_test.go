package kmeta_test

import (
	"testing"

	"github.com/pathcap/pathcap/kmeta"
)

func TestClassOf(t *testing.T) {
	for hook, want := range map[string]kmeta.HookClass{
		// Receive-path tracepoints, also of older kernels, and
		// functions of the same names.
		"netif_receive_skb": kmeta.ClassReceive, "netif_receive_skb_entry": kmeta.ClassReceive,
		"netif_receive_skb_list_entry": kmeta.ClassReceive, "netif_rx": kmeta.ClassReceive,
		"netif_rx_entry": kmeta.ClassReceive, "netif_rx_ni_entry": kmeta.ClassReceive,
		"napi_gro_receive_entry": kmeta.ClassReceive, "napi_gro_frags_entry": kmeta.ClassReceive,
		"net_dev_queue": kmeta.ClassQueue, "qdisc_enqueue": kmeta.ClassQueue, "qdisc_dequeue": kmeta.ClassQueue,
		"net_dev_start_xmit": kmeta.ClassTransmit, "net_dev_xmit": kmeta.ClassTransmit,
		"kfree_skb": kmeta.ClassFree, "consume_skb": kmeta.ClassFree, "kfree_skbmem": kmeta.ClassMemoryFree,
		"ip_rcv": kmeta.ClassOther, "skb_copy_datagram_iovec": kmeta.ClassOther, "": kmeta.ClassOther,
		// Not prefixes of a class: a name must start with one.
		"__netif_receive_skb": kmeta.ClassOther, "dev_queue_xmit": kmeta.ClassOther,
	} {
		if got := kmeta.ClassOf(hook); got != want {
			t.Errorf("ClassOf(%q) = %v, want %v", hook, got, want)
		}
	}
}

func TestClassProperties(t *testing.T) {
	for c := kmeta.ClassOther; c <= kmeta.ClassMemoryFree; c++ {
		in, out, ends := c.Inbound(), c.Outbound(), c.EndsTracking()
		if in && out {
			t.Errorf("%v is both inbound and outbound", c)
		}
		if ends && (in || out) {
			t.Errorf("%v ends tracking and has a direction", c)
		}
		if want := c == kmeta.ClassFree || c == kmeta.ClassMemoryFree; ends != want {
			t.Errorf("%v: EndsTracking %v", c, ends)
		}
	}
}

func TestIsFunctionKind(t *testing.T) {
	for kind, want := range map[string]bool{
		kmeta.KindTracepoint: false, kmeta.KindCapture: false, "": false,
		kmeta.KindKprobe: true, kmeta.KindKretprobe: true, kmeta.KindFentry: true, kmeta.KindFexit: true,
	} {
		if got := kmeta.IsFunctionKind(kind); got != want {
			t.Errorf("IsFunctionKind(%q) = %v", kind, got)
		}
	}
	if got := string(kmeta.AppendHookLabel([]byte("x "), "tp", "kfree_skb")); got != "x tp:kfree_skb" {
		t.Errorf("AppendHookLabel: %q", got)
	}
	if got := kmeta.HookLabel("fexit", "skb_clone"); got != "fexit:skb_clone" {
		t.Errorf("HookLabel: %q", got)
	}
}
