package paths

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/pcapng"
)

// writeChanged writes events as record --bytes changed would, in parts
// files of one recording (split evenly): an event whose bytes and header
// start equal those of the previous event of its id that had bytes carries
// none and says bytes=same. It returns the files and how many events went
// without bytes.
func writeChanged(t *testing.T, dir string, events []ev, parts int) (files []string, same int) {
	t.Helper()
	last := make(map[uint64]ev)
	per := (len(events) + parts - 1) / parts
	for part := 1; part <= parts; part++ {
		fc := kmeta.FileComment{Recording: "c0ffee", Part: uint64(part), BytesChanged: true}
		sec := recordingSection("alpha")
		sec.Comments = append(sec.Comments, string(kmeta.AppendFileComment(nil, &fc)))
		var b bytes.Buffer
		pw, err := pcapng.NewWriterSize(&b, sec, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		r := &recorder{t: t, w: pw, ifaces: make(map[[2]uint32]uint32), recv: make(map[uint32]uint64)}
		for i := (part - 1) * per; i < min(part*per, len(events)); i++ {
			e := events[i]
			if e.comment == nil && !e.noID {
				if prev, ok := last[e.id]; ok && bytes.Equal(prev.data, e.data) && prev.hdr == e.hdr && len(e.data) > 0 {
					m := e.meta()
					m.BytesSame = true
					e.comment = kmeta.AppendComment(nil, &m)
					e.data = nil
					same++
				} else if len(e.data) > 0 {
					last[e.id] = e
				}
				if kmeta.ClassOf(e.hook).EndsTracking() {
					delete(last, e.id)
				}
			}
			r.write(&e)
		}
		r.finish()
		name := filepath.Join(dir, "changed_"+string(rune('0'+part))+".pcapng")
		if err := os.WriteFile(name, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, name)
	}
	return files, same
}

// TestBytesCarriedForward: a recording whose unchanged events carry no
// bytes (bytes=same, captured length 0) analyzes exactly as the one with
// every event's bytes: paths, flows, changes, outcomes, lengths, the kept
// bytes and the filter, also when the events without bytes are in a later
// file than the bytes they stand for.
func TestBytesCarriedForward(t *testing.T) {
	evs := scenario()
	all := tempRecording(t, "alpha", evs)
	isUDP := func(b []byte) bool { f := ParseFlow(b); return f.Proto == 17 }
	opts := Options{KeepData: true, Filter: isUDP}
	want := dump(analyze(t, opts, nil, all))
	for _, parts := range []int{1, 3} {
		files, same := writeChanged(t, t.TempDir(), evs, parts)
		if same == 0 {
			t.Fatal("no event went without bytes: the scenario does not test anything")
		}
		pkts := analyze(t, opts, nil, files...)
		for _, p := range pkts {
			// The one difference there is: the key itself.
			for i := range p.Hops {
				// (A copy: a hop's metadata is shared.)
				m := *p.Hops[i].Meta
				m.BytesSame = false
				p.Hops[i].Meta = &m
			}
		}
		if got := dump(pkts); got != want {
			t.Errorf("%d parts (%d events without bytes): analysis differs\n got:\n%s\nwant:\n%s", parts, same, got, want)
		}
	}
	// Every event with bytes=same gets bytes from Input itself.
	files, _ := writeChanged(t, t.TempDir(), evs, 1)
	in, err := Open(files)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	empty := 0
	for {
		ev, err := in.Next()
		if err != nil {
			break
		}
		if ev.HasMeta && ev.Meta.BytesSame && len(ev.Data) == 0 {
			empty++
		}
	}
	if empty != 0 {
		t.Errorf("%d events with bytes=same left without bytes", empty)
	}
}

// TestByteCarryGenerations: ids not seen for two generations are
// forgotten, others kept; a free ends an id.
func TestByteCarryGenerations(t *testing.T) {
	var c byteCarry
	ev := func(id uint64, data []byte, same bool, hook string) *Event {
		return &Event{ID: id, HasID: true, HasMeta: true, Data: data, Meta: kmeta.Event{Hook: hook, BytesSame: same}}
	}
	apply := func(e *Event) bool { c.apply(e); return true }
	c.apply(ev(1, []byte{1, 2, 3}, false, "net_dev_queue"))
	for i := range uint64(carryGeneration) {
		c.apply(ev(100+i, []byte{4}, false, "net_dev_queue"))
	}
	if e := ev(1, nil, true, "ip_rcv"); apply(e) && !bytes.Equal(e.Data, []byte{1, 2, 3}) || e.OrigLen != 3 {
		t.Errorf("one generation later: %v (orig %d)", e.Data, e.OrigLen)
	}
	if e := ev(1, nil, true, "kfree_skb"); apply(e) && !bytes.Equal(e.Data, []byte{1, 2, 3}) {
		t.Errorf("at the free: %v", e.Data)
	}
	if e := ev(1, nil, true, "ip_rcv"); apply(e) && len(e.Data) != 0 {
		t.Errorf("after the free: %v", e.Data)
	}
	for i := range uint64(2 * carryGeneration) {
		c.apply(ev(1<<20+i, []byte{5}, false, "net_dev_queue"))
	}
	if e := ev(100, nil, true, "ip_rcv"); apply(e) && len(e.Data) != 0 {
		t.Errorf("two generations later: %v", e.Data)
	}
}
