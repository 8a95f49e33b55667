package kmeta_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/pathcap/pathcap/kmeta"
)

// TestCommentCacheSameBytes checks that CommentCache writes every comment
// byte for byte as AppendComment does, over a stream of events whose
// heads and tasks repeat, change in one field at a time and collide.
func TestCommentCacheSameBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	kinds := []string{"tp", "kprobe", "fentry", "fexit"}
	hooks := []string{"net_dev_queue", "net_dev_xmit", "netif_rx", "kfree_skb", "consume_skb", "x", "ip_rcv", "a b", "é"}
	devs := []string{"", "veth-a", "veth-b", "lo", "eth 0 \"q\"", "veth-aa"}
	comms := []string{"ping", "swapper/0", "swapper/1", "", "a b\tc", "sha256sum"}
	var c kmeta.CommentCache
	var got, want []byte
	for i := range 200000 {
		e := kmeta.Event{
			Kind: pick(kinds), Hook: pick(hooks), Dev: pick(devs),
			NetNS: 4026532000 + rng.Uint32N(3), Ifindex: rng.Uint32N(4),
			SKB: rng.Uint64(), Len: rng.Uint32N(2000), Proto: uint16(rng.Uint32()),
			CPU: rng.Uint32N(3), PID: rng.Uint32N(5), TID: rng.Uint32N(5), Comm: pick(comms),
		}
		if rng.IntN(8) == 0 {
			e.DataLen, e.PktType, e.Mark, e.Header = rng.Uint32N(100), uint8(rng.IntN(9)), rng.Uint32(), kmeta.HeaderStart(rng.IntN(3))
			e.HasDrop, e.Reason, e.Location = true, "NO_SOCKET", "__udp4_lib_rcv+0x4bc"
			e.HasRetVal, e.RetVal, e.Parent, e.BytesSame = true, -rng.Int64N(100), rng.Uint64N(9), true
			e.Stack, e.StackErr, e.Skipped = rng.Uint64N(3), -rng.Int32N(20), rng.Uint64N(3)
		}
		if i%3 == 0 {
			// Equal strings in other memory: the cache compares contents.
			e.Hook = string([]byte(e.Hook))
			e.Comm = string([]byte(e.Comm))
		}
		got = c.Append(got[:0], &e)
		want = kmeta.AppendComment(want[:0], &e)
		if !bytes.Equal(got, want) {
			t.Fatalf("event %d %+v:\ncache  %s\nappend %s", i, e, got, want)
		}
	}
	// Appending to a non-empty dst keeps what is there.
	e := sampleDrop()
	got = c.Append([]byte("x"), &e)
	if want := append([]byte("x"), kmeta.AppendComment(nil, &e)...); !bytes.Equal(got, want) {
		t.Errorf("after x: %s, want %s", got, want)
	}
}

func BenchmarkCommentCache(b *testing.B) {
	e := kmeta.Event{Kind: "tp", Hook: "net_dev_queue", Dev: "veth-a", NetNS: 4026532841, Ifindex: 2,
		SKB: 0xffff8e2b45a3c400, Len: 98, Proto: 0x0800, CPU: 1, PID: 1234, TID: 1234, Comm: "ping"}
	var c kmeta.CommentCache
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		dst = c.Append(dst[:0], &e)
	}
}
