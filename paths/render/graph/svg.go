package graph

import (
	"io"
	"strconv"
)

// SVGOptions controls WriteSVG.
type SVGOptions struct {
	// IDPrefix starts every id in the drawing, so that several drawings
	// can share a page; "g" when empty.
	IDPrefix string
	// Standalone writes an XML declaration, a title and a white
	// background: a file of its own rather than part of a page.
	Standalone bool
	// EdgeLabels writes each edge's count beside it: 0 when there are at
	// most 150 edges, 1 always, -1 never.
	EdgeLabels int
}

// WriteSVG draws the layout as SVG. Every node is a group with class
// "node" (and "hop", "fn", "chain" or the outcome's kind), id
// PREFIX-nINDEX, data-count (its hits, a sink's packets and clones) and a
// title; every edge a group with class "edge", id PREFIX-eINDEX,
// data-from and data-to (node ids), data-count and a title with its
// count and latency; every lane a group with class "lane". Colours are
// presentation attributes, which a page's CSS may override.
func WriteSVG(w io.Writer, l *Layout, o SVGOptions) error {
	_, err := w.Write(AppendSVG(nil, l, o))
	return err
}

// AppendSVG appends the SVG that WriteSVG writes.
func AppendSVG(b []byte, l *Layout, o SVGOptions) []byte {
	g := l.Graph
	pfx := o.IDPrefix
	if pfx == "" {
		pfx = "g"
	}
	labels := o.EdgeLabels > 0 || o.EdgeLabels == 0 && len(g.Edges) <= 150
	if o.Standalone {
		b = append(b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"...)
	}
	w, h := num(l.Width), num(l.Height)
	b = append(b, `<svg xmlns="http://www.w3.org/2000/svg" class="pathcap-graph" width="`...)
	b = append(b, w...)
	b = append(b, `" height="`...)
	b = append(b, h...)
	b = append(b, `" viewBox="0 0 `...)
	b = append(b, w+" "+h...)
	b = append(b, `" font-family="ui-sans-serif, system-ui, 'DejaVu Sans', sans-serif" font-size="12">`+"\n"...)
	if o.Standalone {
		b = append(b, "<title>pathcap path graph</title>\n"...)
	}
	b = append(b, "<defs>"...)
	for _, k := range append([]string{"hop"}, outcomeKinds...) {
		color := edgeColor
		if k != "hop" {
			color = kindColors[k][0]
		}
		b = append(b, `<marker id="`...)
		b = appendXML(b, pfx)
		b = append(b, "-arrow-"+k+`" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto"><path d="M0 1L10 5L0 9z" fill="`+color+`"/></marker>`...)
	}
	b = append(b, "</defs>\n"...)
	if o.Standalone {
		b = append(b, `<rect width="100%" height="100%" fill="#ffffff"/>`+"\n"...)
	}

	b = append(b, `<g class="lanes">`+"\n"...)
	li := 0
	for i, lb := range l.Lanes {
		if !lb.Used {
			continue
		}
		fill := "#f1f5f9"
		if li%2 == 1 {
			fill = "#f8fafc"
		}
		li++
		b = append(b, `<g class="lane" data-lane="`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `"><rect x="`+num(lb.X)+`" y="`+num(l.LanesTop)+`" width="`+num(lb.W)+`" height="`+num(l.LanesBottom-l.LanesTop)+
			`" rx="8" fill="`+fill+`" stroke="#e2e8f0"/>`...)
		b = append(b, `<text class="lane-dev" x="`+num(lb.X+lanePad)+`" y="`+num(l.LanesTop+18)+`" font-weight="bold" fill="#1e293b">`...)
		b = appendXML(b, clip(lb.Dev, 48))
		b = append(b, `</text><text class="lane-ns" x="`+num(lb.X+lanePad)+`" y="`+num(l.LanesTop+34)+`" font-size="11" fill="#64748b">`...)
		b = appendXML(b, clip(lb.NS, 48))
		b = append(b, "</text></g>\n"...)
	}
	b = append(b, "</g>\n"...)
	if l.SinkY > l.LanesBottom && hasSinks(g) {
		y := num(l.SinkY - 10)
		b = append(b, `<text class="sinks-title" x="`+num(margin)+`" y="`+y+`" font-size="11" font-weight="bold" fill="#64748b">OUTCOMES</text>`+"\n"...)
	}

	b = append(b, `<g class="edges" fill="none">`+"\n"...)
	for i := range g.Edges {
		e := &g.Edges[i]
		r := &l.Routes[i]
		class := g.edgeClass(e)
		color := edgeColor
		if class != "hop" {
			color = kindColors[class][0]
		}
		b = append(b, `<g class="edge `+class...)
		if r.Back {
			b = append(b, " back"...)
		}
		if e.Clones == e.Count {
			b = append(b, " clone"...)
		}
		b = append(b, `" id="`...)
		b = appendXML(b, pfx)
		b = append(b, "-e"...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `" data-from="`...)
		b = appendXML(b, pfx)
		b = append(b, "-n"...)
		b = strconv.AppendInt(b, int64(e.From), 10)
		b = append(b, `" data-to="`...)
		b = appendXML(b, pfx)
		b = append(b, "-n"...)
		b = strconv.AppendInt(b, int64(e.To), 10)
		b = append(b, `" data-count="`...)
		b = strconv.AppendUint(b, e.Count, 10)
		b = append(b, `"><title>`...)
		b = appendXML(b, g.EdgeTitle(i))
		b = append(b, `</title><path class="hit" d="`+r.D+`" stroke="transparent" stroke-width="12"/><path class="line" d="`+r.D+
			`" stroke="`+color+`" stroke-width="`+num(r.Width)+`" stroke-opacity="0.85"`...)
		if e.Clones == e.Count {
			b = append(b, ` stroke-dasharray="5 4"`...)
		}
		b = append(b, ` marker-end="url(#`...)
		b = appendXML(b, pfx)
		b = append(b, "-arrow-"+class+`)"/>`...)
		if labels {
			b = append(b, `<text class="elabel" x="`+num(r.LabelX+5)+`" y="`+num(r.LabelY+4)+`" font-size="10.5" fill="#334155" stroke="#ffffff" stroke-width="3" paint-order="stroke">`...)
			b = append(b, GroupDigits(e.Count)...)
			b = append(b, "</text>"...)
		}
		b = append(b, "</g>\n"...)
	}
	b = append(b, "</g>\n"...)

	b = append(b, `<g class="nodes">`+"\n"...)
	for i := range g.Nodes {
		n := &g.Nodes[i]
		bx := l.Boxes[i]
		class := n.ClassName()
		if n.Kind == Hop {
			class = hopClass(n)
		}
		colors := kindColors[class]
		b = append(b, `<g class="node `...)
		if n.Kind == Sink {
			b = append(b, "sink "...)
		}
		b = append(b, class+`" id="`...)
		b = appendXML(b, pfx)
		b = append(b, "-n"...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `" data-count="`...)
		if n.Kind == Sink {
			b = strconv.AppendUint(b, n.Packets+n.Clones, 10)
		} else {
			b = strconv.AppendUint(b, n.Hits, 10)
		}
		b = append(b, `" data-label="`...)
		b = appendXML(b, n.Label())
		b = append(b, `"><title>`...)
		b = appendXML(b, g.NodeTitle(i))
		sw := "1.3"
		if n.Kind == Sink {
			sw = "1.8"
		}
		b = append(b, `</title><rect x="`+num(bx.X)+`" y="`+num(bx.Y)+`" width="`+num(bx.W)+`" height="`+num(bx.H)+
			`" rx="6" fill="`+colors[1]+`" stroke="`+colors[0]+`" stroke-width="`+sw+`"/>`...)
		lines := nodeLines(n)
		y := bx.Y + 15
		if n.Kind == Sink && len(lines) == 2 {
			y += 7
		}
		for j, line := range lines {
			b = append(b, `<text x="`+num(bx.CX())+`" y="`+num(y)+`" text-anchor="middle" font-family="ui-monospace, 'DejaVu Sans Mono', monospace"`...)
			switch {
			case j == 0 && n.Kind == Sink:
				b = append(b, ` font-size="12" font-weight="bold" fill="`+colors[0]+`"`...)
			case j == 0:
				b = append(b, ` font-size="12" fill="#0f172a"`...)
			default:
				b = append(b, ` class="sub" font-size="10.5" fill="#64748b"`...)
			}
			b = append(b, '>')
			b = appendXML(b, clip(line, maxLabel))
			b = append(b, "</text>"...)
			y += 15
		}
		b = append(b, "</g>\n"...)
	}
	b = append(b, "</g>\n</svg>\n"...)
	return b
}

func hasSinks(g *Graph) bool {
	for i := range g.Nodes {
		if g.Nodes[i].Kind == Sink {
			return true
		}
	}
	return false
}
