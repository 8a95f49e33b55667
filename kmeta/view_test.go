package kmeta_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/kmeta"
)

// TestAppendPair checks that view pairs are quoted exactly when the
// metadata comment quotes a value: both go through one function.
func TestAppendPair(t *testing.T) {
	for _, v := range []string{"veth0", "", "a b", `"x`, `back\slash`, "tab\t", "caf\u00e9", "\x7f", "swapper/1", "x\"y"} {
		pair := string(kmeta.AppendPair([]byte(kmeta.HopPrefix), "comm", v))
		comment := string(kmeta.AppendComment(nil, &kmeta.Event{Kind: "tp", Hook: "h", Comm: v}))
		_, inComment, _ := strings.Cut(comment, " comm=")
		inComment, _, _ = strings.Cut(inComment, " ")
		_, inPair, _ := strings.Cut(pair, " comm=")
		if !strings.HasPrefix(inPair, inComment) {
			t.Errorf("%q: pair value %s, comment value %s", v, inPair, inComment)
		}
		if strings.HasPrefix(inPair, `"`) {
			if u, err := strconv.Unquote(inPair); err != nil || u != v {
				t.Errorf("%q: quoted as %s (%v)", v, inPair, err)
			}
		} else if inPair != v {
			t.Errorf("%q: bare as %s", v, inPair)
		}
	}
	if got := string(kmeta.AppendIntPair(kmeta.AppendUintPair(nil, "n", 3), "stack_err", -14)); got != " n=3 stack_err=-14" {
		t.Errorf("number pairs: %q", got)
	}
}
