package paths

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// recordingBytes returns the events written as one recording.
func recordingBytes(t testing.TB, host string, events []ev) []byte {
	var b bytes.Buffer
	r := newRecorder(t, &b, host)
	for i := range events {
		r.write(&events[i])
	}
	r.finish()
	return b.Bytes()
}

// FuzzAnalyze: whatever the bytes, Open and Process never panic, and the
// packets they make keep the limits and the time order of their hops (the
// renderers are fuzzed in package render).
func FuzzAnalyze(f *testing.F) {
	u := udp4Frame("10.0.0.1", "10.0.0.2", 1, 2, nil)
	scen := recordingBytes(f, "alpha", scenario())
	f.Add(scen)
	f.Add(scen[:len(scen)/2])
	f.Add(recordingBytes(f, "beta", []ev{
		srv(ev{id: 1, at: ms(1), hook: "netif_receive_skb", data: u}),
		srv(ev{id: 2, parent: 1, at: ms(1), hook: "netif_receive_skb", data: u[:20]}),
		srv(ev{id: 1, at: ms(2), hook: "kfree_skb", reason: "NO_SOCKET", loc: "__udp4_lib_rcv+0x4bc", data: u}),
		srv(ev{id: 3, at: ms(3), hook: "netif_rx", data: u, comment: []byte(`pathcap/1 hook=tp:netif_rx dev="\xff" netns=1 ifindex=2 skb=0x1 len=0 proto=0x0800 cpu=0 pid=0 tid=0 comm=""`)}),
		srv(ev{noID: true, at: ms(4), hook: "netif_rx", data: nil}),
	}))
	f.Add([]byte("not a capture"))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		name := filepath.Join(dir, "in.pcapng")
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
		in, err := Open([]string{name})
		if err != nil {
			return
		}
		defer in.Close()
		sum := NewSummary()
		sum.DropStacks = 2
		opts := Options{KeepData: true, MaxHops: 16, MaxOpen: 8}
		_ = Process(in, opts, nil, func(p *Packet) error {
			sum.Add(p)
			if len(p.Hops) > opts.MaxHops || (len(p.Hops) < opts.MaxHops && p.Truncated) {
				t.Fatalf("packet %d: %d hops, truncated %v", p.ID, len(p.Hops), p.Truncated)
			}
			for i := 1; i < len(p.Hops); i++ {
				if p.Hops[i].Time < p.Hops[i-1].Time {
					t.Fatalf("packet %d: hops out of order", p.ID)
				}
			}
			for i := range p.Hops {
				_ = p.Derived(i)
			}
			// The Analyzer's finish (hooks folded as they came, the
			// order known as they came) is Packet.Finish's.
			g := clonePacket(p)
			g.Outcome = Outcome{}
			for i := range g.Hops {
				g.Hops[i].Changed = 0
			}
			g.Finish()
			got := p.Outcome
			if got.Kind == Unknown {
				got.Why = ""
			}
			if !reflect.DeepEqual(got, g.Outcome) || !reflect.DeepEqual(p.Hops, g.Hops) {
				t.Fatalf("packet %d: Analyzer %+v, Finish %+v", p.ID, got, g.Outcome)
			}
			return nil
		})
		_ = sum.Drops()
		_ = sum.Paths(5)
		_ = sum.Latencies()
	})
}
