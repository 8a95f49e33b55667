package capture

import (
	"errors"
	"slices"
	"testing"
)

func TestListHooks(t *testing.T) {
	requireBTF(t)
	hooks, err := ListHooks()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Hook{}
	for i, h := range hooks {
		if h.ID != i {
			t.Errorf("hook %s: ID %d, want %d", h.Name, h.ID, i)
		}
		if h.Kind != HookTracepoint {
			t.Errorf("hook %s: kind %v", h.Name, h.Kind)
		}
		byName[h.Name] = h
	}
	t.Logf("%d hooks", len(hooks))
	// Every kernel with skb tracepoints and BTF has these.
	for _, want := range []struct {
		name                       string
		skb, dev, reason, location int
		frees                      bool
	}{
		{"net_dev_queue", 0, -1, -1, -1, false},
		{"netif_receive_skb", 0, -1, -1, -1, false},
		{"net_dev_start_xmit", 0, 1, -1, -1, false},
		{"net_dev_xmit", 0, 2, -1, -1, false},
		{"kfree_skb", 0, -1, 2, 1, true},
	} {
		h, ok := byName[want.name]
		if !ok {
			t.Errorf("hook %s not found", want.name)
			continue
		}
		got := [4]int{h.SKBArg, h.DevArg, h.ReasonArg, h.LocationArg}
		if exp := [4]int{want.skb, want.dev, want.reason, want.location}; got != exp {
			t.Errorf("hook %s: skb, dev, reason, location args %v, want %v", want.name, got, exp)
		}
		if h.Frees != want.frees {
			t.Errorf("hook %s: Frees %v, want %v", want.name, h.Frees, want.frees)
		}
	}
	if c, ok := byName["consume_skb"]; ok && !c.Frees {
		t.Error("consume_skb: Frees false")
	}
	if q, ok := byName["qdisc_dequeue"]; ok && q.SKBArg != 3 {
		t.Errorf("qdisc_dequeue: skb arg %d, want 3", q.SKBArg)
	}
}

func TestSelectHooks(t *testing.T) {
	all := []Hook{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	got, err := selectHooks(all, []string{"c", "a", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if names := hookNames(got); !slices.Equal(names, []string{"c", "a"}) {
		t.Errorf("selected %v, want [c a]", names)
	}
	if _, err := selectHooks(all, []string{"a", "nope"}); !errors.Is(err, ErrUnknownHook) {
		t.Errorf("unknown name: err %v, want ErrUnknownHook", err)
	}
	if _, err := selectHooks(all, []string{}); !errors.Is(err, ErrNoHooks) {
		t.Errorf("empty selection: err %v, want ErrNoHooks", err)
	}
	if got, _ := selectHooks(all, nil); len(got) != 3 {
		t.Errorf("nil selection: %d hooks, want 3", len(got))
	}
}

func hookNames(hooks []Hook) []string {
	var names []string
	for _, h := range hooks {
		names = append(names, h.Name)
	}
	return names
}

func TestDropReasons(t *testing.T) {
	requireBTF(t)
	d, err := LoadDropReasons()
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() < 10 {
		t.Errorf("%d drop reasons, want more", d.Len())
	}
	for code, want := range map[uint32]string{2: "NOT_SPECIFIED", 3: "NO_SOCKET"} {
		if got := d.Name(code); got != want {
			t.Errorf("Name(%d) = %q, want %q", code, got, want)
		}
	}
	if got := d.Name(1 << 30); got != "REASON_1073741824" {
		t.Errorf("unnamed reason: %q", got)
	}
	var none *DropReasons
	if got := none.Name(3); got != "REASON_3" {
		t.Errorf("nil table: %q", got)
	}
}
