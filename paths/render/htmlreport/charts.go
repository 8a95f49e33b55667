package htmlreport

import (
	"html"
	"html/template"
	"math"
	"strconv"
	"strings"

	"github.com/pathcap/pathcap/paths"
	"github.com/pathcap/pathcap/paths/render"
	"github.com/pathcap/pathcap/paths/render/graph"
)

// Colours of outcome kinds, and of drop reasons in turn.
var (
	outcomeColors = map[string]string{
		"delivered": "#16a34a", "transmitted": "#2563eb", "consumed": "#0d9488", "dropped": "#dc2626", "unknown": "#d97706",
	}
	reasonColors = []string{"#dc2626", "#f97316", "#a21caf", "#ca8a04", "#be123c", "#7c3aed", "#ea580c", "#db2777", "#65a30d", "#0891b2"}
	otherColor   = "#94a3b8"
)

// f1 formats a coordinate.
func f1(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

// esc escapes text for HTML and SVG (both as text and in attributes),
// with control characters shown as U+FFFD.
func esc(s string) string {
	return html.EscapeString(strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return '\uFFFD'
		}
		return r
	}, s))
}

// legendItem is a row of a chart's legend.
type legendItem struct {
	Name  string
	Color string
	Total uint64
}

// chartBins is the most bars of a time chart.
const chartBins = 100

// timeChart draws rows of a series as stacked bars on a time axis from
// first to last (ns): at most chartBins bars, each a whole number of the
// series' buckets, placed at their times; it returns the drawing and its
// legend.
func timeChart(s *series, rows []int, colors []string, first, last int64, what string) (template.HTML, []legendItem) {
	if s.n == 0 || len(rows) == 0 {
		return "", nil
	}
	per := (s.n + chartBins - 1) / chartBins // buckets per bar
	nbins := (s.n + per - 1) / per
	bins := make([][]uint64, len(rows))
	for k, r := range rows {
		bins[k] = make([]uint64, nbins)
		for i, c := range s.rows[r][:s.n] {
			bins[k][i/per] += c
		}
	}
	const w, h, left, bottom, top = 960.0, 190.0, 52.0, 24.0, 10.0
	pw, ph := w-left-8, h-bottom-top
	span := max(last-first, 1)
	x := func(t int64) float64 { return left + pw*min(max(float64(t-first)/float64(span), 0), 1) }
	totals := make([]uint64, nbins)
	var peak uint64
	for i := range nbins {
		for k := range rows {
			totals[i] += bins[k][i]
		}
		peak = max(peak, totals[i])
	}
	if peak == 0 {
		return "", nil
	}
	var b strings.Builder
	b.WriteString(`<svg class="chart" viewBox="0 0 ` + f1(w) + " " + f1(h) + `" role="img" font-size="11">`)
	ticks := []uint64{0, peak}
	if peak >= 4 {
		ticks = []uint64{0, peak / 2, peak}
	}
	for _, v := range ticks {
		y := top + ph*(1-float64(v)/float64(peak))
		b.WriteString(`<line x1="` + f1(left) + `" x2="` + f1(w-8) + `" y1="` + f1(y) + `" y2="` + f1(y) + `" stroke="#e2e8f0"/>`)
		b.WriteString(`<text x="` + f1(left-6) + `" y="` + f1(y+4) + `" text-anchor="end" fill="#64748b">` + graph.GroupDigits(v) + `</text>`)
	}
	for i := range nbins {
		if totals[i] == 0 {
			continue
		}
		t0, t1 := s.start(i*per), s.start(min((i+1)*per, s.n))
		x0, x1 := x(t0), x(t1)
		if x1-x0 < 1.5 {
			x0, x1 = min(x0, w-8-1.5), min(x0, w-8-1.5)+1.5
		}
		var title strings.Builder
		title.WriteString("+" + render.FormatDuration(max(t0-first, 0)) + " to +" + render.FormatDuration(max(t1-first, 0)) + ": " + graph.GroupDigits(totals[i]) + " " + what)
		for k, r := range rows {
			if c := bins[k][i]; c > 0 {
				title.WriteString("\n  " + graph.GroupDigits(c) + "  " + s.names[r])
			}
		}
		b.WriteString(`<g class="bar"><title>` + esc(title.String()) + `</title>`)
		b.WriteString(`<rect x="` + f1(x0) + `" y="` + f1(top) + `" width="` + f1(x1-x0) + `" height="` + f1(ph) + `" fill="transparent"/>`)
		gap := min((x1-x0)*0.1, 1)
		y := top + ph
		for k := range rows {
			c := bins[k][i]
			if c == 0 {
				continue
			}
			hh := ph * float64(c) / float64(peak)
			y -= hh
			b.WriteString(`<rect x="` + f1(x0+gap) + `" y="` + f1(y) + `" width="` + f1(max(x1-x0-2*gap, 0.8)) + `" height="` + f1(max(hh, 0.6)) + `" fill="` + colors[k] + `"/>`)
		}
		b.WriteString(`</g>`)
	}
	for k := 0; k <= 4; k++ {
		xt := left + pw*float64(k)/4
		t := span * int64(k) / 4
		anchor := "middle"
		switch k {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		b.WriteString(`<line x1="` + f1(xt) + `" x2="` + f1(xt) + `" y1="` + f1(top+ph) + `" y2="` + f1(top+ph+4) + `" stroke="#94a3b8"/>`)
		b.WriteString(`<text x="` + f1(xt) + `" y="` + f1(h-6) + `" text-anchor="` + anchor + `" fill="#64748b">+` + esc(render.FormatDuration(t)) + `</text>`)
	}
	b.WriteString(`</svg>`)
	var legend []legendItem
	for k, r := range rows {
		legend = append(legend, legendItem{Name: s.names[r], Color: colors[k], Total: s.total(r)})
	}
	return template.HTML(b.String()), legend
}

// latencyScale is the shared logarithmic axis of the latency
// distributions: from lo to hi ns.
type latencyScale struct{ lo, hi float64 }

const histW, histH = 260.0, 24.0

func (s latencyScale) x(v int64) float64 {
	lv := math.Log10(max(float64(v), 1))
	if s.hi <= s.lo {
		return 0
	}
	return min(max((lv-s.lo)/(s.hi-s.lo), 0), 1) * histW
}

// newLatencyScale covers every bucket of the histograms.
func newLatencyScale(hists []*paths.Histogram) latencyScale {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, h := range hists {
		for _, b := range h.Buckets() {
			lo = min(lo, math.Log10(max(float64(b.Low), 1)))
			hi = max(hi, math.Log10(max(float64(min(b.High, h.Max()+1)), 1)))
		}
	}
	if math.IsInf(lo, 0) {
		return latencyScale{0, 1}
	}
	lo, hi = math.Floor(lo), math.Ceil(hi)
	if hi <= lo {
		hi = lo + 1
	}
	return latencyScale{lo, hi}
}

// histogram draws a latency distribution on the shared scale: a bar per
// bucket, a tick at the median and at the 99th percentile.
func (s latencyScale) histogram(h *paths.Histogram) template.HTML {
	bs := h.Buckets()
	if len(bs) == 0 {
		return ""
	}
	var peak uint64
	for _, b := range bs {
		peak = max(peak, b.Count)
	}
	var b strings.Builder
	b.WriteString(`<svg class="hist" width="` + f1(histW) + `" height="` + f1(histH) + `" viewBox="0 0 ` + f1(histW) + " " + f1(histH) + `">`)
	b.WriteString(`<line x1="0" x2="` + f1(histW) + `" y1="` + f1(histH-0.5) + `" y2="` + f1(histH-0.5) + `" stroke="#cbd5e1"/>`)
	for _, bk := range bs {
		x0, x1 := s.x(bk.Low), s.x(min(bk.High, h.Max()+1))
		hh := (histH - 3) * math.Sqrt(float64(bk.Count)/float64(peak))
		b.WriteString(`<rect x="` + f1(x0) + `" y="` + f1(histH-1-hh) + `" width="` + f1(max(x1-x0, 1.2)) + `" height="` + f1(max(hh, 1)) + `" fill="#60a5fa"/>`)
	}
	for _, q := range []struct {
		v     int64
		color string
	}{{h.Quantile(0.5), "#1e3a8a"}, {h.Quantile(0.99), "#dc2626"}} {
		x := f1(s.x(q.v))
		b.WriteString(`<line x1="` + x + `" x2="` + x + `" y1="0" y2="` + f1(histH) + `" stroke="` + q.color + `" stroke-width="1.5"/>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// axis draws the scale's decades.
func (s latencyScale) axis() template.HTML {
	var b strings.Builder
	b.WriteString(`<svg class="hist-axis" width="` + f1(histW) + `" height="16" viewBox="0 -1 ` + f1(histW) + ` 16" font-size="10">`)
	step := math.Ceil((s.hi - s.lo) / 5) // at most six labels
	for d := s.lo; d <= s.hi; d += step {
		x := (d - s.lo) / (s.hi - s.lo) * histW
		anchor := "middle"
		switch {
		case d == s.lo:
			anchor = "start"
		case d == s.hi:
			anchor = "end"
		}
		b.WriteString(`<text x="` + f1(x) + `" y="11" text-anchor="` + anchor + `" fill="#64748b">` + decade(int(d)) + `</text>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// decade names 10^d ns: "100ns", "1µs", "10ms", "1s", "100s".
func decade(d int) string {
	units := []string{"ns", "µs", "ms", "s"}
	u := min(max(d, 0)/3, len(units)-1)
	return strconv.FormatFloat(math.Pow(10, float64(d-3*u)), 'f', -1, 64) + units[u]
}
