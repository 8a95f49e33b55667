package render

import (
	"bytes"
	"cmp"
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pathcap/pathcap/internal/testrec"
	"github.com/pathcap/pathcap/paths"
)

// The renderers are tested on the committed recordings that the paths
// tests make and keep current (paths.TestTestdata), analyzed here, and on
// packets built by hand; what they must show is taken from the packets.

// fixture returns the path of a committed crafted recording.
func fixture(t testing.TB, name string) string { return testrec.Crafted(t, name) }

// analyzeFiles returns every packet of the files, in start order.
func analyzeFiles(t testing.TB, opts paths.Options, files ...string) []*paths.Packet {
	t.Helper()
	in, err := paths.Open(files)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out []*paths.Packet
	err = paths.Process(in, opts, nil, func(p *paths.Packet) error {
		c := *p
		c.Hops = slices.Clone(p.Hops)
		c.Children = slices.Clone(p.Children)
		c.Data = slices.Clone(p.Data)
		out = append(out, &c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(out, func(a, b *paths.Packet) int {
		if c := cmp.Compare(a.Start(), b.Start()); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out
}

func scenarioPackets(t testing.TB, opts paths.Options) []*paths.Packet {
	return analyzeFiles(t, opts, fixture(t, "scenario.pcapng"))
}

func stackPackets(t testing.TB) []*paths.Packet {
	pkts := analyzeFiles(t, paths.Options{KeepData: true}, fixture(t, "stacks.pcapng"))
	if len(pkts) != 3 {
		t.Fatalf("%d packets, want 3", len(pkts))
	}
	return pkts
}

func byID(t testing.TB, pkts []*paths.Packet, id uint64) *paths.Packet {
	t.Helper()
	for _, p := range pkts {
		if p.ID == id {
			return p
		}
	}
	t.Fatalf("no packet %d", id)
	return nil
}

func summaryOf(pkts []*paths.Packet, dropStacks int) *paths.Summary {
	s := paths.NewSummary()
	s.DropStacks = dropStacks
	for _, p := range pkts {
		s.Add(p)
	}
	return s
}

// decodePackets decodes JSON lines into the schema, refusing unknown
// fields, and checks that the schema gives back exactly each line.
func decodePackets(t *testing.T, lines []byte) []PacketJSON {
	t.Helper()
	var out []PacketJSON
	for i, l := range bytes.Split(bytes.TrimSuffix(lines, []byte("\n")), []byte("\n")) {
		var p PacketJSON
		dec := json.NewDecoder(bytes.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("line %d: %v\n%s", i+1, err, l)
		}
		sameJSON(t, l, &p)
		out = append(out, p)
	}
	return out
}

// sameJSON checks that v, encoded by encoding/json, is the same JSON value
// as text: the schema types hold every field the encoder writes, and leave
// out what it leaves out.
func sameJSON(t *testing.T, text []byte, v any) {
	t.Helper()
	again, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal(text, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(again, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("the schema types do not give back the encoder's JSON:\n%s\n%s", text, again)
	}
}

func TestPacketJSONIsTheSchema(t *testing.T) {
	for _, name := range []string{"scenario.pcapng", "stacks.pcapng", "other-host.pcapng"} {
		pkts := analyzeFiles(t, paths.Options{}, fixture(t, name))
		var enc JSONEncoder
		var b []byte
		for _, p := range pkts {
			b = enc.Append(b, p)
		}
		got := decodePackets(t, b)
		if len(got) != len(pkts) {
			t.Fatalf("%s: %d lines for %d packets", name, len(got), len(pkts))
		}
		for i, p := range pkts {
			j := got[i]
			if j.ID != p.ID || j.Parent != p.Parent || !slices.Equal(j.Children, p.Children) || j.Start != p.Start() ||
				j.DurationNS != p.Duration() || j.Outcome.Kind != p.Outcome.Kind.String() || j.Outcome.Reason != p.Outcome.Reason ||
				j.Outcome.LocationOffset != p.Outcome.Location || j.Outcome.Location != p.Outcome.Function() || len(j.Hops) != len(p.Hops) {
				t.Fatalf("%s: packet %d as %+v", name, p.ID, j)
			}
			for k, h := range j.Hops {
				ph := &p.Hops[k]
				if h.Hook != ph.HookName() || h.TS != ph.Time || h.DTNS != ph.Time-p.Start() || h.Dev != ph.Meta.Dev ||
					h.NetNS != ph.Meta.NetNS || h.NSName != ph.NSName || h.Len != ph.Len() || h.CapLen != ph.CapLen ||
					h.Reason != ph.Meta.Reason || h.Location != ph.Meta.Location || h.StackID != ph.Meta.Stack ||
					h.StackLost != ph.Meta.StackLost || h.StackErr != ph.Meta.StackErr {
					t.Errorf("%s: packet %d hop %d as %+v", name, p.ID, k+1, h)
				}
				if ph.Changed != 0 && !slices.Equal(h.Changed, ph.Changed.Names()) {
					t.Errorf("%s: packet %d hop %d changed %q, want %q", name, p.ID, k+1, h.Changed, ph.Changed.Names())
				}
				if ph.Flow.Src.IsValid() && (h.Src != ph.Flow.Src.String() || h.Dst != ph.Flow.Dst.String() || h.Proto == nil || *h.Proto != ph.Flow.Proto) {
					t.Errorf("%s: packet %d hop %d flow %+v", name, p.ID, k+1, h)
				}
				if ph.Stack != nil && (!slices.Equal(h.Stack, ph.Stack.Frames) || !slices.Equal(h.Derived, p.Derived(k))) {
					t.Errorf("%s: packet %d hop %d stack %q derived %q", name, p.ID, k+1, h.Stack, h.Derived)
				}
			}
			// Without the encoder's memory, the same line.
			if one, all := string(AppendJSON(nil, p)), string(enc.Append(nil, p)); one != all {
				t.Errorf("AppendJSON and the encoder differ:\n%s\n%s", one, all)
			}
		}
	}
}

func TestScenarioJSON(t *testing.T) {
	pkts := scenarioPackets(t, paths.Options{})
	var b []byte
	for _, p := range pkts {
		b = AppendJSON(b, p)
	}
	got := map[uint64]PacketJSON{}
	for _, p := range decodePackets(t, b) {
		got[p.ID] = p
	}
	// The drop: reason without enum prefix, location = function.
	d := got[5]
	if d.Outcome.Kind != "dropped" || d.Outcome.Reason != "NO_SOCKET" || d.Outcome.Location != "__udp4_lib_rcv" || d.Outcome.LocationOffset != "__udp4_lib_rcv+0x4bc" {
		t.Errorf("drop outcome %+v", d.Outcome)
	}
	if h := d.Hops[0]; h.Src != "10.0.0.1" || h.Dst != "10.0.0.2" || *h.Proto != 17 || *h.SPort != 40005 || *h.DPort != 9 || h.Dev != "veth0" || h.Len != 52 {
		t.Errorf("first hop %+v", h)
	}
	// NAT: the changes are in the JSON.
	if c := got[8].Hops[1].Changed; !slices.Equal(c, []string{"dev", "addr", "port"}) {
		t.Errorf("NAT hop changed %v", c)
	}
	// Clones.
	if !slices.Equal(got[9].Children, []uint64{10}) || got[10].Parent != 9 || got[11].Parent != 999 {
		t.Errorf("clones: 9 %v, 10 parent %d, 11 parent %d", got[9].Children, got[10].Parent, got[11].Parent)
	}
	// IPv6 through an extension header.
	if h := got[12].Hops[0]; h.Src != "fd00::1" || h.Dst != "fd00::2" || *h.SPort != 40012 || *h.DPort != 5353 {
		t.Errorf("IPv6 hop %+v", h)
	}
}

func TestPacketTextAligned(t *testing.T) {
	pkts := scenarioPackets(t, paths.Options{})
	for _, p := range pkts {
		var b strings.Builder
		if err := WritePacketText(&b, p, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n\n"), "\n")
		if len(lines) != 1+len(p.Hops) {
			t.Fatalf("packet %d: %d lines for %d hops:\n%s", p.ID, len(lines), len(p.Hops), b.String())
		}
		if !strings.HasPrefix(lines[0], "packet ") || !strings.Contains(lines[0], OutcomeText(&p.Outcome)) {
			t.Errorf("head %q", lines[0])
		}
		// The hop lines' columns line up: "len" is at the same place.
		col := -1
		for i, l := range lines[1:] {
			if !strings.Contains(l, "  "+p.Hops[i].Label()+" ") {
				t.Errorf("hop line %q lacks hook %s", l, p.Hops[i].Label())
			}
			c := utf8.RuneCountInString(l[:strings.Index(l, " len ")])
			if col >= 0 && c != col {
				t.Errorf("packet %d: len column at %d and %d:\n%s", p.ID, col, c, b.String())
			}
			col = c
		}
		if strings.Contains(b.String(), "\x1b[") {
			t.Error("colour codes without Color")
		}
	}
	p := byID(t, pkts, 5) // the drop
	var b strings.Builder
	WritePacketText(&b, p, TextOptions{Color: true})
	if s := b.String(); !strings.Contains(s, ansiRed+"dropped: NO_SOCKET at __udp4_lib_rcv+0x4bc"+ansiReset) {
		t.Errorf("coloured drop:\n%q", s)
	}
	b.Reset()
	WritePacketText(&b, p, TextOptions{Width: 40})
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if utf8.RuneCountInString(l) > 40 {
			t.Errorf("line wider than 40: %q", l)
		}
	}
}

func TestSummaryText(t *testing.T) {
	pkts := scenarioPackets(t, paths.Options{})
	s := summaryOf(pkts, 0)
	var b strings.Builder
	if err := WriteSummaryText(&b, s, TextOptions{TopPaths: 3}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		// 10 is a clone of 9: counted apart from the packets.
		"Summary: 14 packets (and 1 clone), " + itoa(s.Events) + " events, " + FormatDuration(s.Last-s.First),
		"Outcomes:", "  transmitted          4   28.6%", "  delivered            4   28.6%", "  unknown              3   21.4%",
		"  dropped              2   14.3%", "  consumed             1    7.1%",
		"  clones: 1 (1 transmitted), part of their packets' outcomes",
		"Drop reasons:", "  NETFILTER_DROP         1", "                         1  at nf_hook_slow+0x9a",
		"  NO_SOCKET              1", "                         1  at __udp4_lib_rcv+0x4bc",
		"Most common paths:", "          2  net_dev_queue > net_dev_start_xmit > net_dev_xmit\n          2  netif_receive_skb\n",
		"Per-hop latency:", "p50", "p90", "p99", "max",
		"  netif_receive_skb > consume_skb", "Devices and namespaces:", "  veth1      netns 4026532842 (ns-server)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out[strings.Index(out, "Most common paths:"):strings.Index(out, "Per-hop latency:")], "\n") != 4 {
		t.Errorf("TopPaths 3 not honoured:\n%s", out)
	}
	// The latency table's header lines up with its rows.
	lat := strings.Split(out[strings.Index(out, "Per-hop latency:"):], "\n")
	for _, col := range []string{"count", "p50", "p90", "p99", "max"} {
		end := strings.Index(lat[0], col) + len(col)
		for _, line := range lat[1:] {
			if line == "" || strings.HasPrefix(line, "Devices") {
				break
			}
			row := []rune(line)
			if end > len(row) || row[end-1] == ' ' || (end < len(row) && row[end] != ' ') {
				t.Errorf("column %s ends at %d; row %q", col, end, row)
			}
		}
	}
	b.Reset()
	WriteSummaryText(&b, s, TextOptions{Color: true})
	if !strings.Contains(b.String(), ansiBold+"Outcomes:"+ansiReset) {
		t.Errorf("no colour:\n%q", b.String())
	}
	// Colour codes take no room: the counts stay in their columns.
	plain := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(b.String(), "")
	var nb strings.Builder
	WriteSummaryText(&nb, s, TextOptions{})
	if plain != nb.String() {
		t.Errorf("coloured summary differs from the plain one once the codes are removed:\n%s\n---\n%s", plain, nb.String())
	}
}

func itoa(v uint64) string { return string(appendSmallInt(nil, int64(v))) }

// decodeSummary decodes stats --json into the schema, refusing unknown
// fields, and checks that the schema gives back exactly the object.
func decodeSummary(t *testing.T, text []byte) SummaryJSON {
	t.Helper()
	var got SummaryJSON
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	sameJSON(t, text, &got)
	return got
}

func TestSummaryJSON(t *testing.T) {
	pkts := scenarioPackets(t, paths.Options{})
	s := summaryOf(pkts, 0)
	got := decodeSummary(t, AppendSummaryJSON(nil, s, 0))
	if got.Packets != s.Packets || got.Events != s.Events || got.First != pkts[0].Start() || got.Last != s.Last {
		t.Errorf("totals %+v", got)
	}
	for _, c := range s.Outcomes() {
		if got.Outcomes[c.Name] != c.Count {
			t.Errorf("outcome %s: %d, want %d", c.Name, got.Outcomes[c.Name], c.Count)
		}
	}
	if len(got.Drops) != 2 || got.Drops[0].Reason != "NETFILTER_DROP" || got.Drops[1].Reason != "NO_SOCKET" ||
		got.Drops[1].Locations[0].Location != "__udp4_lib_rcv+0x4bc" || got.Drops[1].Count != 1 || got.Drops[0].Stacks != nil {
		t.Errorf("drops %+v", got.Drops)
	}
	var npaths uint64
	for _, p := range got.Paths {
		npaths += p.Count
	}
	if npaths != s.Packets+s.Clones || got.Clones != 1 || got.CloneOutcomes["transmitted"] != 1 {
		t.Errorf("path counts sum to %d; clones %d %v", npaths, got.Clones, got.CloneOutcomes)
	}
	var hops, events uint64
	for _, l := range got.Latency {
		hops += l.Count
		if !(l.P50NS <= l.P90NS && l.P90NS <= l.P99NS && l.P99NS <= l.MaxNS) {
			t.Errorf("latency %+v", l)
		}
	}
	for _, d := range got.Devices {
		events += d.Events
	}
	if hops != s.Events-s.Packets-s.Clones || events != s.Events {
		t.Errorf("latency counts %d, device events %d", hops, events)
	}
}

// viewComments returns the frames of a path view and their comments.
func viewComments(t *testing.T, view []byte) ([]testrec.Packet, [][]string) {
	t.Helper()
	f := testrec.ReadBytes(t, view)
	return f.Packets, f.Comments()
}

func writeView(t *testing.T, pkts []*paths.Packet) []byte {
	t.Helper()
	var buf bytes.Buffer
	v, err := NewViewWriter(&buf, "pathcap analyze test")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := v.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestViewWriter(t *testing.T) {
	pkts := scenarioPackets(t, paths.Options{KeepData: true})
	frames, comments := viewComments(t, writeView(t, pkts))
	if len(frames) != len(pkts) {
		t.Fatalf("%d frames for %d packets", len(frames), len(pkts))
	}
	for i, p := range frames {
		want := pkts[i]
		if !p.Options.HasPacketID || p.Options.PacketID != want.ID || !bytes.Equal(p.Data, want.Data) || p.Timestamp.UnixNano() != want.Start() {
			t.Errorf("frame %d: id %d data %d bytes", i+1, p.Options.PacketID, len(p.Data))
		}
		c := comments[i]
		if len(c) != 1+len(want.Hops) || !strings.HasPrefix(c[0], "pathcap-path/1 id=") {
			t.Fatalf("frame %d: comments %q", i+1, c)
		}
		if !strings.Contains(c[0], " outcome="+want.Outcome.Kind.String()) || !strings.Contains(c[0], " path="+want.PathString()) {
			t.Errorf("path comment %q", c[0])
		}
		for j, h := range c[1:] {
			if !strings.HasPrefix(h, "pathcap-hop/1 n=") || !strings.Contains(h, " hook="+want.Hops[j].Label()) {
				t.Errorf("hop comment %q", h)
			}
		}
		if want.ID == 5 && !strings.Contains(c[0], "reason=NO_SOCKET loc=__udp4_lib_rcv+0x4bc") {
			t.Errorf("drop comment %q", c[0])
		}
		if want.ID == 8 && !strings.Contains(c[2], `changed=dev,addr,port flow="198.51.100.7:40008 > 10.0.0.2:8080 TCP"`) {
			t.Errorf("NAT hop comment %q", c[2])
		}
	}
}

func TestStackText(t *testing.T) {
	pkts := stackPackets(t)
	for _, p := range pkts {
		var plain, stacks strings.Builder
		WritePacketText(&plain, p, TextOptions{})
		WritePacketText(&stacks, p, TextOptions{Stacks: true})
		if strings.Contains(plain.String(), "stack ") {
			t.Errorf("stacks without Stacks:\n%s", plain.String())
		}
		lines, stackLines := 1+len(p.Hops), 1+len(p.Hops)
		for i := range p.Hops {
			h := &p.Hops[i]
			d := p.Derived(i)
			if len(d) > 0 {
				want := stackIndent + "derived: " + strings.Join(d, " > ") + "\n"
				if !strings.Contains(plain.String(), want) || !strings.Contains(stacks.String(), want) {
					t.Errorf("packet %d hop %d: no %q in\n%s", p.ID, i+1, want, plain.String())
				}
				lines++
				stackLines++
			}
			switch {
			case h.Meta.StackLost:
				if !strings.Contains(stacks.String(), stackIndent+"stack lost (error -14)\n") {
					t.Errorf("packet %d: the lost stack is not reported:\n%s", p.ID, stacks.String())
				}
				stackLines++
			case h.Stack != nil:
				want := stackIndent + "stack " + itoa(h.Stack.ID) + ":\n" + stackIndent + "  " + strings.Join(h.Stack.Frames, "\n"+stackIndent+"  ") + "\n"
				if !strings.Contains(stacks.String(), want) {
					t.Errorf("packet %d hop %d: no\n%s\nin\n%s", p.ID, i+1, want, stacks.String())
				}
				stackLines += 1 + len(h.Stack.Frames)
			}
		}
		if n := strings.Count(plain.String(), "\n") - 1; n != lines {
			t.Errorf("packet %d: %d lines, want %d:\n%s", p.ID, n, lines, plain.String())
		}
		if n := strings.Count(stacks.String(), "\n") - 1; n != stackLines {
			t.Errorf("packet %d: %d lines with stacks, want %d:\n%s", p.ID, n, stackLines, stacks.String())
		}
	}
	// The second part of a rotated recording alone: function names only.
	alone := analyzeFiles(t, paths.Options{}, fixture(t, "stacks-part2.pcapng"))
	var b strings.Builder
	WritePacketText(&b, alone[0], TextOptions{Stacks: true})
	if h := alone[0].Hops[4]; h.Stack == nil || h.Stack.Offsets ||
		!strings.Contains(b.String(), stackIndent+"stack "+itoa(h.Stack.ID)+": (functions only: its definition is not in the input)\n"+stackIndent+"  "+h.Stack.Frames[0]+"\n") {
		t.Errorf("report:\n%s", b.String())
	}
}

func TestStackView(t *testing.T) {
	pkts := stackPackets(t)
	_, comments := viewComments(t, writeView(t, pkts))
	for i, p := range pkts {
		for j := range p.Hops {
			h := &p.Hops[j]
			c := comments[i][1+j]
			var want string
			switch {
			case h.Meta.StackLost:
				want = " stack=lost stack_err=-14"
			case h.Stack != nil:
				want = " stack=" + itoa(h.Meta.Stack) + " frames=" + strings.Join(h.Stack.Frames, ";")
				if d := p.Derived(j); len(d) > 0 {
					want += " derived=" + strings.Join(d, ">")
				}
			}
			if !strings.HasSuffix(c, want) {
				t.Errorf("packet %d hop %d comment\n%s\nwant it to end in\n%s", p.ID, j+1, c, want)
			}
		}
	}
}

func TestDropStacks(t *testing.T) {
	pkts := stackPackets(t)
	s := summaryOf(pkts, 3)
	drops := s.Drops()
	got := decodeSummary(t, AppendSummaryJSON(nil, s, 0))
	if len(got.Drops) != len(drops) {
		t.Fatalf("drops in JSON %+v", got.Drops)
	}
	var text strings.Builder
	WriteSummaryText(&text, s, TextOptions{})
	for i, d := range drops {
		g := got.Drops[i]
		if g.StackLost == nil || *g.StackLost != d.StackLost || len(g.Stacks) != len(d.Stacks) {
			t.Fatalf("drop %s in JSON: %+v", d.Reason, g)
		}
		for k, st := range d.Stacks {
			if g.Stacks[k].Count != st.Count || !slices.Equal(g.Stacks[k].Stack, st.Frames) {
				t.Errorf("drop %s stack %d in JSON: %+v", d.Reason, k, g.Stacks[k])
			}
			want := "  " + d.Reason + "  (" + itoa(d.Count) + " drops)\n"
			if !strings.Contains(text.String(), want) || !strings.Contains(text.String(), "  "+itoa(st.Count)+"  "+st.Frames[0]+"\n") {
				t.Errorf("summary lacks %s's stack:\n%s", d.Reason, text.String())
			}
		}
		if d.StackLost > 0 && !strings.Contains(text.String(), "  "+itoa(d.StackLost)+"  (stack lost)\n") {
			t.Errorf("summary lacks the lost stacks:\n%s", text.String())
		}
	}
	if !strings.Contains(text.String(), "Drop stacks (top 3 per reason):\n") {
		t.Errorf("summary:\n%s", text.String())
	}
	// Without DropStacks, neither the text nor the JSON has them.
	s2 := summaryOf(pkts, 0)
	text.Reset()
	WriteSummaryText(&text, s2, TextOptions{})
	if strings.Contains(text.String(), "Drop stacks") || bytes.Contains(AppendSummaryJSON(nil, s2, 0), []byte(`"stacks"`)) {
		t.Errorf("drop stacks without DropStacks")
	}
}
