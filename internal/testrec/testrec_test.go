package testrec_test

import (
	"testing"

	"github.com/pathcap/pathcap/internal/testrec"
)

func TestReadCrafted(t *testing.T) {
	f := testrec.Read(t, testrec.Crafted(t, "stacks.pcapng"))
	if len(f.Packets) == 0 {
		t.Fatal("no packets")
	}
	for i, p := range f.Packets {
		if !p.HasMeta || p.Meta.Hook == "" || len(p.Comments) == 0 || p.Comments[0] != string(p.Options.Comments[0]) || p.Interface.Name == "" {
			t.Errorf("packet %d: %+v", i+1, p)
		}
	}
	if c := f.Comments(); len(c) != len(f.Packets) {
		t.Errorf("%d comment lists for %d packets", len(c), len(f.Packets))
	}
}
