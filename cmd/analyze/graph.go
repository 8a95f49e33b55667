package main

import (
	"bufio"

	"github.com/urfave/cli/v2"

	"github.com/pathcap/pathcap/paths"
	"github.com/pathcap/pathcap/paths/render/graph"
)

// graphFlags are the flags that shape the path graph (graph and html).
var graphFlags = []cli.Flag{
	&cli.StringFlag{Name: "collapse", Value: "auto", Usage: "`MODE`: merge chains of hooks that packets pass in one piece: auto (when there are more than 40 hooks), yes or no"},
	&cli.Uint64Flag{Name: "min-count", Value: 1, Usage: "leave out the edges of the graph taken fewer than `N` times"},
}

func graphCommand() *cli.Command {
	return &cli.Command{
		Name:      "graph",
		Usage:     "write the path graph: hooks as nodes by device and namespace, edges weighted by packets, outcomes as sinks",
		ArgsUsage: "FILE...",
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: "format", Value: "dot", Usage: "`FORMAT`: dot (Graphviz) or svg (drawn by analyze)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "-", Usage: "write to `FILE` (- for standard output)"},
		}, graphFlags...), selectionFlags...),
		Action: runGraph,
	}
}

// shapeGraph collapses and prunes g as the flags say.
func shapeGraph(c *cli.Context, g *graph.Graph) (*graph.Graph, error) {
	switch c.String("collapse") {
	case "auto":
		g = graph.Auto(g)
	case "yes":
		g = graph.Collapse(g)
	case "no":
	default:
		return nil, usagef("--collapse %q: want auto, yes or no", c.String("collapse"))
	}
	return graph.Prune(g, c.Uint64("min-count")), nil
}

func runGraph(c *cli.Context) error {
	format := c.String("format")
	if format != "dot" && format != "svg" {
		return usagef("--format %q: want dot or svg", format)
	}
	if _, err := shapeGraph(c, &graph.Graph{}); err != nil {
		return err
	}
	in, sel, opts, cleanup, err := setup(c)
	if err != nil {
		return err
	}
	defer cleanup()
	b := graph.NewBuilder()
	if err := paths.Process(in, opts, sel, func(p *paths.Packet) error {
		b.Add(p)
		return nil
	}); err != nil {
		return err
	}
	g, err := shapeGraph(c, b.Graph())
	if err != nil {
		return err
	}
	out, commit, err := createOutput(c, c.String("output"))
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(out, 256<<10)
	if format == "dot" {
		err = graph.WriteDOT(bw, g)
	} else {
		err = graph.WriteSVG(bw, graph.NewLayout(g), graph.SVGOptions{Standalone: true})
	}
	return finishOutput(in, bw, commit, err)
}
