package main

import (
	"bufio"
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/pathcap/pathcap/paths"
	"github.com/pathcap/pathcap/paths/render/htmlreport"
)

func htmlCommand() *cli.Command {
	return &cli.Command{
		Name:      "html",
		Usage:     "write one self-contained HTML page: path graph, drops, latency, paths and a packet explorer",
		ArgsUsage: "FILE...",
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` (required; - for standard output)"},
			&cli.IntFlag{Name: "top", Value: 10, Usage: "list the `N` most common paths (as stats --top)"},
			&cli.IntFlag{Name: "stacks", Value: 3, Usage: "list the `N` most frequent kernel stacks of each drop reason (as stats --stacks)"},
			&cli.IntFlag{Name: "packets", Value: 2000, Usage: "hold at most `N` packets in the explorer (a sample of each outcome when there are more)"},
		}, graphFlags...), selectionFlags...),
		Action: runHTML,
	}
}

func runHTML(c *cli.Context) error {
	outName, err := outputName(c)
	if err != nil {
		return err
	}
	if c.Int("stacks") < 0 || c.Int("packets") < 1 {
		return usagef("--stacks %d, --packets %d: want a count of 0 or more, and of 1 or more", c.Int("stacks"), c.Int("packets"))
	}
	names, err := inputs(c)
	if err != nil {
		return err
	}
	collapse := c.String("collapse")
	if collapse != "auto" && collapse != "yes" && collapse != "no" {
		return usagef("--collapse %q: want auto, yes or no", collapse)
	}
	in, sel, opts, cleanup, err := setup(c)
	if err != nil {
		return err
	}
	defer cleanup()
	shown := make([]string, len(names))
	for i, n := range names {
		shown[i] = filepath.Base(n)
	}
	r := htmlreport.New(htmlreport.Options{
		TopPaths:   c.Int("top"),
		DropStacks: c.Int("stacks"),
		MaxPackets: c.Int("packets"),
		Collapse:   collapse,
		MinCount:   c.Uint64("min-count"),
		Inputs:     shown,
		Version:    version,
	})
	if err := paths.Process(in, opts, sel, func(p *paths.Packet) error {
		r.Add(p)
		return nil
	}); err != nil {
		return err
	}
	if in.BadComments > 0 {
		fmt.Fprintf(c.App.ErrWriter, "analyze: %d pathcap comments did not parse; their events were read as plain packets\n", in.BadComments)
	}
	out, commit, err := createOutput(c, outName)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(out, 256<<10)
	err = r.WriteHTML(bw)
	return finishOutput(in, bw, commit, err)
}
