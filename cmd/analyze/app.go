package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pathcap/pathcap/internal/pcapfilter"
	"github.com/pathcap/pathcap/paths"
)

const version = "0.1.0"

// selectionFlags are accepted by every command.
var selectionFlags = []cli.Flag{
	&cli.StringSliceFlag{Name: "id", Usage: "only packets with tracking `ID` (repeat or comma-separate)"},
	&cli.StringSliceFlag{Name: "outcome", Usage: "only packets whose outcome is `KIND`: delivered, transmitted, dropped, consumed, unknown"},
	&cli.StringSliceFlag{Name: "reason", Usage: "only packets dropped for `REASON` (e.g. NO_SOCKET)"},
	&cli.StringFlag{Name: "hook", Usage: "only packets that passed a hook matching `REGEX`"},
	&cli.StringFlag{Name: "since", Usage: "only packets first seen at or after `TIME` (RFC 3339, or a duration from the first event like 1.5s)"},
	&cli.StringFlag{Name: "until", Usage: "only packets first seen before `TIME` (as --since)"},
	&cli.StringFlag{Name: "filter", Usage: "only packets with a hop matching the tcpdump `EXPRESSION` (needs libpcap)"},
	&cli.DurationFlag{Name: "window", Value: 2 * time.Second, Usage: "a packet's path is complete after `D` without events"},
}

func newApp(stdout, stderr io.Writer) *cli.App {
	report := &cli.Command{
		Name:      "report",
		Usage:     "print each packet's path, then a summary (the default command)",
		ArgsUsage: "FILE...",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "summary-only", Usage: "print only the summary"},
			&cli.IntFlag{Name: "top", Value: 10, Usage: "list the `N` most common paths"},
			&cli.BoolFlag{Name: "color", Usage: "force colour on"},
			&cli.BoolFlag{Name: "no-color", Usage: "force colour off"},
		}, selectionFlags...),
		Action: func(c *cli.Context) error { return runReport(c, false) },
	}
	return &cli.App{
		Name:      "analyze",
		Usage:     "rebuild each packet's path through the kernel from pathcap recordings",
		UsageText: "analyze [command] [flags] FILE...",
		Version:   version,
		Writer:    stdout,
		ErrWriter: stderr,
		Commands: []*cli.Command{
			report,
			{
				Name:      "paths",
				Usage:     "print each packet's path as one JSON object per line",
				ArgsUsage: "FILE...",
				Flags:     append([]cli.Flag{&cli.BoolFlag{Name: "json", Value: true, Usage: "JSON lines (the only format)"}}, selectionFlags...),
				Action:    runPaths,
			},
			{
				Name:      "stats",
				Usage:     "print the summary alone",
				ArgsUsage: "FILE...",
				Flags: append([]cli.Flag{
					&cli.BoolFlag{Name: "json", Usage: "one JSON object"},
					&cli.IntFlag{Name: "top", Value: 10, Usage: "list the `N` most common paths"},
					&cli.BoolFlag{Name: "color", Usage: "force colour on"},
					&cli.BoolFlag{Name: "no-color", Usage: "force colour off"},
				}, selectionFlags...),
				Action: func(c *cli.Context) error {
					if c.Bool("json") {
						return runStatsJSON(c)
					}
					return runReport(c, true)
				},
			},
			{
				Name:      "wireshark",
				Usage:     "write a pcap-ng file with one frame per packet whose comments tell its path",
				ArgsUsage: "FILE...",
				Flags:     append([]cli.Flag{&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "write to `FILE` (- for standard output)"}}, selectionFlags...),
				Action:    runWireshark,
			},
			{
				Name:      "export",
				Usage:     "write one row per event for DuckDB, Spark or ClickHouse",
				ArgsUsage: "FILE...",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "format", Value: "jsonl", Usage: "`FORMAT`: jsonl or parquet"},
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "write to `FILE` (- for standard output, jsonl only)"},
				},
				Action: runExport,
			},
		},
		HideHelpCommand: true,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
	}
}

// inputs returns the file arguments, or a usage error.
func inputs(c *cli.Context) ([]string, error) {
	if c.NArg() == 0 {
		return nil, usagef("no input files (see analyze %s --help)", c.Command.Name)
	}
	return c.Args().Slice(), nil
}

// selection builds the Selector from the flags.
func selection(c *cli.Context) (*paths.Selector, error) {
	s := &paths.Selector{}
	for _, v := range splitAll(c.StringSlice("id")) {
		id, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, usagef("--id %q is not a number", v)
		}
		if s.IDs == nil {
			s.IDs = map[uint64]bool{}
		}
		s.IDs[id] = true
	}
	for _, v := range splitAll(c.StringSlice("outcome")) {
		k, ok := paths.ParseOutcome(v)
		if !ok {
			return nil, usagef("--outcome %q: want delivered, transmitted, dropped, consumed or unknown", v)
		}
		if s.Outcomes == nil {
			s.Outcomes = map[paths.OutcomeKind]bool{}
		}
		s.Outcomes[k] = true
	}
	for _, v := range splitAll(c.StringSlice("reason")) {
		if s.Reasons == nil {
			s.Reasons = map[string]bool{}
		}
		s.Reasons[strings.TrimPrefix(strings.ToUpper(v), "SKB_DROP_REASON_")] = true
	}
	if h := c.String("hook"); h != "" {
		re, err := regexp.Compile(h)
		if err != nil {
			return nil, usagef("--hook: %v", err)
		}
		s.Hook = re
	}
	if expr := c.String("filter"); expr != "" {
		prog, err := pcapfilter.Compile(expr, pcapfilter.LinkTypeEthernet, 262144)
		if errors.Is(err, pcapfilter.ErrUnavailable) {
			return nil, fmt.Errorf("--filter: %w; use --hook, --outcome, --reason or --id instead, or a build with cgo and libpcap", err)
		}
		if err != nil {
			return nil, usageError{fmt.Errorf("--filter: %w", err)}
		}
		m, err := pcapfilter.NewMatcher(prog)
		if err != nil {
			return nil, fmt.Errorf("--filter: %w", err)
		}
		s.Filter = m.Match
	}
	return s, nil
}

func splitAll(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// timeBounds resolves --since/--until: RFC 3339 times, or durations from
// the first event (which needs a first pass over the inputs' first event).
func timeBounds(c *cli.Context, names []string, s *paths.Selector) error {
	for _, b := range []struct {
		flag string
		dst  *int64
	}{{"since", &s.Since}, {"until", &s.Until}} {
		v := c.String(b.flag)
		if v == "" {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			*b.dst = t.UnixNano()
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return usagef("--%s %q: want an RFC 3339 time or a duration from the first event", b.flag, v)
		}
		first, err := firstEventTime(names)
		if err != nil {
			return err
		}
		*b.dst = first + int64(d)
		if *b.dst == 0 {
			*b.dst = 1
		}
	}
	return nil
}

func firstEventTime(names []string) (int64, error) {
	in, err := paths.Open(names)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	ev, err := in.Next()
	if err != nil {
		if err == io.EOF {
			return 0, nil
		}
		return 0, err
	}
	return ev.Time, nil
}

// setup opens the inputs and builds the selection and options.
func setup(c *cli.Context) (*paths.Input, *paths.Selector, paths.Options, func(), error) {
	names, err := inputs(c)
	if err != nil {
		return nil, nil, paths.Options{}, nil, err
	}
	sel, err := selection(c)
	if err != nil {
		return nil, nil, paths.Options{}, nil, err
	}
	if err := timeBounds(c, names, sel); err != nil {
		return nil, nil, paths.Options{}, nil, err
	}
	in, err := paths.Open(names)
	if err != nil {
		return nil, nil, paths.Options{}, nil, err
	}
	stopProgress := startProgress(c.App.ErrWriter, in)
	cleanup := func() {
		stopProgress()
		in.Close()
	}
	return in, sel, paths.Options{Window: c.Duration("window")}, cleanup, nil
}

func textOptions(c *cli.Context) paths.TextOptions {
	o := paths.TextOptions{TopPaths: c.Int("top")}
	if w, ok := terminalWidth(c.App.Writer); ok {
		o.Color = true
		o.Width = w
	}
	if c.Bool("color") {
		o.Color = true
	}
	if c.Bool("no-color") || os.Getenv("NO_COLOR") != "" {
		o.Color = false
	}
	return o
}

func runReport(c *cli.Context, summaryOnly bool) error {
	in, sel, opts, cleanup, err := setup(c)
	if err != nil {
		return err
	}
	defer cleanup()
	summaryOnly = summaryOnly || c.Bool("summary-only")
	to := textOptions(c)
	w := bufio.NewWriterSize(c.App.Writer, 256<<10)
	sum := paths.NewSummary()
	err = paths.Process(in, opts, sel, func(p *paths.Packet) error {
		sum.Add(p)
		if summaryOnly {
			return nil
		}
		return paths.WritePacketText(w, p, to)
	})
	if err != nil {
		w.Flush()
		return err
	}
	if in.BadComments > 0 {
		fmt.Fprintf(c.App.ErrWriter, "analyze: %d pathcap comments did not parse; their events were read as plain packets\n", in.BadComments)
	}
	if err := paths.WriteSummaryText(w, sum, to); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return truncationError(in)
}

func runStatsJSON(c *cli.Context) error {
	in, sel, opts, cleanup, err := setup(c)
	if err != nil {
		return err
	}
	defer cleanup()
	sum := paths.NewSummary()
	if err := paths.Process(in, opts, sel, func(p *paths.Packet) error {
		sum.Add(p)
		return nil
	}); err != nil {
		return err
	}
	if _, err := c.App.Writer.Write(paths.AppendSummaryJSON(nil, sum, c.Int("top"))); err != nil {
		return err
	}
	return truncationError(in)
}

func runPaths(c *cli.Context) error {
	if !c.Bool("json") {
		return usagef("paths writes JSON lines only (--json)")
	}
	in, sel, opts, cleanup, err := setup(c)
	if err != nil {
		return err
	}
	defer cleanup()
	w := bufio.NewWriterSize(c.App.Writer, 256<<10)
	var line []byte
	err = paths.Process(in, opts, sel, func(p *paths.Packet) error {
		line = paths.AppendJSON(line[:0], p)
		_, err := w.Write(line)
		return err
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err == nil {
		err = truncationError(in)
	}
	return err
}

// createOutput opens an output file ("-": standard output). The returned
// commit function closes it; on failure the partial file is removed.
func createOutput(c *cli.Context, name string) (io.Writer, func(ok bool) error, error) {
	if name == "-" {
		return c.App.Writer, func(bool) error { return nil }, nil
	}
	f, err := os.Create(name)
	if err != nil {
		return nil, nil, fmt.Errorf("create output: %w", err)
	}
	return f, func(ok bool) error {
		err := f.Close()
		if !ok || err != nil {
			os.Remove(name)
		}
		if err != nil {
			return fmt.Errorf("close output: %w", err)
		}
		return nil
	}, nil
}

func runWireshark(c *cli.Context) error {
	in, sel, opts, cleanup, err := setup(c)
	if err != nil {
		return err
	}
	defer cleanup()
	out, commit, err := createOutput(c, c.String("output"))
	if err != nil {
		return err
	}
	opts.KeepData = true
	v, err := paths.NewViewWriter(out, "pathcap analyze "+version)
	if err == nil {
		err = paths.Process(in, opts, sel, v.Write)
	}
	if err == nil {
		err = v.Close()
	}
	if cerr := commit(err == nil); err == nil {
		err = cerr
	}
	if err == nil {
		err = truncationError(in)
	}
	return err
}

func runExport(c *cli.Context) error {
	names, err := inputs(c)
	if err != nil {
		return err
	}
	format := paths.ExportFormat(c.String("format"))
	if format != paths.ExportJSONL && format != paths.ExportParquet {
		return usagef("--format %q: want jsonl or parquet", format)
	}
	if format == paths.ExportParquet && c.String("output") == "-" {
		return usagef("parquet needs a file (-o FILE)")
	}
	in, err := paths.Open(names)
	if err != nil {
		return err
	}
	defer in.Close()
	stop := startProgress(c.App.ErrWriter, in)
	defer stop()
	out, commit, err := createOutput(c, c.String("output"))
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(out, 256<<10)
	err = paths.Export(in, bw, format)
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err == nil {
		err = truncationError(in)
	}
	if cerr := commit(err == nil); err == nil {
		err = cerr
	}
	return err
}

// truncationError reports inputs that end inside a block: their complete
// blocks were used, and the exit status says the input was damaged.
func truncationError(in *paths.Input) error {
	if len(in.Truncated) == 0 {
		return nil
	}
	return fmt.Errorf("%w (every complete block before it was used)", errors.Join(in.Truncated...))
}
