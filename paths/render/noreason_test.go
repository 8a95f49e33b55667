package render

import (
	"testing"

	"github.com/pathcap/pathcap/paths"
)

// TestOutcomeTextWithoutReason: kfree_skb before Linux 5.17 gives no
// reason; the outcome says so instead of an empty reason.
func TestOutcomeTextWithoutReason(t *testing.T) {
	for _, c := range []struct {
		o    paths.Outcome
		want string
	}{
		{paths.Outcome{Kind: paths.Dropped, Location: "__udp4_lib_rcv+0x4bc"}, "dropped (no reason on this kernel) at __udp4_lib_rcv+0x4bc"},
		{paths.Outcome{Kind: paths.Dropped, Reason: "NO_SOCKET", Location: "__udp4_lib_rcv+0x4bc"}, "dropped: NO_SOCKET at __udp4_lib_rcv+0x4bc"},
	} {
		if got := OutcomeText(&c.o); got != c.want {
			t.Errorf("OutcomeText(%+v) = %q, want %q", c.o, got, c.want)
		}
	}
}
