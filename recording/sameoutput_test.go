package recording_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/testrec"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/recording"
)

type goldNames struct{}

func (goldNames) DeviceName(netns, ifindex uint32) (string, bool) {
	switch ifindex {
	case 3:
		return "", false
	case 4:
		return "if4", true // named as an unresolved device's interface is
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
// writes. It was first taken before the Writer's per-event caches
// (comment parts, interfaces, process names) were added, which changed no
// byte of it; taken again for comment grammar version 2, whose comments
// the test also reads back.
const sameOutputHash = "51f34fd599f81b9f38676ddfeb5af994ae833056152ba8b058086bf189fc510d"

// TestWriterOutputUnchanged writes 20,000 pseudo-random events (hooks,
// devices known and not, namespaces, tasks, header kinds, locations,
// losses, bytes=same) and compares the stream's hash with the one above;
// then it reads every event's comment back, with its interface's place,
// and compares it with what Describe says of the event.
func TestWriterOutputUnchanged(t *testing.T) {
	var buf bytes.Buffer
	w, err := recording.NewWriter(&buf, recording.Info{Snaplen: 128, Application: "pathcap test", Recording: "r1"}, 4096, goldNames{}, goldSymbols{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	d := recording.NewDescriber(goldNames{}, goldSymbols{})
	var want []kmeta.Event
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
		var m kmeta.Event
		d.Describe(&ev, &m)
		want = append(want, m)
	}
	if err := w.Close(7, start.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	if got := hex.EncodeToString(sum[:]); got != sameOutputHash {
		t.Errorf("the stream's SHA-256 is %s, want %s", got, sameOutputHash)
	}
	name := filepath.Join(t.TempDir(), "out.pcapng")
	if err := os.WriteFile(name, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	pkts := testrec.Read(t, name).Packets // parsed with their interfaces' places
	n := 0
	for _, pk := range pkts {
		if !pk.HasMeta {
			t.Fatalf("event %d: %v", n, pk.MetaErr)
		}
		if pk.Meta != want[n] {
			t.Fatalf("event %d on %s (%s): file says %+v, Describe %+v", n, pk.Interface.Name, pk.Interface.Description, pk.Meta, want[n])
		}
		n++
	}
	if n != len(want) {
		t.Errorf("%d events read back, %d written", n, len(want))
	}
}
