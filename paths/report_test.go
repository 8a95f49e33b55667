package paths

import (
	"regexp"
	"testing"
)

func TestSelector(t *testing.T) {
	f := tempRecording(t, "alpha", scenario())
	ids := func(sel *Selector) []uint64 {
		var out []uint64
		ps := analyze(t, Options{}, sel, f)
		sortPackets(ps)
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	start := T0.UnixNano()
	isDNS := func(b []byte) bool { fl := ParseFlow(b); return fl.HasPorts && (fl.DstPort == 53 || fl.SrcPort == 53) }
	for _, c := range []struct {
		name string
		sel  *Selector
		want []uint64
	}{
		{"nil", nil, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 14}},
		{"ids", &Selector{IDs: map[uint64]bool{3: true, 9: true, 77: true}}, []uint64{3, 9}},
		{"dropped", &Selector{Outcomes: map[OutcomeKind]bool{Dropped: true}}, []uint64{5, 13}},
		{"unknown or consumed", &Selector{Outcomes: map[OutcomeKind]bool{Unknown: true, Consumed: true}}, []uint64{6, 7, 14, 14}},
		{"reason", &Selector{Reasons: map[string]bool{"NO_SOCKET": true}}, []uint64{5}},
		{"hook name", &Selector{Hook: regexp.MustCompile("kfree")}, []uint64{5, 13}},
		{"hook label", &Selector{Hook: regexp.MustCompile("^tp:skb_copy")}, []uint64{1, 9, 12}},
		{"since", &Selector{Since: start + int64(ms(12))}, []uint64{12, 13, 14, 14}},
		{"until", &Selector{Until: start + int64(ms(3))}, []uint64{1, 2}},
		{"since and until", &Selector{Since: start + int64(ms(5)), Until: start + int64(ms(7))}, []uint64{5, 6}},
		{"filter", &Selector{Filter: isDNS}, []uint64{1}},
		{"all at once", &Selector{Outcomes: map[OutcomeKind]bool{Dropped: true}, Hook: regexp.MustCompile("netif_rx"), Until: start + int64(ms(10))}, []uint64{5}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ids(c.sel); !equalIDs(got, c.want) {
				t.Errorf("ids %v, want %v", got, c.want)
			}
		})
	}
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
