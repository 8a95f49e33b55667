package graph

import (
	"io"
	"math"
	"strconv"
	"strings"
)

// WriteDOT writes g in Graphviz's DOT language (dot -Tsvg draws it): one
// cluster per lane (device and namespace) holding its hop nodes, the
// outcomes as coloured boxes on the bottom rank, edges labelled with their
// counts and wider the more they were taken; tooltips carry the counts and
// latencies.
func WriteDOT(w io.Writer, g *Graph) error {
	_, err := w.Write(AppendDOT(nil, g))
	return err
}

// AppendDOT appends the DOT text that WriteDOT writes.
func AppendDOT(b []byte, g *Graph) []byte {
	b = append(b, `digraph pathcap {
  graph [rankdir=TB, newrank=true, nodesep=0.25, ranksep=0.4, fontname="Helvetica", fontsize=11, labeljust=l];
  node [shape=box, style="rounded,filled", fontname="Courier", fontsize=10, color="#475569", fillcolor="#ffffff"];
  edge [color="#94a3b8", arrowsize=0.6, fontname="Helvetica", fontsize=9, fontcolor="#334155"];
`...)
	byLane := make([][]int, len(g.Lanes))
	var sinks []int
	for i := range g.Nodes {
		n := &g.Nodes[i]
		if n.Kind == Sink {
			sinks = append(sinks, i)
		} else if n.Lane >= 0 && n.Lane < len(g.Lanes) {
			byLane[n.Lane] = append(byLane[n.Lane], i)
		}
	}
	for ln, nodes := range byLane {
		if len(nodes) == 0 {
			continue
		}
		dev, ns := placeTitle(g.Lanes[ln].Place)
		b = append(b, "  subgraph cluster_"...)
		b = strconv.AppendInt(b, int64(ln), 10)
		b = append(b, " {\n    label="...)
		b = appendDOT(b, dev+"\n"+ns)
		b = append(b, "; style=\"rounded,filled\"; fillcolor=\"#f1f5f9\"; color=\"#cbd5e1\";\n"...)
		for _, i := range nodes {
			b = append(b, "    "...)
			b = appendDOTNode(b, g, i)
		}
		b = append(b, "  }\n"...)
	}
	for _, i := range sinks {
		b = append(b, "  "...)
		b = appendDOTNode(b, g, i)
	}
	if len(sinks) > 0 {
		b = append(b, "  { rank=sink;"...)
		for _, i := range sinks {
			b = append(b, " n"...)
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, ';')
		}
		b = append(b, " }\n"...)
	}
	var maxCount uint64 = 1
	for _, e := range g.Edges {
		maxCount = max(maxCount, e.Count)
	}
	for i := range g.Edges {
		e := &g.Edges[i]
		b = append(b, "  n"...)
		b = strconv.AppendInt(b, int64(e.From), 10)
		b = append(b, " -> n"...)
		b = strconv.AppendInt(b, int64(e.To), 10)
		b = append(b, " [label="...)
		b = appendDOT(b, GroupDigits(e.Count))
		pw := 1.0
		if maxCount > 1 && e.Count > 1 {
			pw = 1 + 4*math.Log(float64(e.Count))/math.Log(float64(maxCount))
		}
		b = append(b, ", penwidth="...)
		b = strconv.AppendFloat(b, math.Round(pw*10)/10, 'f', -1, 64)
		if class := g.edgeClass(e); class != "hop" {
			b = append(b, `, color="`+kindColors[class][0]+`"`...)
		}
		if e.Clones == e.Count {
			b = append(b, ", style=dashed"...)
		}
		b = append(b, ", tooltip="...)
		b = appendDOT(b, g.EdgeTitle(i))
		b = append(b, "];\n"...)
	}
	return append(b, "}\n"...)
}

// appendDOTNode appends a node statement.
func appendDOTNode(b []byte, g *Graph, i int) []byte {
	n := &g.Nodes[i]
	b = append(b, 'n')
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, " [label="...)
	lines := nodeLines(n)
	for j := range lines {
		lines[j] = clip(lines[j], maxLabel)
	}
	b = appendDOT(b, strings.Join(lines, "\n"))
	b = append(b, ", tooltip="...)
	b = appendDOT(b, g.NodeTitle(i))
	class := n.ClassName()
	if n.Kind == Hop {
		class = hopClass(n)
	}
	if class != "hop" {
		c := kindColors[class]
		b = append(b, `, color="`+c[0]+`", fillcolor="`+c[1]+`"`...)
	}
	if n.Kind == Sink {
		b = append(b, `, fontname="Helvetica-Bold", penwidth=1.5, fontcolor="`+kindColors[class][0]+`"`...)
	}
	return append(b, "];\n"...)
}
