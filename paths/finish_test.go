package paths

import (
	"errors"
	"io"
	"reflect"
	"slices"
	"testing"

	"github.com/pathcap/pathcap/internal/testrec"
	"github.com/pathcap/pathcap/kmeta"
)

// finishFiles are recordings with clones that decide their packets'
// outcomes (ping's echo replies), on which the Analyzer decides from
// its fold whether a packet waits for its clones.
func finishFiles(t *testing.T) [][]string {
	files := [][]string{{testrec.Crafted(t, "scenario.pcapng")}}
	for _, n := range []string{"host-veth", "host-veth-stacks", "vm-5.10-fentry", "vm-6.1-kprobe", "vm-6.12-kprobe-multi"} {
		files = append(files, []string{testrec.Recording(t, n+".pcapng")})
	}
	return files
}

// TestFinishMatchesPacketFinish: every packet the Analyzer completes is
// what Packet.Finish (the general path, classifying again) makes of its
// hops and clones.
func TestFinishMatchesPacketFinish(t *testing.T) {
	withClones := 0
	for _, files := range finishFiles(t) {
		for _, p := range analyze(t, Options{}, nil, files...) {
			g := clonePacket(p)
			g.Outcome = Outcome{}
			for i := range g.Hops {
				g.Hops[i].Changed = 0
			}
			g.Finish()
			got := p.Outcome
			if got.Kind == Unknown {
				// The Analyzer says why after Finish.
				got.Why = ""
			}
			if !reflect.DeepEqual(got, g.Outcome) || !reflect.DeepEqual(p.Hops, g.Hops) {
				t.Fatalf("%s: packet %d: Analyzer %+v, Finish %+v", files[0], p.ID, got, g.Outcome)
			}
			if len(p.Clones) > 0 {
				withClones++
			}
		}
	}
	if withClones == 0 {
		t.Fatal("no packet waited for its clones: the test checks nothing")
	}
}

// TestProcessMatchesAnalyzer: Process, which reads and emits on goroutines
// of their own, hands over the packets a synchronous Analyzer makes, in
// the same order.
func TestProcessMatchesAnalyzer(t *testing.T) {
	for _, files := range finishFiles(t) {
		for _, opts := range []Options{{}, {MaxOpen: 4}} {
			got := analyze(t, opts, nil, files...)
			in, err := Open(files)
			if err != nil {
				t.Fatal(err)
			}
			var want []*Packet
			a := NewAnalyzer(opts, func(p *Packet) error {
				want = append(want, clonePacket(p))
				return nil
			})
			for {
				ev, err := in.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if err := a.Add(ev); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			in.Close()
			// dump prints the clones' outcomes with their stacks'
			// addresses, which differ from one Input to the next: the
			// stacks' text is compared instead.
			var stacks [2][]string
			for k, ps := range [][]*Packet{got, want} {
				for _, p := range ps {
					for i := range p.Clones {
						if s := p.Clones[i].Outcome.Stack; s != nil {
							stacks[k] = append(stacks[k], s.text)
							p.Clones[i].Outcome.Stack = nil
						}
					}
				}
			}
			if !reflect.DeepEqual(stacks[0], stacks[1]) {
				t.Fatalf("%s: the clones' stacks differ", files[0])
			}
			if dump(got) != dump(want) {
				t.Fatalf("%s, %+v: Process and a synchronous Analyzer differ:\n%s\n---\n%s", files[0], opts, dump(got), dump(want))
			}
		}
	}
}

// TestProcessStopsAtOutputError: after the callback's first error, it is
// not called again, and Process returns that error.
func TestProcessStopsAtOutputError(t *testing.T) {
	name := testrec.Recording(t, "host-veth.pcapng")
	boom := errors.New("boom")
	for _, after := range []int{0, 1, 5, 300, 1000} {
		in, err := Open([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		calls := 0
		err = Process(in, Options{}, nil, func(p *Packet) error {
			calls++
			if calls > after {
				return boom
			}
			return nil
		})
		in.Close()
		total := len(analyze(t, Options{}, nil, name))
		if after < total && (!errors.Is(err, boom) || calls != after+1) {
			t.Fatalf("error after %d packets: got %v after %d calls", after, err, calls)
		}
		if after >= total && (err != nil || calls != total) {
			t.Fatalf("no error expected (%d packets): got %v after %d calls", total, err, calls)
		}
	}
}

// TestNoChanges: Options.NoChanges gives the same packets, in the same
// order, with every Hop.Changed zero, and statistics that are the same.
func TestNoChanges(t *testing.T) {
	changed := 0
	for _, files := range finishFiles(t) {
		want := analyze(t, Options{}, nil, files...)
		got := analyze(t, Options{NoChanges: true}, nil, files...)
		if len(got) != len(want) {
			t.Fatalf("%s: %d packets, want %d", files[0], len(got), len(want))
		}
		sg, sw := NewSummary(), NewSummary()
		for i, p := range want {
			sw.Add(p)
			sg.Add(got[i])
			for j := range p.Hops {
				if p.Hops[j].Changed != 0 {
					changed++
				}
				if got[i].Hops[j].Changed != 0 {
					t.Fatalf("%s: packet %d: hop %d has changes %v", files[0], p.ID, j, got[i].Hops[j].Changed)
				}
				p.Hops[j].Changed = 0
			}
			if !reflect.DeepEqual(got[i], p) {
				t.Fatalf("%s: packet %d: NoChanges %+v, want %+v", files[0], p.ID, got[i], p)
			}
		}
		if !reflect.DeepEqual(sg, sw) {
			t.Fatalf("%s: statistics differ with NoChanges", files[0])
		}
	}
	if changed == 0 {
		t.Fatal("no hop changed anything: the test checks nothing")
	}
}

// TestFoldDelivered: the Analyzer's test of whether a packet's own skb was
// delivered (which decides whether it waits for its clones) says what the
// full classification says, for the packets of every recording under
// testdata/, their hops folded in time order and in reverse.
func TestFoldDelivered(t *testing.T) {
	delivered := 0
	for _, files := range finishFiles(t) {
		for _, p := range analyze(t, Options{}, nil, files...) {
			for _, rev := range []bool{false, true} {
				op := &openPacket{Packet: *clonePacket(p)}
				if rev {
					slices.Reverse(op.Hops)
				}
				for i := range op.Hops {
					op.fold.add(i, op.Hops[i].Meta, kmeta.ClassOf(op.Hops[i].Meta.Hook))
				}
				want := classifyFolded(&op.Packet, &op.fold).Kind == Delivered
				if got := op.foldDelivered(); got != want {
					t.Fatalf("%s: packet %d (reversed %v): foldDelivered %v, classification %v", files[0], p.ID, rev, got, want)
				}
				if want {
					delivered++
				}
			}
		}
	}
	if delivered == 0 {
		t.Error("no packet delivered: the test tests nothing")
	}
}
