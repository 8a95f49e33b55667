package kmeta_test

import (
	"testing"

	"github.com/pathcap/pathcap/kmeta"
)

func TestVerdictName(t *testing.T) {
	for _, c := range []struct {
		typ  string
		ret  int64
		want string
	}{
		{kmeta.ProgTC, kmeta.TCActShot, "TC_ACT_SHOT"},
		{kmeta.ProgTC, kmeta.TCActUnspec, "TC_ACT_UNSPEC"},
		{kmeta.ProgTC, kmeta.TCActOK, "TC_ACT_OK"},
		{kmeta.ProgTC, kmeta.TCActRedirect, "TC_ACT_REDIRECT"},
		{kmeta.ProgTC, 99, "99"},
		{kmeta.ProgXDP, kmeta.XDPDrop, "XDP_DROP"},
		{kmeta.ProgXDP, kmeta.XDPPass, "XDP_PASS"},
		{kmeta.ProgXDP, -1, "-1"},
		{"", 2, "2"},
	} {
		if got := kmeta.VerdictName(c.typ, c.ret); got != c.want {
			t.Errorf("VerdictName(%q, %d) = %q, want %q", c.typ, c.ret, got, c.want)
		}
	}
}

func TestParseProgramKeys(t *testing.T) {
	var e kmeta.Event
	c := "pathcap/1 hook=fexit:bpf_prog_3b185187f1855c4c_drop_flow netns=1 ifindex=2 skb=0x1 len=98 proto=0x0800 prog_type=tc prog=drop_flow prog_id=42 prog_tag=3b185187f1855c4c ret=2 cpu=0 pid=0 tid=0 comm=ping"
	if err := kmeta.NewParser().Parse([]byte(c), &e); err != nil {
		t.Fatal(err)
	}
	if e.ProgType != kmeta.ProgTC || e.Prog != "drop_flow" || e.ProgID != 42 || e.ProgTag != "3b185187f1855c4c" || e.RetVal != 2 || !e.HasRetVal {
		t.Errorf("got %+v", e)
	}
	if err := kmeta.NewParser().Parse([]byte("pathcap/1 hook=fexit:x prog_id=4294967296"), &e); err == nil {
		t.Error("prog_id past 32 bits was accepted")
	}
}
