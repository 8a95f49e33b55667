package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/internal/testenv"
)

// The recordings with kernel stacks of testdata/crafted (paths/stack_helpers_test.go).
var (
	stacksFile      = filepath.Join("..", "..", "testdata", "crafted", "stacks.pcapng")
	stacksPartFiles = []string{
		filepath.Join("..", "..", "testdata", "crafted", "stacks-part2.pcapng"),
		filepath.Join("..", "..", "testdata", "crafted", "stacks-part1.pcapng"),
	}
	// The drop's derived functions and the start of its stack.
	stacksDerived = []string{"ip_rcv", "ip_local_deliver", "ip_local_deliver_finish", "ip_protocol_deliver_rcu", "__udp4_lib_rcv", "kfree_skb_reason"}
	stacksDrop    = []string{"bpf_prog_6deef7357e7b4530_on_tp+0x4f[bpf]", "bpf_trace_run2+0x52", "kfree_skb_reason+0x9c", "__udp4_lib_rcv+0x4bc"}
)

func TestStacks(t *testing.T) {
	bin := testenv.BuildCommand(t, "analyze")

	t.Run("Report", func(t *testing.T) {
		r := run(t, bin, "", "report", "--stacks", stacksFile)
		r.expect(t, 0)
		derived := "             derived: " + strings.Join(stacksDerived, " > ") + "\n"
		chain := "             stack 5:\n               " + strings.Join(stacksDrop, "\n               ") + "\n"
		if strings.Count(r.stdout, derived+chain) != 2 || !strings.Contains(r.stdout, "             stack lost (error -14)\n") {
			t.Errorf("report --stacks lacks the drops' derived functions, stacks or lost stack:\n%s", r.stdout)
		}
		// Without --stacks: the derived functions only.
		r = run(t, bin, "", stacksFile)
		r.expect(t, 0)
		if strings.Count(r.stdout, derived) != 2 || strings.Contains(r.stdout, "stack 5:") || strings.Contains(r.stdout, "stack lost") {
			t.Errorf("report without --stacks:\n%s", r.stdout)
		}
	})

	t.Run("PathsJSON", func(t *testing.T) {
		r := run(t, bin, "", "paths", "--json", stacksFile)
		r.expect(t, 0)
		ps := decodePaths(t, r.stdout)
		if len(ps) != 3 {
			t.Fatalf("%d packets", len(ps))
		}
		for _, p := range ps[:2] {
			h := p.Hops[4]
			if h.Hook != "kfree_skb" || h.StackID != 5 || !slices.Equal(h.Stack[:4], stacksDrop) || len(h.Stack) != 25 || !slices.Equal(h.Derived, stacksDerived) {
				t.Errorf("packet %d: drop hop %+v", p.ID, h)
			}
			for i, h := range p.Hops {
				if h.StackID != uint64(i+1) || len(h.Stack) == 0 || len(h.Derived) == 0 {
					t.Errorf("packet %d hop %d: stack %d %q derived %q", p.ID, i+1, h.StackID, h.Stack, h.Derived)
				}
			}
		}
		if h := ps[2].Hops[4]; !h.StackLost || h.StackErr != -14 || h.Stack != nil {
			t.Errorf("lost stack: %+v", h)
		}
	})

	t.Run("Rotated", func(t *testing.T) {
		whole := run(t, bin, "", "paths", "--json", stacksFile)
		parts := run(t, bin, "", append([]string{"paths", "--json"}, stacksPartFiles...)...)
		parts.expect(t, 0)
		if parts.stdout != whole.stdout {
			t.Errorf("rotated parts:\n%s\nwhole:\n%s", parts.stdout, whole.stdout)
		}
		// The second part alone: the function names of the short forms.
		alone := decodePaths(t, run(t, bin, "", "paths", "--json", stacksPartFiles[0]).stdout)
		if h := alone[0].Hops[4]; h.StackID != 5 || h.Stack[2] != "kfree_skb_reason" || !slices.Equal(h.Derived, stacksDerived) {
			t.Errorf("part 2 alone: drop hop %+v", h)
		}
	})

	t.Run("Stats", func(t *testing.T) {
		r := run(t, bin, "", "stats", "--json", "--stacks", "1", stacksFile)
		r.expect(t, 0)
		st := decodeStats(t, r.stdout)
		d := st.Drops[0]
		if len(d.Stacks) != 1 || d.Stacks[0].Count != 2 || !slices.Equal(d.Stacks[0].Stack[:4], stacksDrop) || d.StackLost == nil || *d.StackLost != 1 {
			t.Errorf("stats --json --stacks 1: %+v", d)
		}
		r = run(t, bin, "", "stats", "--stacks", "3", stacksFile)
		r.expect(t, 0)
		want := "Drop stacks (top 3 per reason):\n  REASON_2  (3 drops)\n            2  " + strings.Join(stacksDrop, "\n               ") + "\n"
		if !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "            1  (stack lost)\n") {
			t.Errorf("stats --stacks 3 lacks\n%s\n%s", want, r.stdout)
		}
		// Without --stacks the JSON has no stacks.
		r = run(t, bin, "", "stats", "--json", stacksFile)
		if st := decodeStats(t, r.stdout); st.Drops[0].Stacks != nil || st.Drops[0].StackLost != nil {
			t.Errorf("stats --json without --stacks: %+v", st.Drops[0])
		}
		run(t, bin, "", "stats", "--stacks", "-1", stacksFile).expect(t, 2, "--stacks -1")
		run(t, bin, "", "stats", "--json", "--stacks", "x", stacksFile).expect(t, 2)
	})

	t.Run("Wireshark", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "view.pcapng")
		run(t, bin, "", "wireshark", "-o", out, stacksFile).expect(t, 0)
		frames := readView(t, out)
		if len(frames) != 3 {
			t.Fatalf("%d frames", len(frames))
		}
		drop := frames[0].comments[5]
		if !strings.Contains(drop, " stack=5 frames="+strings.Join(stacksDrop, ";")+";") || !strings.HasSuffix(drop, " derived="+strings.Join(stacksDerived, ">")) {
			t.Errorf("drop hop comment %s", drop)
		}
	})
}
