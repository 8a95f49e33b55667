package graph

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/internal/testrec"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/paths"
)

// recordings returns the committed recordings and crafted scenarios.
func recordings(t *testing.T) []string {
	t.Helper()
	recs, _ := filepath.Glob(testrec.Recording(t, "*.pcapng"))
	if len(recs) == 0 {
		t.Fatal("no recordings in testdata/recordings")
	}
	return append(recs, testrec.Crafted(t, "scenario.pcapng"), testrec.Crafted(t, "stacks.pcapng"))
}

// analyze builds the graph and the summary of a recording's packets.
func analyze(t *testing.T, file string) (*Graph, *paths.Summary) {
	t.Helper()
	in, err := paths.Open([]string{file})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	b := NewBuilder()
	s := paths.NewSummary()
	if err := paths.Process(in, paths.Options{}, nil, func(p *paths.Packet) error {
		b.Add(p)
		s.Add(p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return b.Graph(), s
}

// checkCounts checks what holds of every graph: every path enters a node
// by an edge or starts there, and leaves it by an edge (the last hop to
// its outcome); the sinks of each outcome kind count what the summary
// counts.
func checkCounts(t *testing.T, g *Graph, s *paths.Summary) {
	t.Helper()
	if g.Packets != s.Packets || g.Clones != s.Clones {
		t.Errorf("graph of %d packets and %d clones, summary %d and %d", g.Packets, g.Clones, s.Packets, s.Clones)
	}
	in := make([]uint64, len(g.Nodes))
	out := make([]uint64, len(g.Nodes))
	seen := map[[2]int]bool{}
	for _, e := range g.Edges {
		if seen[[2]int{e.From, e.To}] {
			t.Errorf("two edges %d -> %d", e.From, e.To)
		}
		seen[[2]int{e.From, e.To}] = true
		in[e.To] += e.Count
		out[e.From] += e.Count
		if e.Clones > e.Count || e.ViaClone > e.Count {
			t.Errorf("edge %+v: more clones than paths", e)
		}
		if (e.Latency == nil) != (g.Nodes[e.To].Kind == Sink) {
			t.Errorf("edge %d -> %d: latency %v", e.From, e.To, e.Latency)
		}
		if e.Latency != nil && e.Latency.Count() != e.Count {
			t.Errorf("edge %d -> %d: %d latencies for %d paths", e.From, e.To, e.Latency.Count(), e.Count)
		}
	}
	var hits uint64
	byKind := map[string]uint64{}
	cloneKind := map[string]uint64{}
	for i, n := range g.Nodes {
		switch n.Kind {
		case Hop:
			hits += n.Hits
			if n.Hits != n.Starts+in[i] {
				t.Errorf("node %d %v: %d hits, %d starts + %d in", i, n.Hooks, n.Hits, n.Starts, in[i])
			}
			if n.Hits != out[i] {
				t.Errorf("node %d %v: %d hits, %d out", i, n.Hooks, n.Hits, out[i])
			}
		case Sink:
			if n.Hits != in[i] || n.Hits != n.Packets+n.Clones {
				t.Errorf("sink %d %s: %d hits, %d in, %d packets + %d clones", i, n.SinkName(), n.Hits, in[i], n.Packets, n.Clones)
			}
			byKind[n.Outcome.String()] += n.Packets
			cloneKind[n.Outcome.String()] += n.Clones
		}
	}
	if g.Collapsed == 0 && hits != s.Events {
		t.Errorf("%d hits, summary has %d events", hits, s.Events)
	}
	for _, c := range s.Outcomes() {
		if byKind[c.Name] != c.Count {
			t.Errorf("%s: sinks count %d packets, summary %d", c.Name, byKind[c.Name], c.Count)
		}
		delete(byKind, c.Name)
	}
	for _, c := range s.CloneOutcomes() {
		if cloneKind[c.Name] != c.Count {
			t.Errorf("%s: sinks count %d clones, summary %d", c.Name, cloneKind[c.Name], c.Count)
		}
	}
	for k, n := range byKind {
		if n != 0 {
			t.Errorf("sinks of %s count %d packets the summary does not", k, n)
		}
	}
}

func TestGraphCountsMatchSummary(t *testing.T) {
	for _, file := range recordings(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			g, s := analyze(t, file)
			if len(g.Nodes) == 0 || len(g.Edges) == 0 {
				t.Fatal("empty graph")
			}
			checkCounts(t, g, s)
			c := Collapse(g)
			checkCounts(t, c, s)
			if c.HopNodes()+c.Collapsed != g.HopNodes() {
				t.Errorf("collapsed: %d nodes + %d merged, from %d", c.HopNodes(), c.Collapsed, g.HopNodes())
			}
			var hooks int
			for _, n := range c.Nodes {
				if n.Kind == Hop {
					hooks += len(n.Hooks)
					if len(n.Steps) != len(n.Hooks)-1 {
						t.Errorf("node %v: %d steps", n.Hooks, len(n.Steps))
					}
				}
			}
			if hooks != g.HopNodes() {
				t.Errorf("collapsed nodes hold %d hooks, want %d", hooks, g.HopNodes())
			}
			// Collapsing twice changes nothing.
			if cc := Collapse(c); len(cc.Nodes) != len(c.Nodes) || len(cc.Edges) != len(c.Edges) {
				t.Errorf("collapsing again: %d nodes, %d edges; was %d, %d", len(cc.Nodes), len(cc.Edges), len(c.Nodes), len(c.Edges))
			}
		})
	}
}

// TestFunctionGraphCollapses checks that the graph of a function-backend
// recording with hundreds of functions shrinks.
func TestFunctionGraphCollapses(t *testing.T) {
	g, _ := analyze(t, testrec.Recording(t, "vm-6.12-kprobe-multi.pcapng"))
	if g.HopNodes() < 200 {
		t.Fatalf("%d hop nodes: not the recording with hundreds of functions", g.HopNodes())
	}
	c := Auto(g)
	if c.HopNodes() > g.HopNodes()*3/5 {
		t.Errorf("collapsed to %d hop nodes from %d", c.HopNodes(), g.HopNodes())
	}
	small, _ := analyze(t, testrec.Recording(t, "host-veth.pcapng"))
	if a := Auto(small); a.Collapsed != 0 {
		t.Errorf("a tracepoint graph of %d nodes was collapsed", small.HopNodes())
	}
}

// hop makes a hop at time t.
func hop(t int64, hook, dev string, netns uint32) paths.Hop {
	return paths.Hop{Time: t, Meta: &kmeta.Event{Kind: kmeta.KindTracepoint, Hook: hook, Dev: dev, NetNS: netns, Len: 60}}
}

// packet makes a finished packet of hops at 1 µs intervals.
func packet(id uint64, hooks ...string) *paths.Packet {
	p := &paths.Packet{ID: id, HasMeta: true}
	for i, h := range hooks {
		dev := "eth0"
		if strings.HasPrefix(h, "1:") {
			dev, h = "eth1", h[2:]
		}
		p.Hops = append(p.Hops, hop(int64(i)*1000, h, dev, 1))
	}
	p.Finish()
	return p
}

func TestForwarded(t *testing.T) {
	b := NewBuilder()
	fwd := packet(1, "netif_receive_skb", "ip_forward", "1:net_dev_queue", "1:net_dev_start_xmit")
	local := packet(2, "net_dev_queue", "net_dev_start_xmit")
	for _, p := range []*paths.Packet{fwd, local} {
		if p.Outcome.Kind != paths.Transmitted {
			t.Fatalf("packet %d: %s, want transmitted", p.ID, p.Outcome.Kind)
		}
		b.Add(p)
	}
	g := b.Graph()
	var names []string
	for _, n := range g.Nodes {
		if n.Kind == Sink {
			names = append(names, n.SinkName()+":"+n.ClassName())
		}
	}
	if want := []string{"transmitted:transmitted", "forwarded:forwarded"}; !slices.Equal(names, want) {
		t.Errorf("sinks %v, want %v", names, want)
	}
	if len(g.Lanes) != 2 {
		t.Errorf("%d lanes, want eth0 and eth1", len(g.Lanes))
	}
}

func TestCollapseChains(t *testing.T) {
	b := NewBuilder()
	// a>b>c is passed in one piece; c branches to d or e; x joins at d.
	for _, p := range []*paths.Packet{
		packet(1, "a", "b", "c", "d"),
		packet(2, "a", "b", "c", "e"),
		packet(3, "x", "d"),
		packet(4, "loop", "loop", "loop"),
	} {
		b.Add(p)
	}
	g := b.Graph()
	c := Collapse(g)
	var chains [][]string
	for _, n := range c.Nodes {
		if n.Kind == Hop {
			chains = append(chains, slices.Clone(n.Hooks))
		}
	}
	want := [][]string{{"tp:a", "tp:b", "tp:c"}, {"tp:d"}, {"tp:e"}, {"tp:x"}, {"tp:loop"}}
	if !slices.EqualFunc(chains, want, slices.Equal) {
		t.Errorf("chains %v, want %v", chains, want)
	}
	for _, n := range c.Nodes {
		if len(n.Hooks) == 3 {
			if n.Hits != 2 || len(n.Steps) != 2 || n.Steps[0].From != "tp:a" || n.Steps[1].To != "tp:c" || n.Steps[0].Latency.Max() != 1000 {
				t.Errorf("chain %+v", n)
			}
			if n.Label() != "a … c" {
				t.Errorf("chain label %q", n.Label())
			}
		}
	}
	// A path that starts inside the chain keeps it apart.
	b.Add(packet(5, "b", "c", "d"))
	c = Collapse(b.Graph())
	for _, n := range c.Nodes {
		if len(n.Hooks) > 1 && slices.Contains(n.Hooks, "tp:a") {
			t.Errorf("a merged with %v though a path starts at b", n.Hooks)
		}
	}
	if p := Prune(g, 2); len(p.Edges) == 0 || p.Pruned == 0 {
		t.Errorf("prune: %d edges, %d pruned", len(p.Edges), p.Pruned)
	} else {
		for _, e := range p.Edges {
			if e.Count < 2 || e.From >= len(p.Nodes) || e.To >= len(p.Nodes) {
				t.Errorf("pruned graph keeps %+v", e)
			}
		}
	}
}

func TestLatencyQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var l Latency
	var vals []int64
	for range 10000 {
		v := int64(math.Exp(r.Float64() * 20))
		vals = append(vals, v)
		l.Add(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.1, 0.5, 0.9, 0.99} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := l.Quantile(q)
		if got > exact || float64(got) < float64(exact)*0.87 {
			t.Errorf("q%.2f = %d, exact %d", q, got, exact)
		}
	}
	if l.Max() != vals[len(vals)-1] || l.Count() != 10000 {
		t.Errorf("max %d count %d", l.Max(), l.Count())
	}
	var big Latency
	big.Add(math.MaxInt64)
	big.Add(-5)
	if q := big.Quantile(1); q > math.MaxInt64 || float64(q) < 0.87*math.MaxInt64 || big.Quantile(0) != 0 || big.Max() != math.MaxInt64 {
		t.Errorf("extremes: %d %d", big.Quantile(1), big.Quantile(0))
	}
}

func TestLayout(t *testing.T) {
	for _, file := range recordings(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			g, _ := analyze(t, file)
			for _, gr := range []*Graph{g, Collapse(g)} {
				checkLayout(t, NewLayout(gr))
			}
		})
	}
}

func checkLayout(t *testing.T, l *Layout) {
	t.Helper()
	g := l.Graph
	for i, b := range l.Boxes {
		if b.X < 0 || b.Y < 0 || b.X+b.W > l.Width+0.01 || b.Y+b.H > l.Height+0.01 || b.W <= 0 || b.H <= 0 {
			t.Errorf("node %d at %+v outside %gx%g", i, b, l.Width, l.Height)
		}
		for j := range i {
			c := l.Boxes[j]
			if b.X < c.X+c.W && c.X < b.X+b.W && b.Y < c.Y+c.H && c.Y < b.Y+b.H {
				t.Errorf("nodes %d %+v and %d %+v overlap", i, b, j, c)
			}
		}
		if n := &g.Nodes[i]; n.Kind == Hop {
			lb := l.Lanes[n.Lane]
			if b.X < lb.X || b.X+b.W > lb.X+lb.W {
				t.Errorf("node %d %+v outside its lane %+v", i, b, lb)
			}
		} else if b.Y < l.LanesBottom {
			t.Errorf("sink %d at %+v above the lanes' bottom %g", i, b, l.LanesBottom)
		}
	}
	for i, e := range g.Edges {
		r := l.Routes[i]
		if !r.Back && l.Boxes[e.To].Y <= l.Boxes[e.From].Y {
			t.Errorf("edge %d -> %d goes up but is not back", e.From, e.To)
		}
		if !strings.HasPrefix(r.D, "M") || strings.Contains(r.D, "NaN") || strings.Contains(r.D, "Inf") {
			t.Errorf("edge %d: path %q", i, r.D)
		}
	}
}

// svgDoc is what the tests read of an SVG drawing.
type svgDoc struct {
	ids    map[string]bool
	nodes  map[string]map[string]string // id -> attributes
	edges  []map[string]string
	titles []string
	text   string
}

// parseSVG parses an SVG drawing with encoding/xml, failing on anything
// that is not well-formed.
func parseSVG(t *testing.T, b []byte) svgDoc {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	doc := svgDoc{ids: map[string]bool{}, nodes: map[string]map[string]string{}}
	var stack []string
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			stack = append(stack, tok.Name.Local)
			attrs := map[string]string{}
			for _, a := range tok.Attr {
				attrs[a.Name.Local] = a.Value
			}
			if id := attrs["id"]; id != "" {
				if doc.ids[id] {
					t.Errorf("id %q twice", id)
				}
				doc.ids[id] = true
			}
			class := " " + attrs["class"] + " "
			switch {
			case tok.Name.Local == "g" && strings.Contains(class, " node "):
				doc.nodes[attrs["id"]] = attrs
			case tok.Name.Local == "g" && strings.Contains(class, " edge "):
				doc.edges = append(doc.edges, attrs)
			}
			if tok.Name.Local == "svg" && tok.Name.Space != "http://www.w3.org/2000/svg" {
				t.Errorf("svg element in namespace %q", tok.Name.Space)
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 && stack[len(stack)-1] == "title" {
				doc.titles = append(doc.titles, string(tok))
			}
			text.Write(tok)
		}
	}
	doc.text = text.String()
	return doc
}

func TestSVG(t *testing.T) {
	for _, file := range recordings(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			g, _ := analyze(t, file)
			g = Auto(g)
			svg := AppendSVG(nil, NewLayout(g), SVGOptions{Standalone: true, IDPrefix: "x"})
			doc := parseSVG(t, svg)
			if len(doc.nodes) != len(g.Nodes) || len(doc.edges) != len(g.Edges) {
				t.Fatalf("%d nodes and %d edges drawn, graph has %d and %d", len(doc.nodes), len(doc.edges), len(g.Nodes), len(g.Edges))
			}
			for i, n := range g.Nodes {
				a := doc.nodes[fmt.Sprintf("x-n%d", i)]
				if a == nil {
					t.Fatalf("node %d not drawn", i)
				}
				if a["data-label"] != n.Label() {
					t.Errorf("node %d: label %q, want %q", i, a["data-label"], n.Label())
				}
				want := n.Hits
				if n.Kind == Sink {
					want = n.Packets + n.Clones
				}
				if a["data-count"] != fmt.Sprint(want) {
					t.Errorf("node %d: count %s, want %d", i, a["data-count"], want)
				}
			}
			for i, a := range doc.edges {
				e := g.Edges[i]
				if a["data-from"] != fmt.Sprintf("x-n%d", e.From) || a["data-to"] != fmt.Sprintf("x-n%d", e.To) || a["data-count"] != fmt.Sprint(e.Count) {
					t.Errorf("edge %d drawn as %v, is %+v", i, a, e)
				}
				if !doc.ids[a["data-from"]] || !doc.ids[a["data-to"]] {
					t.Errorf("edge %d joins nodes that are not drawn", i)
				}
			}
			for _, l := range g.Lanes {
				dev, _ := placeTitle(l.Place)
				if !strings.Contains(doc.text, clip(dev, 48)) {
					t.Errorf("lane %q has no title", dev)
				}
			}
		})
	}
}

// hostile are names a recording may hold: markup, quotes, control bytes,
// invalid UTF-8.
var hostile = []string{
	`<script>alert(1)</script>`, `a"b&c'd<e>`, "\xff\xfe bad utf-8 \xc3", "ctl\x00\x01\x1b[31m\x7f",
	"]]><!--", `\N\G\l "dot" {}; -> n0`, "\u2028\u2029 \ufffe \U0001F600", "</svg><svg onload=alert(1)>",
}

func hostilePackets() []*paths.Packet {
	var out []*paths.Packet
	for i, s := range hostile {
		p := &paths.Packet{ID: uint64(i + 1), HasMeta: true}
		h1 := hop(0, "net_dev_queue", s, uint32(i))
		h1.NSName = s
		h2 := hop(1000, s, s, uint32(i))
		h2.Meta.Kind = s
		h3 := hop(2000, "kfree_skb", s, uint32(i))
		h3.Meta.HasDrop, h3.Meta.Reason, h3.Meta.Location = true, s, s+"+0x1"
		p.Hops = []paths.Hop{h1, h2, h3}
		p.Hops[0].Flow = paths.Flow{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Proto: 17}
		p.Finish()
		out = append(out, p)
	}
	return out
}

func TestHostileNames(t *testing.T) {
	b := NewBuilder()
	for _, p := range hostilePackets() {
		b.Add(p)
	}
	g := b.Graph()
	svg := AppendSVG(nil, NewLayout(g), SVGOptions{Standalone: true})
	doc := parseSVG(t, svg)
	if !utf8.Valid(svg) {
		t.Error("SVG is not valid UTF-8")
	}
	low := strings.ToLower(string(svg))
	for _, bad := range []string{"<script", "<svg onload", "<!--", "]]>"} {
		if strings.Contains(low, bad) {
			t.Errorf("SVG holds %q", bad)
		}
	}
	if !strings.Contains(doc.text, "<script>alert(1)</script>") {
		t.Error("the markup name is not shown as text")
	}
	dot := AppendDOT(nil, g)
	if !utf8.Valid(dot) {
		t.Error("DOT is not valid UTF-8")
	}
	dotAccepts(t, dot)
}

// dotAccepts runs Graphviz's dot -Tsvg on a DOT text and returns its SVG.
func dotAccepts(t *testing.T, dot []byte) []byte {
	t.Helper()
	bin := testenv.RequireTool(t, "dot")
	cmd := exec.Command(bin, "-Tsvg")
	cmd.Stdin = bytes.NewReader(dot)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("dot -Tsvg: %v\n%s\n%s", err, stderr.String(), dot)
	}
	return out.Bytes()
}

func TestDOTGraphviz(t *testing.T) {
	for _, file := range recordings(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			g, _ := analyze(t, file)
			for _, gr := range []*Graph{g, Collapse(g)} {
				dot := AppendDOT(nil, gr)
				svg := dotAccepts(t, dot)
				doc := parseSVG(t, svg)
				if len(doc.nodes) != len(gr.Nodes) || len(doc.edges) != len(gr.Edges) {
					t.Errorf("dot drew %d nodes and %d edges, graph has %d and %d", len(doc.nodes), len(doc.edges), len(gr.Nodes), len(gr.Edges))
				}
			}
		})
	}
}

func FuzzAppendXML(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := append([]byte("<t a=\""), appendXML(nil, s)...)
		b = append(b, "\">"...)
		b = appendXML(b, s)
		b = append(b, "</t>"...)
		d := xml.NewDecoder(bytes.NewReader(b))
		var attr, text string
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%q gives %q: %v", s, b, err)
			}
			switch tok := tok.(type) {
			case xml.StartElement:
				attr = tok.Attr[0].Value
			case xml.CharData:
				text += string(tok)
			}
		}
		if attr != text {
			t.Errorf("%q: attribute %q, text %q", s, attr, text)
		}
		clean := true
		for _, r := range s {
			if r == utf8.RuneError || r < 0x20 && r != '\n' || r >= 0x7f && r < 0xa0 || r == 0xfffe || r == 0xffff {
				clean = false
			}
		}
		if clean && utf8.ValidString(s) && text != s {
			t.Errorf("%q came back as %q", s, text)
		}
	})
}

// TestLayoutBounded lays out a graph at the builder's limits: one path
// through 1,000 distinct functions (1,000 layers) and thousands of short
// paths whose edges to their outcome cross all of them. The bend points
// are bounded, and so are time and size.
func TestLayoutBounded(t *testing.T) {
	b := NewBuilder()
	var long []string
	for i := range 1000 {
		long = append(long, fmt.Sprintf("deep_function_%d", i))
	}
	b.Add(packet(1, long...))
	for i := range 5000 {
		b.Add(packet(uint64(i+2), fmt.Sprintf("short_%d", i)))
	}
	g := b.Graph()
	if !g.Other || g.HopNodes() > maxNodes+1 {
		t.Errorf("%d hop nodes, other %v", g.HopNodes(), g.Other)
	}
	l := NewLayout(g)
	if l.Layers < 1000 {
		t.Errorf("%d layers", l.Layers)
	}
	bends := 0
	for _, r := range l.Routes {
		bends += strings.Count(r.D, "C") - 1
	}
	if bends > maxBends {
		t.Errorf("%d bend points, limit %d", bends, maxBends)
	}
	svg := AppendSVG(nil, l, SVGOptions{})
	parseSVG(t, svg)
	t.Logf("%d nodes, %d edges, %d bends, %d layers, %.0fx%.0f, %d bytes of SVG", len(g.Nodes), len(g.Edges), bends, l.Layers, l.Width, l.Height, len(svg))
}
