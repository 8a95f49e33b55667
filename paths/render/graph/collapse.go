package graph

import "slices"

// CollapseAbove is the number of hop nodes above which Auto collapses a
// graph: tracepoint recordings stay whole, function recordings with
// hundreds of functions become chains.
const CollapseAbove = 40

// Auto returns g collapsed (Collapse) when it has more than CollapseAbove
// hop nodes, else g.
func Auto(g *Graph) *Graph {
	if g.HopNodes() > CollapseAbove {
		return Collapse(g)
	}
	return g
}

// Collapse returns a graph in which every chain of hop nodes that paths
// only pass in one piece is one node: within one lane, a node whose only
// edge out leads to a node whose only edge in it is, and where no path
// begins, is merged with it. The merged node lists its hooks (Node.Hooks)
// and the edges between them (Node.Steps). Counts are unchanged: every
// path that enters a chain leaves it at its end.
func Collapse(g *Graph) *Graph {
	out := make([][]int, len(g.Nodes))
	in := make([][]int, len(g.Nodes))
	for i, e := range g.Edges {
		out[e.From] = append(out[e.From], i)
		in[e.To] = append(in[e.To], i)
	}
	// next[u] is the edge that merges u with its successor, -1 if none.
	next := make([]int, len(g.Nodes))
	merged := make([]bool, len(g.Nodes)) // has a merging predecessor
	for u := range g.Nodes {
		next[u] = -1
		if len(out[u]) != 1 {
			continue
		}
		e := g.Edges[out[u][0]]
		v := e.To
		a, b := &g.Nodes[u], &g.Nodes[v]
		if v == u || a.Kind != Hop || b.Kind != Hop || a.Lane != b.Lane || len(in[v]) != 1 || b.Starts != 0 {
			continue
		}
		next[u] = out[u][0]
		merged[v] = true
	}
	ng := &Graph{Lanes: slices.Clone(g.Lanes), Packets: g.Packets, Clones: g.Clones, Other: g.Other,
		EdgesNotKept: g.EdgesNotKept, Collapsed: g.Collapsed, Pruned: g.Pruned}
	newIdx := make([]int, len(g.Nodes))
	for i := range newIdx {
		newIdx[i] = -1
	}
	inner := make([]bool, len(g.Edges))
	for u := range g.Nodes {
		if merged[u] {
			continue
		}
		n := g.Nodes[u]
		n.Hooks = slices.Clone(n.Hooks)
		n.Steps = slices.Clone(n.Steps)
		newIdx[u] = len(ng.Nodes)
		for w := u; next[w] >= 0; {
			e := g.Edges[next[w]]
			inner[next[w]] = true
			v := &g.Nodes[e.To]
			n.Steps = append(n.Steps, Step{From: lastHook(&g.Nodes[w]), To: v.Hooks[0], Count: e.Count, Latency: e.Latency})
			n.Steps = append(n.Steps, v.Steps...)
			n.Hooks = append(n.Hooks, v.Hooks...)
			newIdx[e.To] = len(ng.Nodes)
			ng.Collapsed++
			w = e.To
		}
		ng.Nodes = append(ng.Nodes, n)
	}
	// A cycle of nodes each merging with the next has no head: its nodes
	// stay as they are.
	for u := range g.Nodes {
		if newIdx[u] < 0 {
			newIdx[u] = len(ng.Nodes)
			ng.Nodes = append(ng.Nodes, g.Nodes[u])
			if next[u] >= 0 {
				inner[next[u]] = false
			}
		}
	}
	for i, e := range g.Edges {
		if inner[i] {
			continue
		}
		e.From, e.To = newIdx[e.From], newIdx[e.To]
		ng.Edges = append(ng.Edges, e)
	}
	sortEdges(ng.Edges)
	return ng
}

func lastHook(n *Node) string { return n.Hooks[len(n.Hooks)-1] }

// Prune returns g without the edges that fewer than minCount paths took,
// and without the nodes left with no edge. Node counts are unchanged.
func Prune(g *Graph, minCount uint64) *Graph {
	if minCount <= 1 {
		return g
	}
	ng := *g
	ng.Lanes = slices.Clone(g.Lanes)
	keep := make([]bool, len(g.Nodes))
	var edges []Edge
	for _, e := range g.Edges {
		if e.Count < minCount {
			ng.Pruned++
			continue
		}
		keep[e.From], keep[e.To] = true, true
		edges = append(edges, e)
	}
	newIdx := make([]int, len(g.Nodes))
	ng.Nodes = nil
	for i := range g.Nodes {
		newIdx[i] = -1
		if keep[i] {
			newIdx[i] = len(ng.Nodes)
			ng.Nodes = append(ng.Nodes, g.Nodes[i])
		}
	}
	for i := range edges {
		edges[i].From, edges[i].To = newIdx[edges[i].From], newIdx[edges[i].To]
	}
	ng.Edges = edges
	return &ng
}
