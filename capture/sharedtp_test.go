package capture

import (
	"slices"
	"testing"
)

// TestPlanLoads: with sharing, the shareable tracepoints of one argument
// layout get one program and a layout of one tracepoint, a function hook or
// a netfilter hook a program of its own; without sharing every hook gets
// its own; units keep the order of their first hook.
func TestPlanLoads(t *testing.T) {
	tp := func(name string, skb, dev int, frees bool) *Hook {
		return &Hook{Name: name, Kind: HookTracepoint, SKBArg: skb, DevArg: dev, ReasonArg: -1, LocationArg: -1, Frees: frees}
	}
	hooks := []*Hook{
		tp("net_dev_queue", 0, -1, false),
		tp("net_dev_start_xmit", 0, 1, false),
		tp("netif_receive_skb", 0, -1, false),
		{Name: "ip_rcv", Kind: HookFentry, SKBArg: 0, DevArg: -1, ReasonArg: -1, LocationArg: -1},
		tp("netif_rx", 0, -1, false),
		{Name: "nf_hook_slow", Kind: HookTracepoint, SKBArg: 0, DevArg: -1, ReasonArg: -1, LocationArg: -1, NFState: true},
		tp("consume_skb", 0, -1, true),
		tp("kfree_skb", 0, -1, true), // untrack-only below: another layout
	}
	knobs := make([]hookKnobs, len(hooks))
	knobs[len(knobs)-1].untrackOnly = true

	names := func(units []loadUnit) [][]string {
		var out [][]string
		for _, u := range units {
			var n []string
			for _, h := range u.hooks {
				n = append(n, h.Name)
			}
			out = append(out, n)
			if u.shared != (len(u.hooks) > 1) || u.knobs.cookieHook != u.shared {
				t.Errorf("unit %v: shared %v, cookieHook %v", n, u.shared, u.knobs.cookieHook)
			}
		}
		return out
	}
	got := names(planLoads(hooks, knobs, true))
	want := [][]string{
		{"net_dev_queue", "netif_receive_skb", "netif_rx"},
		{"net_dev_start_xmit"},
		{"ip_rcv"},
		{"nf_hook_slow"},
		{"consume_skb"},
		{"kfree_skb"},
	}
	if !slices.EqualFunc(got, want, slices.Equal[[]string]) {
		t.Errorf("shared: %v, want %v", got, want)
	}
	got = names(planLoads(hooks, knobs, false))
	if len(got) != len(hooks) {
		t.Errorf("not shared: %v, want one unit per hook", got)
	}
	for i, u := range got {
		if len(u) != 1 || u[0] != hooks[i].Name {
			t.Errorf("not shared: unit %d is %v, want [%s]", i, u, hooks[i].Name)
		}
	}
}
