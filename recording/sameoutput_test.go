package recording_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/recording"
)

type goldNames struct{}

func (goldNames) DeviceName(netns, ifindex uint32) (string, bool) {
	if ifindex == 3 {
		return "", false
	}
	return fmt.Sprintf("veth-%d", ifindex), true
}

func (goldNames) NamespaceName(netns uint32) string { return fmt.Sprintf("ns%d", netns) }

type goldSymbols struct{}

func (goldSymbols) AppendSymbol(dst []byte, addr uint64) ([]byte, bool) {
	if addr%2 == 0 {
		return dst, false
	}
	return fmt.Appendf(dst, "fn+0x%x", addr%4096), true
}

// sameOutputHash is the SHA-256 of the stream TestWriterOutputUnchanged
// writes, as the Writer wrote it before its per-event caches (comment
// parts, interfaces, process names) were added: they must not change a
// byte.
const sameOutputHash = "a4dc4bb7ab9ee11044b079e9cd34c9bf3eef36edd18e74e6ed1c342fe8d5f8ac"

// TestWriterOutputUnchanged writes 20,000 pseudo-random events (hooks,
// devices known and not, namespaces, tasks, header kinds, locations,
// losses, bytes=same) and compares the stream's hash with the one the
// Writer gave before its caches.
func TestWriterOutputUnchanged(t *testing.T) {
	var buf bytes.Buffer
	w, err := recording.NewWriter(&buf, recording.Info{Snaplen: 128, Application: "pathcap test", Recording: "r1"}, 4096, goldNames{}, goldSymbols{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	hooks := []capture.Hook{{Name: "net_dev_queue"}, {Name: "netif_receive_skb"}, {Name: "kfree_skb"}, {Name: "consume_skb"},
		{Name: "ip_rcv", Kind: capture.HookKprobe}, {Name: "skb_clone", Kind: capture.HookFexit}}
	comms := []string{"ping", "swapper/0", "a b", "sha256sum"}
	start := time.Unix(1700000000, 123456789)
	data := make([]byte, 128)
	for i := range data {
		data[i] = byte(i)
	}
	for i := range 20000 {
		ev := capture.Event{Hook: &hooks[rng.IntN(len(hooks))], Time: start.Add(time.Duration(i) * 731 * time.Nanosecond),
			CPU: rng.Uint32N(3), PID: rng.Uint32N(4), TID: rng.Uint32N(4), SKB: rng.Uint64(), PacketID: rng.Uint64N(1000),
			NetNS: 4026532000 + rng.Uint32N(3), Ifindex: rng.Uint32N(5), Protocol: 0x0800, Len: rng.Uint32N(1500),
			Data: data[:rng.IntN(129)], Header: capture.Header(rng.IntN(3)), PktType: uint8(rng.IntN(8))}
		copy(ev.Comm[:], comms[rng.IntN(len(comms))])
		if rng.IntN(10) == 0 {
			ev.DropLocation, ev.Mark, ev.DataLen = rng.Uint64N(1<<40), rng.Uint32(), rng.Uint32N(100)
			ev.LostBefore, ev.Parent, ev.BytesSame = rng.Uint64N(3), rng.Uint64N(5), rng.IntN(2) == 0
		}
		if err := w.WriteEvent(&ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(7, start.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	if got := hex.EncodeToString(sum[:]); got != sameOutputHash {
		t.Errorf("the stream's SHA-256 is %s, want %s", got, sameOutputHash)
	}
}
