package graph

import (
	"cmp"
	"container/heap"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Sizes of the drawing, in SVG user units (pixels at 100%). Labels are set
// in a monospace font, so that their width is known without font metrics.
const (
	margin      = 16.0
	laneHeader  = 46.0
	rowHeight   = 66.0
	hopHeight   = 38.0
	sinkHeight  = 52.0
	sinkGap     = 34.0
	nodeGap     = 16.0
	lanePad     = 14.0
	laneGap     = 8.0
	charWidth   = 7.25 // 12px monospace
	smallWidth  = 6.35 // 10.5px monospace
	headerWidth = 7.4  // 12px sans-serif, bold (wide estimate)
	minNodeW    = 84.0
	maxLabel    = 40 // runes of a node's first line
)

// Box is where a node is drawn: its top-left corner and size, and its
// layer (row) in the layout.
type Box struct {
	X, Y, W, H float64
	Layer      int
}

// CX returns the box's horizontal centre.
func (b Box) CX() float64 { return b.X + b.W/2 }

// LaneBox is where a lane is drawn, with its two title lines.
type LaneBox struct {
	X, W    float64
	Dev, NS string
	Used    bool
}

// Route is how an edge is drawn: an SVG path, the point for its label,
// its stroke width, and whether it goes back up (a loop in the paths).
type Route struct {
	D              string
	LabelX, LabelY float64
	Width          float64
	Back           bool
}

// Layout is a drawing of a graph: a layered layout from top to bottom in
// path order, one lane (column) per device and namespace, the outcomes in
// a row at the bottom.
type Layout struct {
	Graph         *Graph
	Width, Height float64
	Boxes         []Box     // by node
	Lanes         []LaneBox // by lane
	Routes        []Route   // by edge
	// LanesTop and LanesBottom bound the lanes vertically, SinkY is the
	// top of the outcome row.
	LanesTop, LanesBottom, SinkY float64
	// Layers is the number of rows of hops (the outcomes are below them).
	Layers int
}

// nodeLines returns the text lines of a node as drawn.
func nodeLines(n *Node) []string {
	if n.Kind == Sink {
		lines := []string{n.SinkName()}
		if n.Location != "" {
			lines = append(lines, "at "+n.Location)
		}
		return append(lines, sinkCounts(n))
	}
	sub := countText(n.Hits, "hit", "hits")
	if len(n.Hooks) > 1 {
		sub = strconv.Itoa(len(n.Hooks)) + " hooks · " + sub
	}
	return []string{n.Label(), sub}
}

// sinkCounts returns "12 packets", "2 packets + 1 clone", ...
func sinkCounts(n *Node) string {
	s := countText(n.Packets, "packet", "packets")
	if n.Clones > 0 {
		s += " + " + countText(n.Clones, "clone", "clones")
	}
	return s
}

func countText(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return GroupDigits(n) + " " + many
}

// GroupDigits formats n with thousands separators: 1234567 is "1,234,567".
func GroupDigits(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	b := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	return string(b)
}

// clip cuts s to n runes, ending with "…" when cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func nodeSize(n *Node) (w, h float64) {
	lines := nodeLines(n)
	w = minNodeW
	for i, l := range lines {
		cw := smallWidth
		if i == 0 {
			cw = charWidth
		}
		w = max(w, float64(utf8.RuneCountInString(clip(l, maxLabel)))*cw+20)
	}
	if n.Kind == Sink {
		return w, sinkHeight
	}
	return w, hopHeight
}

// NewLayout lays g out. Loops are broken in path order: a depth-first
// walk from the nodes packets reach first (Node.Pos), following the
// nodes reached first, marks the edges that close a cycle, which go back
// up; every other edge goes down at least one layer (a node's layer is one
// more than its deepest predecessor's), through a bend point in each layer
// it crosses. Within a lane and layer, nodes are ordered to keep edges
// short (the mean position of their neighbours, four sweeps).
func NewLayout(g *Graph) *Layout {
	l := &Layout{Graph: g, Boxes: make([]Box, len(g.Nodes)), Lanes: make([]LaneBox, len(g.Lanes)), Routes: make([]Route, len(g.Edges))}
	nn := len(g.Nodes)
	in := make([][]int, nn)
	out := make([][]int, nn)
	for i, e := range g.Edges {
		in[e.To] = append(in[e.To], i)
		out[e.From] = append(out[e.From], i)
	}
	byPos := func(a, b int) int {
		x, y := &g.Nodes[a], &g.Nodes[b]
		if x.Kind != y.Kind {
			return cmp.Compare(x.Kind, y.Kind)
		}
		if c := cmp.Compare(x.Pos, y.Pos); c != 0 {
			return c
		}
		if c := cmp.Compare(y.Hits, x.Hits); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	}
	back := breakCycles(g, out, byPos)

	// Layers, in topological order (the reverse of the walk's finish
	// order is one, but longest paths are simpler by relaxation).
	layer := make([]int, nn)
	topo := topoOrder(g, out, back, byPos)
	maxLayer := -1
	for _, v := range topo {
		if g.Nodes[v].Kind == Sink {
			continue
		}
		for _, ei := range in[v] {
			if !back[ei] {
				layer[v] = max(layer[v], layer[g.Edges[ei].From]+1)
			}
		}
		maxLayer = max(maxLayer, layer[v])
	}
	for v := range g.Nodes {
		if g.Nodes[v].Kind == Sink {
			layer[v] = maxLayer + 1
		}
	}
	l.Layers = maxLayer + 1

	// Lanes in use, ordered by their first layer, then busiest first.
	laneMin := make([]int, len(g.Lanes))
	for i := range laneMin {
		laneMin[i] = math.MaxInt
	}
	for v := range g.Nodes {
		if n := &g.Nodes[v]; n.Kind == Hop && n.Lane >= 0 && n.Lane < len(g.Lanes) {
			laneMin[n.Lane] = min(laneMin[n.Lane], layer[v])
			l.Lanes[n.Lane].Used = true
		}
	}
	var lanes []int
	for i := range g.Lanes {
		if l.Lanes[i].Used {
			lanes = append(lanes, i)
		}
	}
	slices.SortStableFunc(lanes, func(a, b int) int {
		if c := cmp.Compare(laneMin[a], laneMin[b]); c != 0 {
			return c
		}
		return cmp.Compare(g.Lanes[b].Events, g.Lanes[a].Events)
	})

	// Items: the nodes, then one bend point per layer that a downward
	// edge crosses (in its source's lane). links join consecutive items
	// of an edge, weighted by its count.
	boxes := slices.Clone(l.Boxes)
	type link struct {
		u, v int
		w    float64
	}
	var links []link
	chains := make([][]int, len(g.Edges))
	cells := make([][][]int, len(g.Lanes))
	for i := range cells {
		cells[i] = make([][]int, max(maxLayer+1, 0))
	}
	order := make([]int, nn)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, byPos)
	for _, v := range order {
		n := &g.Nodes[v]
		boxes[v].W, boxes[v].H = nodeSize(n)
		boxes[v].Layer = layer[v]
		if n.Kind == Hop {
			cells[n.Lane][layer[v]] = append(cells[n.Lane][layer[v]], v)
		}
	}
	// Bend points for the most taken edges first, at most maxBends: past
	// that, an edge is one curve.
	byCount := make([]int, len(g.Edges))
	for i := range byCount {
		byCount[i] = i
	}
	slices.SortStableFunc(byCount, func(a, b int) int { return cmp.Compare(g.Edges[b].Count, g.Edges[a].Count) })
	bends := 0
	for _, ei := range byCount {
		e := &g.Edges[ei]
		if back[ei] {
			continue
		}
		prev := e.From
		ln := g.Nodes[e.From].Lane
		span := max(layer[e.To]-layer[e.From]-1, 0)
		if bends+span > maxBends {
			links = append(links, link{prev, e.To, float64(e.Count)})
			continue
		}
		bends += span
		for li := layer[e.From] + 1; li < layer[e.To]; li++ {
			d := len(boxes)
			boxes = append(boxes, Box{W: bendWidth, Layer: li})
			cells[ln][li] = append(cells[ln][li], d)
			chains[ei] = append(chains[ei], d)
			links = append(links, link{prev, d, float64(e.Count)})
			prev = d
		}
		links = append(links, link{prev, e.To, float64(e.Count)})
	}
	ins := make([][]int, len(boxes))
	outs := make([][]int, len(boxes))
	for i, k := range links {
		outs[k.u] = append(outs[k.u], i)
		ins[k.v] = append(ins[k.v], i)
	}

	l.LanesTop = margin
	top := margin + laneHeader
	cellWidth := func(c []int) float64 {
		w := 0.0
		for i, v := range c {
			if i > 0 {
				w += gapBetween(v, c[i-1], nn)
			}
			w += boxes[v].W
		}
		return w
	}
	// Lanes are as wide as their widest layer with the widest gaps, so
	// that reordering a layer moves nothing else.
	maxWidth := func(c []int) float64 {
		w := 0.0
		for _, v := range c {
			w += boxes[v].W
		}
		return w + float64(max(len(c)-1, 0))*nodeGap
	}
	x := margin
	for _, ln := range lanes {
		w := 0.0
		for _, c := range cells[ln] {
			w = max(w, maxWidth(c))
		}
		dev, ns := placeTitle(g.Lanes[ln].Place)
		w = max(w+2*lanePad, float64(max(utf8.RuneCountInString(clip(dev, 48)), utf8.RuneCountInString(clip(ns, 48))))*headerWidth+2*lanePad)
		lb := &l.Lanes[ln]
		lb.X, lb.W, lb.Dev, lb.NS = x, w, dev, ns
		x += w + laneGap
	}
	l.Width = x - laneGap + margin
	// placeCell lines a cell's items up, centred in their lane.
	placeCell := func(ln, li int) {
		c := cells[ln][li]
		lb := &l.Lanes[ln]
		cx := lb.X + (lb.W-cellWidth(c))/2
		for i, v := range c {
			if i > 0 {
				cx += gapBetween(v, c[i-1], nn)
			}
			b := &boxes[v]
			b.X = cx
			b.Y = top + float64(li)*rowHeight + (rowHeight-hopHeight)/2 - 8
			if v >= nn {
				b.Y += hopHeight / 2
			}
			cx += b.W
		}
	}
	for _, ln := range lanes {
		for li := range cells[ln] {
			placeCell(ln, li)
		}
	}
	bary := func(v int, idx []int, other func(link) int) (float64, bool) {
		sum, wsum := 0.0, 0.0
		for _, i := range idx {
			k := links[i]
			sum += boxes[other(k)].CX() * k.w
			wsum += k.w
		}
		if wsum == 0 {
			return 0, false
		}
		return sum / wsum, true
	}
	for sweep := 0; sweep < 4; sweep++ {
		up := sweep%2 == 1 // by successors, from the bottom
		for k := 0; k <= maxLayer; k++ {
			li := k
			if up {
				li = maxLayer - k
			}
			for _, ln := range lanes {
				c := cells[ln][li]
				if len(c) < 2 {
					continue
				}
				key := make(map[int]float64, len(c))
				for _, v := range c {
					var x float64
					var ok bool
					if up {
						x, ok = bary(v, outs[v], func(k link) int { return k.v })
					} else {
						x, ok = bary(v, ins[v], func(k link) int { return k.u })
					}
					if !ok {
						x = boxes[v].CX()
					}
					key[v] = x
				}
				slices.SortStableFunc(c, func(a, b int) int { return cmp.Compare(key[a], key[b]) })
				placeCell(ln, li)
			}
		}
	}
	l.LanesBottom = top + float64(maxLayer+1)*rowHeight
	if maxLayer < 0 {
		l.LanesBottom = top
	}

	// Outcomes: one row, each under the mean position of the edges that
	// lead to it, pushed right where they would overlap.
	l.SinkY = l.LanesBottom + sinkGap
	var sinks []int
	ideal := make(map[int]float64)
	for _, v := range order {
		if g.Nodes[v].Kind != Sink {
			continue
		}
		sinks = append(sinks, v)
		x, ok := bary(v, ins[v], func(k link) int { return k.u })
		if !ok {
			x = margin
		}
		ideal[v] = x - boxes[v].W/2
	}
	slices.SortStableFunc(sinks, func(a, b int) int { return cmp.Compare(ideal[a], ideal[b]) })
	right := margin - nodeGap
	for _, v := range sinks {
		b := &boxes[v]
		b.X = max(ideal[v], right+nodeGap, margin)
		b.Y = l.SinkY
		right = b.X + b.W
	}
	// Pull the row back left if it overflows while room is free on the
	// left.
	if over := right + margin - l.Width; over > 0 && len(sinks) > 0 {
		shift := min(over, boxes[sinks[0]].X-margin)
		for _, v := range sinks {
			boxes[v].X -= shift
		}
		right -= shift
	}
	l.Width = max(l.Width, right+margin)
	l.Height = l.SinkY + sinkHeight + margin
	if len(sinks) == 0 {
		l.Height = l.LanesBottom + margin
	}
	copy(l.Boxes, boxes[:nn])

	var maxCount uint64 = 1
	for _, e := range g.Edges {
		maxCount = max(maxCount, e.Count)
	}
	for i := range g.Edges {
		var bends [][2]float64
		for _, d := range chains[i] {
			bends = append(bends, [2]float64{boxes[d].CX(), boxes[d].Y})
		}
		l.Routes[i] = l.route(&g.Edges[i], back[i], bends, maxCount)
	}
	return l
}

// bendWidth is the room a bend point takes in its layer; maxBends bounds
// their number.
const (
	bendWidth = 6.0
	maxBends  = 20000
)

// gapBetween is the room between two neighbours in a cell: less next to a
// bend point.
func gapBetween(a, b, nodes int) float64 {
	if a >= nodes || b >= nodes {
		return 6
	}
	return nodeGap
}

// breakCycles returns, by edge, whether it closes a cycle (or is a loop
// on one node): a depth-first walk from the nodes in path order, following
// successors in path order, marks the edges to a node on its stack.
func breakCycles(g *Graph, out [][]int, byPos func(a, b int) int) []bool {
	back := make([]bool, len(g.Edges))
	const (
		white = iota
		grey
		black
	)
	color := make([]uint8, len(g.Nodes))
	order := make([]int, len(g.Nodes))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, byPos)
	succ := make([][]int, len(g.Nodes))
	for v := range g.Nodes {
		succ[v] = slices.Clone(out[v])
		slices.SortStableFunc(succ[v], func(a, b int) int { return byPos(g.Edges[a].To, g.Edges[b].To) })
	}
	type frame struct{ v, next int }
	for _, root := range order {
		if color[root] != white {
			continue
		}
		stack := []frame{{root, 0}}
		color[root] = grey
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			if f.next == len(succ[f.v]) {
				color[f.v] = black
				stack = stack[:len(stack)-1]
				continue
			}
			ei := succ[f.v][f.next]
			f.next++
			w := g.Edges[ei].To
			switch color[w] {
			case grey:
				back[ei] = true
			case white:
				color[w] = grey
				stack = append(stack, frame{w, 0})
			}
		}
	}
	return back
}

// topoOrder returns the nodes in an order where every edge that is not
// back goes forward (Kahn's algorithm, taking the ready nodes in path
// order).
func topoOrder(g *Graph, out [][]int, back []bool, byPos func(a, b int) int) []int {
	deg := make([]int, len(g.Nodes))
	for ei, e := range g.Edges {
		if !back[ei] {
			deg[e.To]++
		}
	}
	ready := &nodeHeap{less: func(a, b int) bool { return byPos(a, b) < 0 }}
	for v := range g.Nodes {
		if deg[v] == 0 {
			ready.items = append(ready.items, v)
		}
	}
	heap.Init(ready)
	order := make([]int, 0, len(g.Nodes))
	for ready.Len() > 0 {
		v := heap.Pop(ready).(int)
		order = append(order, v)
		for _, ei := range out[v] {
			if back[ei] {
				continue
			}
			w := g.Edges[ei].To
			if deg[w]--; deg[w] == 0 {
				heap.Push(ready, w)
			}
		}
	}
	return order
}

// nodeHeap is a heap of node indexes.
type nodeHeap struct {
	items []int
	less  func(a, b int) bool
}

func (h *nodeHeap) Len() int           { return len(h.items) }
func (h *nodeHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *nodeHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *nodeHeap) Push(x any)         { h.items = append(h.items, x.(int)) }
func (h *nodeHeap) Pop() any {
	v := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return v
}

// route draws one edge: down through its bend points, or back up on the
// right.
func (l *Layout) route(e *Edge, back bool, bends [][2]float64, maxCount uint64) Route {
	a, b := l.Boxes[e.From], l.Boxes[e.To]
	r := Route{Width: 1.2}
	if maxCount > 1 && e.Count > 1 {
		r.Width = 1.2 + 4.8*math.Log(float64(e.Count))/math.Log(float64(maxCount))
	}
	var sb []byte
	curve := func(p [4][2]float64) {
		sb = append(sb, " C"+num(p[1][0])+" "+num(p[1][1])+" "+num(p[2][0])+" "+num(p[2][1])+" "+num(p[3][0])+" "+num(p[3][1])...)
	}
	start := func(x, y float64) { sb = append(sb, "M"+num(x)+" "+num(y)...) }
	switch {
	case e.From == e.To:
		x, y := a.X+a.W, a.Y+a.H/2
		p := [4][2]float64{{x, y - 8}, {x + 34, y - 24}, {x + 34, y + 24}, {x, y + 8}}
		start(p[0][0], p[0][1])
		curve(p)
		r.LabelX, r.LabelY = x+30, y
		r.Back = true
	case back:
		// Out of the right side of one box, into the right side of the
		// other, bulging right.
		x1, y1 := a.X+a.W, a.Y+a.H/2
		x2, y2 := b.X+b.W, b.Y+b.H/2
		right := max(x1, x2) + 30 + math.Abs(y1-y2)*0.12
		p := [4][2]float64{{x1, y1}, {right, y1}, {right, y2}, {x2, y2}}
		start(x1, y1)
		curve(p)
		r.LabelX, r.LabelY = (x1+3*right+3*right+x2)/8, (y1+3*y1+3*y2+y2)/8
		r.Back = true
	default:
		pts := [][2]float64{{a.CX(), a.Y + a.H}}
		pts = append(pts, bends...)
		pts = append(pts, [2]float64{b.CX(), b.Y})
		start(pts[0][0], pts[0][1])
		for i := 1; i < len(pts); i++ {
			p, q := pts[i-1], pts[i]
			my := (p[1] + q[1]) / 2
			curve([4][2]float64{p, {p[0], my}, {q[0], my}, q})
		}
		p, q := pts[0], pts[1]
		r.LabelX, r.LabelY = (p[0]+q[0])/2, (p[1]+q[1])/2
	}
	r.D = string(sb)
	return r
}

// num formats a coordinate with at most one decimal.
func num(v float64) string {
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}
