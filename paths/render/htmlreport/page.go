package htmlreport

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/paths"
	"github.com/pathcap/pathcap/paths/render"
	"github.com/pathcap/pathcap/paths/render/graph"
)

var (
	//go:embed assets/page.html
	pageSource string
	//go:embed assets/style.css
	styleCSS string
	//go:embed assets/app.js
	appJS string

	pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
		"num":    statNum,
		"plain":  statPlain,
		"u64":    toU64,
		"dur":    statDur,
		"str":    statStr,
		"ts":     statTime,
		"group":  graph.GroupDigits,
		"pct":    pct,
		"fmtdur": render.FormatDuration,
		"hops":   func(path string) string { return strings.ReplaceAll(path, ">", " › ") },
	}).Parse(pageSource))
)

// Statistics on the page are elements with data-stat (the field's path in
// the statistics JSON: "outcomes.dropped", "drops.0.locations.1.count")
// and data-value (its value there), their text the value as shown.

func statNum(path string, v uint64) template.HTML {
	return template.HTML(`<span class="n" data-stat="` + esc(path) + `" data-value="` + strconv.FormatUint(v, 10) + `">` + graph.GroupDigits(v) + `</span>`)
}

// statPlain is statNum without thousands separators (for identifiers).
func statPlain(path string, v uint64) template.HTML {
	return template.HTML(`<span class="n" data-stat="` + esc(path) + `" data-value="` + strconv.FormatUint(v, 10) + `">` + strconv.FormatUint(v, 10) + `</span>`)
}

// toU64 converts the integers the template shows.
func toU64(v any) uint64 {
	switch v := v.(type) {
	case int:
		return uint64(max(v, 0))
	case uint32:
		return uint64(v)
	case uint64:
		return v
	}
	return 0
}

func statDur(path string, ns int64) template.HTML {
	return template.HTML(`<span class="d" data-stat="` + esc(path) + `" data-value="` + strconv.FormatInt(ns, 10) + `">` + esc(render.FormatDuration(ns)) + `</span>`)
}

// statStr shows a string, or empty when it is "".
func statStr(path, v, empty string) template.HTML {
	shown, class := v, "s"
	if v == "" {
		shown, class = empty, "s none"
	}
	return template.HTML(`<span class="` + class + `" data-stat="` + esc(path) + `" data-value="` + esc(v) + `" title="` + esc(v) + `">` + esc(shown) + `</span>`)
}

func statTime(path string, ns int64) template.HTML {
	return template.HTML(`<span class="t" data-stat="` + esc(path) + `" data-value="` + strconv.FormatInt(ns, 10) + `">` + esc(wallTime(ns)) + `</span>`)
}

func wallTime(ns int64) string {
	if ns == 0 {
		return "—"
	}
	return time.Unix(0, ns).UTC().Format("2006-01-02 15:04:05.000000 UTC")
}

func pct(n, of uint64) string {
	if of == 0 {
		return "0%"
	}
	p := 100 * float64(n) / float64(of)
	if p > 0 && p < 0.1 {
		return "<0.1%"
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + "%"
}

// The page's view of the data.
type (
	page struct {
		Title    string
		Inputs   []string
		Version  string
		Style    template.CSS
		S        *render.SummaryJSON
		Span     string
		Outcomes []kindCount
		Via      []kindCount
		CloneOut []kindCount
		Bar      []barPart

		Graphs    []graphView
		GraphNote string

		DropTotal     uint64
		Drops         []dropView
		DropsChart    template.HTML
		DropsLegend   []legendItem
		OutcomeChart  template.HTML
		OutcomeLegend []legendItem
		PlaceDrops    []placeDropView
		HasStacks     bool

		Latency []latencyView
		LatAxis template.HTML
		Slow    []slowView

		Paths   []pathView
		Devices []deviceView

		Sample  sampleView
		Scripts template.HTML
	}
	kindCount struct {
		Kind  string
		Count uint64
		Pct   string
	}
	barPart struct {
		Kind  string
		Color string
		Width string
		Title string
	}
	graphView struct {
		ID, Name string
		SVG      template.HTML
		Hidden   bool
		Nodes    int
		Edges    int
		Hooks    int
	}
	dropView struct {
		I         int
		D         *render.DropJSON
		Pct       string
		Color     string
		StackLost uint64
	}
	placeDropView struct {
		Reason, Dev, NS string
		Count           uint64
		Pct             string
	}
	latencyView struct {
		I    int
		L    *render.LatencyJSON
		Hist template.HTML
	}
	slowView struct {
		ID              uint64
		Dur             int64
		Kind, Text      string
		Flow, Path      string
		Hops            int
		DurationPercent string
	}
	pathView struct {
		I          int
		P          *render.PathCountJSON
		Pct        string
		Mean, Max  int64
		HasDur     bool
		HopsInPath int
	}
	deviceView struct {
		I int
		D *render.DeviceJSON
	}
	sampleView struct {
		All     bool
		Shown   int
		Total   uint64
		Clones  uint64
		Classes []classCount
		Max     int
	}
)

// WriteHTML writes the page.
func (r *Report) WriteHTML(w io.Writer) error {
	statsJSON := render.AppendSummaryJSON(nil, r.sum, r.opts.TopPaths)
	var st render.SummaryJSON
	if err := json.Unmarshal(statsJSON, &st); err != nil {
		return fmt.Errorf("html report: read back the statistics: %w", err)
	}
	pg, err := r.page(&st)
	if err != nil {
		return err
	}
	var stats bytes.Buffer
	json.HTMLEscape(&stats, bytes.TrimSpace(statsJSON))
	// The page without packets first, to know the room left for them.
	pg.Scripts = scripts(stats.Bytes(), []byte("{}"))
	var body bytes.Buffer
	if err := pageTemplate.Execute(&body, pg); err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	explorer, shown, err := r.explorer(r.opts.MaxBytes - body.Len())
	if err != nil {
		return err
	}
	pg.Sample.Shown = shown
	pg.Sample.All = uint64(shown) == r.sample.seen
	pg.Scripts = scripts(stats.Bytes(), explorer)
	body.Reset()
	if err := pageTemplate.Execute(&body, pg); err != nil {
		return fmt.Errorf("html report: %w", err)
	}
	_, err = w.Write(body.Bytes())
	return err
}

// scripts returns the data blocks and the page's script. The JSON has no
// '<' left (json.HTMLEscape, encoding/json), so no "</script>" can end a
// block early.
func scripts(stats, explorer []byte) template.HTML {
	var b strings.Builder
	b.WriteString(`<script type="application/json" id="pathcap-stats">`)
	b.Write(stats)
	b.WriteString("</script>\n<script type=\"application/json\" id=\"pathcap-packets\">")
	b.Write(explorer)
	b.WriteString("</script>\n<script>\n")
	b.WriteString(appJS)
	b.WriteString("</script>\n")
	return template.HTML(b.String())
}

// explorer returns the explorer's data: the sample's packets that fit in
// room bytes, and their number.
func (r *Report) explorer(room int) ([]byte, int, error) {
	var st stackTable
	var list []json.RawMessage
	var kept []*packetJSON
	used := 200
	stackUsed := map[int]bool{}
	stackSize := func(id int) int {
		n := 12
		for _, f := range st.stacks[id-1].Frames {
			n += len(f) + 3
		}
		return n
	}
	for _, u := range r.sample.choose() {
		pj := u.d.json(r.sum.First, &st)
		pj.Class = r.sample.classes[u.class].name
		pj.Slow = u.inSlow && r.sample.seen > maxSlow
		b, err := marshal(pj)
		if err != nil {
			return nil, 0, fmt.Errorf("html report: packet %d: %w", u.d.id, err)
		}
		ids := stackIDs(pj, nil)
		need := len(b) + 1
		for _, id := range ids {
			if !stackUsed[id] {
				need += stackSize(id)
			}
		}
		if used+need > room {
			continue
		}
		used += need
		for _, id := range ids {
			stackUsed[id] = true
		}
		list = append(list, b)
		kept = append(kept, pj)
	}
	stacks := make(map[int][]string, len(stackUsed))
	for id := range stackUsed {
		stacks[id] = st.stacks[id-1].Frames
	}
	shown := len(kept)
	b, err := marshal(struct {
		First   string            `json:"first"`
		Packets uint64            `json:"packets"`
		Clones  uint64            `json:"clones"`
		Shown   int               `json:"shown"`
		Stacks  map[int][]string  `json:"stacks"`
		List    []json.RawMessage `json:"list"`
	}{strconv.FormatInt(r.sum.First, 10), r.sample.seen, r.sample.clones, shown, stacks, list})
	if err != nil {
		return nil, 0, fmt.Errorf("html report: explorer data: %w", err)
	}
	return b, shown, nil
}

// stackIDs returns the stack numbers a packet and its clones refer to.
func stackIDs(pj *packetJSON, out []int) []int {
	for _, h := range pj.Hops {
		if id := h.([]any)[9].(int); id > 0 && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	for _, c := range pj.Clones {
		out = stackIDs(c, out)
	}
	return out
}

// page builds the view of the data.
func (r *Report) page(st *render.SummaryJSON) (*page, error) {
	pg := &page{S: st, Inputs: r.opts.Inputs, Version: r.opts.Version, Style: template.CSS(styleCSS)}
	pg.Title = "pathcap report"
	if len(r.opts.Inputs) > 0 {
		pg.Title += ": " + strings.Join(r.opts.Inputs, ", ")
	}
	if st.Last > st.First {
		pg.Span = render.FormatDuration(st.Last - st.First)
	}
	pg.Outcomes = kindCounts(st.Outcomes, st.Packets)
	pg.Via = kindCounts(st.ViaClone, 0)
	pg.CloneOut = kindCounts(st.CloneOutcomes, 0)
	for _, k := range pg.Outcomes {
		pg.Bar = append(pg.Bar, barPart{Kind: k.Kind, Color: outcomeColors[k.Kind], Width: strconv.FormatFloat(100*float64(k.Count)/float64(max(st.Packets, 1)), 'f', 3, 64) + "%",
			Title: k.Kind + ": " + graph.GroupDigits(k.Count) + " (" + k.Pct + ")"})
	}
	if err := r.graphs(pg); err != nil {
		return nil, err
	}
	r.dropsView(pg)
	r.latencyView(pg)
	r.pathsView(pg)
	for i := range st.Devices {
		pg.Devices = append(pg.Devices, deviceView{I: i, D: &st.Devices[i]})
	}
	pg.Sample = sampleView{Total: r.sample.seen, Clones: r.sample.clones, Max: r.opts.MaxPackets}
	for _, c := range r.sample.classes {
		n := uint64(0)
		for _, u := range c.units {
			if u.inClass {
				n++
			}
		}
		pg.Sample.Classes = append(pg.Sample.Classes, classCount{Name: c.name, Seen: c.seen, Shown: n})
	}
	return pg, nil
}

// kindCounts lists counts by kind, most first.
func kindCounts(m map[string]uint64, of uint64) []kindCount {
	var out []kindCount
	for k, n := range m {
		out = append(out, kindCount{Kind: k, Count: n, Pct: pct(n, of)})
	}
	slices.SortFunc(out, func(a, b kindCount) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Kind, b.Kind)
	})
	return out
}

// graphs draws the path graph: as the options shape it, and whole when
// that merged chains (unless it is too big to draw).
func (r *Report) graphs(pg *page) error {
	full := r.graph.Graph()
	shaped := full
	switch r.opts.Collapse {
	case "auto":
		shaped = graph.Auto(full)
	case "yes":
		shaped = graph.Collapse(full)
	case "no":
	default:
		return fmt.Errorf("html report: collapse %q: want auto, yes or no", r.opts.Collapse)
	}
	// The drawings may take at most two fifths of the page: past that,
	// the whole graph is left out, then rare edges.
	budget := max(r.opts.MaxBytes*2/5, 1)
	minCount := max(r.opts.MinCount, 1)
	draw := func(g *graph.Graph, id, name string, hidden bool) (graphView, *graph.Graph) {
		g = graph.Prune(g, minCount)
		hooks := 0
		for _, n := range g.Nodes {
			hooks += len(n.Hooks)
		}
		svg := graph.AppendSVG(nil, graph.NewLayout(g), graph.SVGOptions{IDPrefix: id})
		return graphView{ID: id, Name: name, SVG: template.HTML(svg), Hidden: hidden, Nodes: len(g.Nodes), Edges: len(g.Edges), Hooks: hooks}, g
	}
	if len(full.Nodes) == 0 {
		return nil
	}
	mainID, mainName := "gf", "every hook"
	if shaped.Collapsed > 0 {
		mainID, mainName = "gc", "chains merged"
	}
	wholeLeftOut := false
	for {
		main, drawn := draw(shaped, mainID, mainName, false)
		pg.Graphs = []graphView{main}
		size := len(main.SVG)
		wholeLeftOut = shaped.Collapsed > 0
		if shaped.Collapsed > 0 && full.HopNodes() <= 1500 {
			if whole, _ := draw(full, "gf", "every hook", true); size+len(whole.SVG) <= budget {
				pg.Graphs = append(pg.Graphs, whole)
				size += len(whole.SVG)
				wholeLeftOut = false
			}
		}
		if size <= budget || len(drawn.Edges) == 0 {
			break
		}
		minCount *= 2
	}
	pg.GraphNote = ""
	if shaped.Collapsed > 0 {
		pg.GraphNote = graph.GroupDigits(uint64(shaped.Collapsed)) + " hooks that packets always pass in one piece are merged into the node before them (shown as “first … last”; point at one for its hooks and the latency between them)."
	}
	if wholeLeftOut {
		pg.GraphNote += " To keep the page small, the drawing of every hook is left out (analyze graph --collapse no draws it)."
	}
	if minCount > max(r.opts.MinCount, 1) {
		pg.GraphNote += " To keep the page small, edges taken fewer than " + graph.GroupDigits(minCount) + " times are left out."
	}
	if full.Other {
		pg.GraphNote += " The graph reached its limit of distinct hooks or outcomes: the rest are drawn as “(other)”."
	}
	return nil
}

func (r *Report) dropsView(pg *page) {
	st := pg.S
	for _, d := range st.Drops {
		pg.DropTotal += d.Count
	}
	for i := range st.Drops {
		d := &st.Drops[i]
		dv := dropView{I: i, D: d, Pct: pct(d.Count, pg.DropTotal), Color: otherColor}
		if i < len(reasonColors) {
			dv.Color = reasonColors[i]
		}
		if d.StackLost != nil {
			dv.StackLost = *d.StackLost
		}
		if len(d.Stacks) > 0 || dv.StackLost > 0 {
			pg.HasStacks = true
		}
		pg.Drops = append(pg.Drops, dv)
	}
	// Drops over time: the reasons in the order of the table.
	var rows []int
	var colors []string
	for i, d := range st.Drops {
		name := d.Reason
		if name == "" {
			name = "(no reason)"
		}
		if k, ok := r.drops.index[name]; ok && !slices.Contains(rows, k) {
			rows = append(rows, k)
			colors = append(colors, reasonColorAt(i))
		}
	}
	if k, ok := r.drops.index[otherName]; ok {
		rows = append(rows, k)
		colors = append(colors, otherColor)
	}
	pg.DropsChart, pg.DropsLegend = timeChart(r.drops, rows, colors, st.First, st.Last, "dropped")
	rows, colors = nil, nil
	for _, k := range outcomeOrder {
		if i, ok := r.outcomes.index[k.String()]; ok && r.outcomes.total(i) > 0 {
			rows = append(rows, i)
			colors = append(colors, outcomeColors[k.String()])
		}
	}
	pg.OutcomeChart, pg.OutcomeLegend = timeChart(r.outcomes, rows, colors, st.First, st.Last, "packets")
	for k, n := range r.placeDrops {
		dev := k.dev
		if dev == "" {
			dev = "(no device)"
		}
		ns := strconv.FormatUint(uint64(k.netns), 10)
		if name := r.nsNames[k.netns]; name != "" {
			ns = name + " (" + ns + ")"
		}
		if k.reason == otherName {
			ns = ""
		}
		reason := k.reason
		if reason == "" {
			reason = "(no reason)"
		}
		pg.PlaceDrops = append(pg.PlaceDrops, placeDropView{Reason: reason, Dev: dev, NS: ns, Count: n, Pct: pct(n, pg.DropTotal)})
	}
	slices.SortFunc(pg.PlaceDrops, func(a, b placeDropView) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.Dev, b.Dev); c != 0 {
			return c
		}
		if c := strings.Compare(a.NS, b.NS); c != 0 {
			return c
		}
		return strings.Compare(a.Reason, b.Reason)
	})
}

func reasonColorAt(i int) string {
	if i < len(reasonColors) {
		return reasonColors[i]
	}
	return otherColor
}

// maxHistograms is how many latency rows get a drawn distribution.
const maxHistograms = 200

func (r *Report) latencyView(pg *page) {
	hists := map[[2]string]*paths.Histogram{}
	var all []*paths.Histogram
	for _, l := range r.sum.Latencies() {
		hists[[2]string{l.From, l.To}] = l.Hist
		if len(all) < maxHistograms {
			all = append(all, l.Hist)
		}
	}
	scale := newLatencyScale(all)
	pg.LatAxis = scale.axis()
	for i := range pg.S.Latency {
		l := &pg.S.Latency[i]
		lv := latencyView{I: i, L: l}
		if h := hists[[2]string{l.From, l.To}]; h != nil && i < maxHistograms {
			lv.Hist = scale.histogram(h)
		}
		pg.Latency = append(pg.Latency, lv)
	}
	slow := slices.Clone(r.sample.slow)
	slices.SortFunc(slow, func(a, b *unit) int {
		if a.d.dur != b.d.dur {
			if a.d.dur > b.d.dur {
				return -1
			}
			return 1
		}
		return 0
	})
	var longest int64 = 1
	if len(slow) > 0 {
		longest = max(slow[0].d.dur, 1)
	}
	for _, u := range slow {
		d := u.d
		var path strings.Builder
		for i, h := range d.hops {
			if i > 0 {
				path.WriteString(" › ")
			}
			if i == 12 && len(d.hops) > 14 {
				path.WriteString("… " + strconv.Itoa(len(d.hops)-13) + " more › " + d.hops[len(d.hops)-1].name())
				break
			}
			path.WriteString(h.name())
		}
		sv := slowView{ID: d.id, Dur: d.dur, Kind: d.outcome.Kind.String(), Text: render.OutcomeText(&d.outcome), Path: path.String(),
			Hops: len(d.hops) + d.hopsNotKept, DurationPercent: strconv.FormatFloat(100*float64(d.dur)/float64(longest), 'f', 1, 64) + "%"}
		if d.flow.Src.IsValid() {
			sv.Flow = render.FlowText(&d.flow)
		}
		pg.Slow = append(pg.Slow, sv)
	}
}

// name returns the hop's hook name (kmeta.KindCapture without metadata).
func (h *hopDetail) name() string {
	if h.hook == "" {
		return kmeta.KindCapture
	}
	return h.hook
}

func (r *Report) pathsView(pg *page) {
	var total uint64
	for _, c := range pg.S.Outcomes {
		total += c
	}
	total += pg.S.Clones
	for i := range pg.S.Paths {
		p := &pg.S.Paths[i]
		pv := pathView{I: i, P: p, Pct: pct(p.Count, total), HopsInPath: strings.Count(p.Path, ">") + 1}
		if d := r.pathDurs[p.Path]; d != nil && d.n > 0 {
			pv.HasDur, pv.Mean, pv.Max = true, d.sum/int64(d.n), d.max
		}
		pg.Paths = append(pg.Paths, pv)
	}
}
