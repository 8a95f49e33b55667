package htmlreport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/html"

	"github.com/pathcap/pathcap/internal/pagecheck"
	"github.com/pathcap/pathcap/internal/testrec"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/paths"
	"github.com/pathcap/pathcap/paths/render"
)

func recordings(t *testing.T) []string {
	t.Helper()
	recs, _ := filepath.Glob(testrec.Recording(t, "*.pcapng"))
	if len(recs) == 0 {
		t.Fatal("no recordings in testdata/recordings")
	}
	return append(recs, testrec.Crafted(t, "scenario.pcapng"), testrec.Crafted(t, "stacks.pcapng"), testrec.Crafted(t, "other-host.pcapng"))
}

// run builds a report of the files and, apart, their summary; it returns
// the page and the statistics JSON of the summary.
func run(t *testing.T, opts Options, files ...string) ([]byte, []byte) {
	t.Helper()
	in, err := paths.Open(files)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	r := New(opts)
	sum := paths.NewSummary()
	sum.DropStacks = opts.DropStacks
	if err := paths.Process(in, paths.Options{}, nil, func(p *paths.Packet) error {
		r.Add(p)
		sum.Add(p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var page bytes.Buffer
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	top := opts.TopPaths
	if top == 0 {
		top = 10
	}
	return page.Bytes(), render.AppendSummaryJSON(nil, sum, top)
}

func parse(t *testing.T, page []byte) *html.Node {
	t.Helper()
	doc, err := pagecheck.Parse(page)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func sameJSON(t *testing.T, what string, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s differs:\n got %s\nwant %s", what, got, want)
	}
}

// TestPageShowsTheStatistics checks, on every recording, that the page
// embeds the statistics of a summary made apart, and that every figure it
// shows is one of them, and every one of them is shown.
func TestPageShowsTheStatistics(t *testing.T) {
	for _, file := range recordings(t) {
		for _, opts := range []Options{{}, {TopPaths: 3, DropStacks: 2}} {
			t.Run(fmt.Sprintf("%s/top%d-stacks%d", filepath.Base(file), opts.TopPaths, opts.DropStacks), func(t *testing.T) {
				page, stats := run(t, opts, file)
				if !utf8.Valid(page) {
					t.Error("page is not UTF-8")
				}
				doc := parse(t, page)
				embedded, ok := pagecheck.Embedded(doc, "pathcap-stats")
				if !ok {
					t.Fatal("no embedded statistics")
				}
				sameJSON(t, "embedded statistics", embedded, stats)
				shown := pagecheck.Stats(doc)
				if len(shown) < 10 {
					t.Fatalf("only %d figures on the page", len(shown))
				}
				for _, p := range pagecheck.Compare(stats, shown) {
					t.Error(p)
				}
				packets, ok := pagecheck.Embedded(doc, "pathcap-packets")
				if !ok || !json.Valid(packets) {
					t.Fatalf("explorer data missing or not JSON: %.200s", packets)
				}
			})
		}
	}
}

// TestCompareFindsDifferences makes sure the comparison can fail.
func TestCompareFindsDifferences(t *testing.T) {
	page, stats := run(t, Options{}, testrec.Recording(t, "host-veth.pcapng"))
	shown := pagecheck.Stats(parse(t, page))
	if p := pagecheck.Compare(stats, shown); len(p) != 0 {
		t.Fatalf("unchanged page: %v", p)
	}
	changed := append([]pagecheck.Stat(nil), shown...)
	changed[0].Value += "1"
	if p := pagecheck.Compare(stats, changed); len(p) == 0 {
		t.Error("a changed value went unnoticed")
	}
	if p := pagecheck.Compare(stats, shown[1:]); len(p) == 0 {
		t.Error("a missing figure went unnoticed")
	}
	changed = append([]pagecheck.Stat(nil), shown...)
	for i := range changed {
		if strings.HasSuffix(changed[i].Path, "p50_ns") {
			changed[i].Text = "1.0s"
			break
		}
	}
	if p := pagecheck.Compare(stats, changed); len(p) == 0 {
		t.Error("a wrong latency text went unnoticed")
	}
}

// hostile are names a recording may hold.
var hostile = []string{
	`</script><script>alert(1)</script>`, `<img src=x onerror=alert(1)>`, `a"b&c'd`, "\xff\xfe bad \xc3",
	"ctl\x00\x01\x7f", "\u2028\u2029", "<!--", `{{.Title}}`, "</style><style>body{display:none}",
}

func hostilePackets() []*paths.Packet {
	var out []*paths.Packet
	for i, s := range hostile {
		p := &paths.Packet{ID: uint64(i + 1), HasMeta: true, Children: []uint64{uint64(100 + i)}}
		mk := func(t int64, hook string) paths.Hop {
			h := paths.Hop{Time: 1_000_000_000 + int64(i)*1000 + t, NSName: s,
				Meta: &kmeta.Event{Kind: kmeta.KindTracepoint, Hook: hook, Dev: s, NetNS: uint32(i + 1), Comm: s, Len: 60}}
			h.Flow = paths.Flow{EtherType: 0x0800, Proto: 17, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: 1, DstPort: 2, HasPorts: true}
			return h
		}
		h3 := mk(300, "kfree_skb")
		h3.Meta.HasDrop, h3.Meta.Reason, h3.Meta.Location = true, s, s+"+0x1"
		p.Hops = []paths.Hop{mk(0, "net_dev_queue"), mk(100, s), h3}
		p.Finish()
		c := &paths.Packet{ID: uint64(100 + i), Parent: p.ID, Attached: true, HasMeta: true, Hops: []paths.Hop{mk(150, s), mk(200, "consume_skb")}}
		c.Finish()
		out = append(out, p, c)
	}
	return out
}

func TestHostileNames(t *testing.T) {
	r := New(Options{DropStacks: 2, Inputs: []string{hostile[0]}, Version: hostile[1]})
	for _, p := range hostilePackets() {
		r.Add(p)
	}
	var page bytes.Buffer
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	doc := parse(t, page.Bytes())
	scripts := pagecheck.Find(doc, func(n *html.Node) bool { return n.Data == "script" })
	if len(scripts) != 3 {
		t.Errorf("%d script elements, want 3 (two data blocks and the page's script)", len(scripts))
	}
	for _, n := range scripts {
		typ, _ := pagecheck.Attr(n, "type")
		if id, _ := pagecheck.Attr(n, "id"); typ == "application/json" && !json.Valid([]byte(pagecheck.Text(n))) {
			t.Errorf("data block %s is not JSON", id)
		}
	}
	for _, tag := range []string{"img", "iframe"} {
		if n := pagecheck.Find(doc, func(n *html.Node) bool { return n.Data == tag }); len(n) > 0 {
			t.Errorf("a recording's name made a <%s> element", tag)
		}
	}
	if n := pagecheck.Find(doc, func(n *html.Node) bool { return n.Data == "style" }); len(n) != 1 {
		t.Errorf("%d style elements, want 1", len(n))
	}
	// Every name shows as text: in the graph, the drop tables, the
	// explorer's data.
	body := pagecheck.Text(doc)
	for _, s := range []string{`</script><script>alert(1)</script>`, `<img src=x onerror=alert(1)>`, `a"b&c'd`} {
		if !strings.Contains(body, s) {
			t.Errorf("%q is not shown as text", s)
		}
	}
	// The graph is well-formed.
	svgs := pagecheck.Find(doc, func(n *html.Node) bool { return n.Data == "svg" && pagecheck.HasClass(n, "pathcap-graph") })
	if len(svgs) == 0 {
		t.Fatal("no graph")
	}
}

// TestSampling checks the explorer's sample of a large input: bounded,
// with every class, the slowest packets and the clones of the packets it
// holds, and a note that says so.
func TestSampling(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const max = 300
	r := New(Options{MaxPackets: max})
	var id uint64
	classes := map[string]int{}
	var slowest []uint64
	for i := range 20000 {
		id++
		hooks := []string{"net_dev_queue", "net_dev_start_xmit", "netif_receive_skb", "consume_skb"}
		reason := ""
		switch n := rng.IntN(100); {
		case n < 5:
			reason = "NO_SOCKET"
		case n == 5:
			reason = "RARE"
		}
		t0 := int64(i) * 10_000
		p := &paths.Packet{ID: id, HasMeta: true}
		for j, h := range hooks {
			dt := int64(j) * 500
			if i%1000 == 999 {
				dt *= 100 // the slowest
			}
			hop := paths.Hop{Time: t0 + dt, Meta: &kmeta.Event{Kind: kmeta.KindTracepoint, Hook: h, Dev: "eth0", NetNS: 1}}
			if h == "consume_skb" && reason != "" {
				hop.Meta.Hook, hop.Meta.HasDrop, hop.Meta.Reason = "kfree_skb", true, reason
			}
			p.Hops = append(p.Hops, hop)
		}
		if i%1000 == 999 {
			slowest = append(slowest, id)
		}
		withClone := i%10 == 0
		if withClone {
			p.Children = []uint64{id + 1}
		}
		p.Finish()
		classes[className(&p.Outcome)]++
		r.Add(p)
		if withClone {
			id++
			c := &paths.Packet{ID: id, Parent: p.ID, Attached: true, HasMeta: true, Hops: []paths.Hop{
				{Time: t0 + 100, Meta: &kmeta.Event{Kind: kmeta.KindTracepoint, Hook: "skb_copy_datagram_iovec", Dev: "eth0", NetNS: 1}},
				{Time: t0 + 200, Meta: &kmeta.Event{Kind: kmeta.KindTracepoint, Hook: "consume_skb", Dev: "eth0", NetNS: 1}}}}
			c.Finish()
			r.Add(c)
		}
		held := 0
		for _, c := range r.sample.classes {
			held += len(c.units)
		}
		if held > 2*max {
			t.Fatalf("after %d packets the sample holds %d", i+1, held)
		}
	}
	page, _ := renderPage(t, r)
	doc := parse(t, page)
	data, _ := pagecheck.Embedded(doc, "pathcap-packets")
	var ex struct {
		Packets uint64 `json:"packets"`
		Shown   int    `json:"shown"`
		List    []struct {
			ID       uint64   `json:"id"`
			Children []uint64 `json:"children"`
			Class    string   `json:"class"`
			Slow     bool     `json:"slow"`
			Clones   []struct {
				ID     uint64 `json:"id"`
				Parent uint64 `json:"parent"`
			} `json:"clones"`
		} `json:"list"`
	}
	if err := json.Unmarshal(data, &ex); err != nil {
		t.Fatal(err)
	}
	if ex.Packets != 20000 || ex.Shown != len(ex.List) || len(ex.List) > max+maxSlow || len(ex.List) < max {
		t.Errorf("%d packets, %d shown, %d listed (max %d + %d slowest)", ex.Packets, ex.Shown, len(ex.List), max, maxSlow)
	}
	got := map[string]int{}
	slow := map[uint64]bool{}
	for _, p := range ex.List {
		got[p.Class]++
		if p.Slow {
			slow[p.ID] = true
		}
		for _, c := range p.Clones {
			if c.Parent != p.ID || len(p.Children) == 0 || p.Children[0] != c.ID {
				t.Errorf("packet %d holds clone %d of %d", p.ID, c.ID, c.Parent)
			}
		}
		if len(p.Children) > 0 && len(p.Clones) != 1 {
			t.Errorf("packet %d without its clone", p.ID)
		}
	}
	for name, n := range classes {
		if got[name] == 0 {
			t.Errorf("class %s (%d packets) not in the sample", name, n)
		}
		if n < max/3 && got[name] != n {
			t.Errorf("class %s: %d of its %d packets, want all (a small class keeps all)", name, got[name], n)
		}
	}
	for _, id := range slowest {
		if !slow[id] {
			t.Errorf("slow packet %d not marked as one of the slowest", id)
		}
	}
	if !bytes.Contains(page, []byte("Sampled:")) {
		t.Error("no note that the packets are sampled")
	}
}

func renderPage(t *testing.T, r *Report) ([]byte, *html.Node) {
	t.Helper()
	var page bytes.Buffer
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	return page.Bytes(), parse(t, page.Bytes())
}

// TestPageSize checks that the page keeps to its size by holding fewer
// packets.
func TestPageSize(t *testing.T) {
	file := testrec.Recording(t, "host-veth-stacks.pcapng")
	full, _ := run(t, Options{}, file)
	packets, _ := pagecheck.Embedded(parse(t, full), "pathcap-packets")
	limit := len(full) - len(packets)/2
	page, stats := run(t, Options{MaxBytes: limit}, file)
	if len(page) > limit {
		t.Errorf("page of %d bytes, limit %d", len(page), limit)
	}
	doc := parse(t, page)
	var ex struct {
		Packets uint64 `json:"packets"`
		Shown   int    `json:"shown"`
	}
	data, _ := pagecheck.Embedded(doc, "pathcap-packets")
	if err := json.Unmarshal(data, &ex); err != nil {
		t.Fatal(err)
	}
	if ex.Shown == 0 || uint64(ex.Shown) >= ex.Packets {
		t.Errorf("%d of %d packets shown in a page cut to %d bytes", ex.Shown, ex.Packets, limit)
	}
	if !bytes.Contains(page, []byte("Sampled:")) {
		t.Error("no note that the packets are sampled")
	}
	for _, p := range pagecheck.Compare(stats, pagecheck.Stats(doc)) {
		t.Error(p)
	}
}

func TestDeterministic(t *testing.T) {
	file := testrec.Recording(t, "vm-6.1-kprobe.pcapng")
	a, _ := run(t, Options{MaxPackets: 10}, file)
	b, _ := run(t, Options{MaxPackets: 10}, file)
	if !bytes.Equal(a, b) {
		t.Error("two pages of the same input differ")
	}
}

func TestSeries(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 50 {
		s := newSeries("a", "b")
		var times []int64
		base := rng.Int64N(1 << 60)
		spread := int64(1) << rng.IntN(45)
		for range 1000 {
			tm := base + rng.Int64N(spread)
			times = append(times, tm)
			s.add(tm, rng.IntN(2))
		}
		if s.n > maxBuckets || s.n < 1 {
			t.Fatalf("round %d: %d buckets", round, s.n)
		}
		if s.total(0)+s.total(1) != 1000 {
			t.Fatalf("round %d: %d counted", round, s.total(0)+s.total(1))
		}
		counts := make([]uint64, s.n)
		for _, tm := range times {
			i := int((tm >> s.shift) - s.lo)
			if i < 0 || i >= s.n || s.start(i) > tm || s.start(i+1) <= tm {
				t.Fatalf("round %d: time %d not in bucket %d [%d, %d)", round, tm, i, s.start(i), s.start(i+1))
			}
			counts[i]++
		}
		for i := range counts {
			if counts[i] != s.rows[0][i]+s.rows[1][i] {
				t.Fatalf("round %d: bucket %d holds %d, want %d", round, i, s.rows[0][i]+s.rows[1][i], counts[i])
			}
		}
	}
	s := newSeries()
	for i := range 40 {
		s.row(fmt.Sprint("r", i))
	}
	if len(s.rows) != maxRows {
		t.Errorf("%d rows, want at most %d", len(s.rows), maxRows)
	}
}

// TestGraphBudget checks that a graph too big for the page loses its
// whole variant, then its rare edges, and says so.
func TestGraphBudget(t *testing.T) {
	file := testrec.Recording(t, "vm-6.12-kprobe-multi.pcapng")
	page, stats := run(t, Options{MaxBytes: 500_000}, file)
	doc := parse(t, page)
	views := pagecheck.Find(doc, func(n *html.Node) bool { return pagecheck.HasClass(n, "graph-view") })
	if len(views) != 1 {
		t.Errorf("%d drawings of the graph, want 1", len(views))
	}
	if !bytes.Contains(page, []byte("To keep the page small, edges taken fewer than")) {
		t.Error("no note that rare edges were left out")
	}
	for _, p := range pagecheck.Compare(stats, pagecheck.Stats(doc)) {
		t.Error(p)
	}
	whole, _ := run(t, Options{}, file)
	if views := pagecheck.Find(parse(t, whole), func(n *html.Node) bool { return pagecheck.HasClass(n, "graph-view") }); len(views) != 2 {
		t.Errorf("%d drawings of the graph in a page of default size, want 2 (chains merged, every hook)", len(views))
	}
}

func TestDecade(t *testing.T) {
	for d, want := range []string{"1ns", "10ns", "100ns", "1µs", "10µs", "100µs", "1ms", "10ms", "100ms", "1s", "10s", "100s", "1000s"} {
		if got := decade(d); got != want {
			t.Errorf("decade(%d) = %q, want %q", d, got, want)
		}
	}
}

// TestTimeChart checks that a chart's bars hold every event once, within
// the axis, and that a constant rate gives bars of equal height (whole
// buckets per bar).
func TestTimeChart(t *testing.T) {
	s := newSeries("x")
	const first, n = int64(1_000_000_000_000), 100_000
	for i := range int64(n) {
		s.add(first+i*7_000, 0) // one event every 7 µs
	}
	last := first + (n-1)*7_000
	svg, legend := timeChart(s, []int{0}, []string{"#000"}, first, last, "events")
	if len(legend) != 1 || legend[0].Total != n {
		t.Errorf("legend %+v", legend)
	}
	doc, err := pagecheck.Parse([]byte(svg))
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	var counts []uint64
	for _, title := range pagecheck.Find(doc, func(n *html.Node) bool { return n.Data == "title" }) {
		text := pagecheck.Text(title)
		var c uint64
		i := strings.Index(text, ": ")
		fmt.Sscan(strings.ReplaceAll(text[i+2:], ",", ""), &c)
		sum += c
		counts = append(counts, c)
	}
	if sum != n {
		t.Errorf("bars hold %d events, want %d", sum, n)
	}
	if len(counts) > chartBins || len(counts) < chartBins/2 {
		t.Errorf("%d bars", len(counts))
	}
	// Bars between the first and the last hold the same number, within
	// one bucket's worth.
	inner := counts[1 : len(counts)-1]
	lo, hi := inner[0], inner[0]
	for _, c := range inner {
		lo, hi = min(lo, c), max(hi, c)
	}
	if float64(hi-lo) > 0.02*float64(hi) {
		t.Errorf("a constant rate gives bars of %d to %d events", lo, hi)
	}
	for _, r := range pagecheck.Find(doc, func(n *html.Node) bool { return n.Data == "rect" }) {
		x, _ := pagecheck.Attr(r, "x")
		var v float64
		fmt.Sscan(x, &v)
		if v < 52 || v > 960-8 {
			t.Errorf("bar at x %s outside the axis", x)
		}
	}
}

// TestPageBoundedOnHugeGraph checks the page's size when the graph is at
// the builder's limits.
func TestPageBoundedOnHugeGraph(t *testing.T) {
	r := New(Options{})
	mk := func(id uint64, hooks ...string) *paths.Packet {
		p := &paths.Packet{ID: id, HasMeta: true}
		for i, h := range hooks {
			p.Hops = append(p.Hops, paths.Hop{Time: int64(id)*1_000_000 + int64(i)*100, Meta: &kmeta.Event{Kind: kmeta.KindTracepoint, Hook: h, Dev: "eth0", NetNS: 1}})
		}
		p.Finish()
		return p
	}
	var long []string
	for i := range 1000 {
		long = append(long, fmt.Sprintf("deep_function_%d", i))
	}
	r.Add(mk(1, long...))
	for i := range 5000 {
		r.Add(mk(uint64(i+2), fmt.Sprintf("short_%d", i)))
	}
	page, doc := renderPage(t, r)
	if len(page) > 9_500_000 {
		t.Errorf("page of %d bytes", len(page))
	}
	if !bytes.Contains(page, []byte("To keep the page small")) {
		t.Error("no note that the graph was cut")
	}
	if len(pagecheck.Find(doc, func(n *html.Node) bool { return pagecheck.HasClass(n, "graph-view") })) == 0 {
		t.Error("no graph")
	}
	t.Logf("page of %d bytes", len(page))
}
