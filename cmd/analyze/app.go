package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pathcap/pathcap/internal/completion"

	"github.com/pathcap/pathcap/internal/pcapfilter"
	"github.com/pathcap/pathcap/paths"
	"github.com/pathcap/pathcap/paths/render"
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

// colorFlags returns the flags that force the text output's colour on or
// off (otherwise it follows the terminal and NO_COLOR).
func colorFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "color", Usage: "force colour on"},
		&cli.BoolFlag{Name: "no-color", Usage: "force colour off"},
	}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	report := &cli.Command{
		Name:      "report",
		Usage:     "print each packet's path, then a summary (the default command)",
		ArgsUsage: "FILE...",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "summary-only", Usage: "print only the summary"},
			&cli.IntFlag{Name: "top", Value: 10, Usage: "list the `N` most common paths"},
			&cli.BoolFlag{Name: "stacks", Usage: "show each hop's kernel call chain (recordings made with record --stack)"},
		}, append(colorFlags(), selectionFlags...)...),
		Action: func(c *cli.Context) error { return runReport(c, false) },
	}
	app := &cli.App{
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
					&cli.IntFlag{Name: "stacks", Usage: "list the `N` most frequent kernel stacks of each drop reason (recordings made with record --stack)"},
				}, append(colorFlags(), selectionFlags...)...),
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
				Flags:     append([]cli.Flag{&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` (required; - for standard output)"}}, selectionFlags...),
				Action:    runWireshark,
			},
			{
				Name:      "export",
				Usage:     "write one row per event for DuckDB, Spark or ClickHouse",
				ArgsUsage: "FILE...",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "format", Value: "jsonl", Usage: "`FORMAT`: jsonl or parquet"},
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` (required; - for standard output, jsonl only)"},
				}, selectionFlags...),
				Action: runExport,
			},
			graphCommand(),
			htmlCommand(),
			wiresharkInstallCommand(),
		},
		HideHelpCommand: true,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		// Reached only without any argument ("analyze FILE" runs report).
		Action: func(c *cli.Context) error {
			return usagef("no input files (usage: analyze [command] [flags] FILE...; analyze --help lists the commands)")
		},
	}
	app.Commands = append(app.Commands, completion.Command(completion.Spec{
		Values: map[string][]string{"format": {"jsonl", "parquet"}},
		Files:  []string{"output"},
	}))
	for _, cmd := range app.Commands {
		cmd.OnUsageError = func(c *cli.Context, err error, _ bool) error {
			return usagef("%v (see analyze %s --help)", err, c.Command.Name)
		}
	}
	return app
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

// timeBound is a parsed --since or --until: an absolute time, or a
// duration from the first event.
type timeBound struct {
	flag     string
	dst      *int64
	abs      int64
	rel      time.Duration
	relative bool
}

// parseTimeBounds parses --since/--until: RFC 3339 times, or durations
// from the first event (resolved by resolveTimeBounds once the inputs are
// open).
func parseTimeBounds(c *cli.Context, s *paths.Selector) ([]timeBound, error) {
	var out []timeBound
	for _, b := range []timeBound{{flag: "since", dst: &s.Since}, {flag: "until", dst: &s.Until}} {
		v := c.String(b.flag)
		if v == "" {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			b.abs = t.UnixNano()
		} else if d, err := time.ParseDuration(v); err == nil {
			b.rel, b.relative = d, true
		} else {
			return nil, usagef("--%s %q: want an RFC 3339 time or a duration from the first event", b.flag, v)
		}
		out = append(out, b)
	}
	return out, nil
}

// resolveTimeBounds sets the selector's bounds; durations count from the
// first event of the inputs, which is peeked at without consuming it (so
// that standard input works too).
func resolveTimeBounds(in *paths.Input, bounds []timeBound) error {
	for _, b := range bounds {
		if !b.relative {
			*b.dst = b.abs
			continue
		}
		var first int64
		ev, err := in.Peek()
		if err == nil {
			first = ev.Time
		} else if !errors.Is(err, io.EOF) {
			return err
		}
		*b.dst = first + int64(b.rel)
		if *b.dst == 0 {
			*b.dst = 1
		}
	}
	return nil
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
	bounds, err := parseTimeBounds(c, sel)
	if err != nil {
		return nil, nil, paths.Options{}, nil, err
	}
	in, err := paths.Open(names)
	if err != nil {
		return nil, nil, paths.Options{}, nil, err
	}
	if err := resolveTimeBounds(in, bounds); err != nil {
		in.Close()
		return nil, nil, paths.Options{}, nil, err
	}
	stopProgress := startProgress(c.App.ErrWriter, in)
	cleanup := func() {
		stopProgress()
		in.Close()
	}
	return in, sel, paths.Options{Window: c.Duration("window")}, cleanup, nil
}

func textOptions(c *cli.Context) render.TextOptions {
	o := render.TextOptions{TopPaths: c.Int("top")}
	if w, ok := terminalWidth(c.App.Writer); ok {
		o.Color = true
		o.Width = w
	}
	if c.Bool("color") {
		o.Color = true
	}
	// NO_COLOR (no-color.org) turns off the automatic colours; an
	// explicit flag wins over it.
	if c.Bool("no-color") || (os.Getenv("NO_COLOR") != "" && !c.Bool("color")) {
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
	// The summary does not read what changed from hop to hop.
	opts.NoChanges = summaryOnly
	to := textOptions(c)
	w := bufio.NewWriterSize(c.App.Writer, 256<<10)
	sum := paths.NewSummary()
	if c.Command.Name == "stats" {
		if sum.DropStacks = c.Int("stacks"); sum.DropStacks < 0 {
			return usagef("--stacks %d: want a count of 0 or more", sum.DropStacks)
		}
	} else {
		to.Stacks = c.Bool("stacks")
	}
	tw := render.NewTextWriter(w, to)
	err = paths.Process(in, opts, sel, func(p *paths.Packet) error {
		sum.Add(p)
		if summaryOnly {
			return nil
		}
		return tw.WritePacket(p)
	})
	if err != nil {
		w.Flush()
		return err
	}
	if in.BadComments > 0 {
		fmt.Fprintf(c.App.ErrWriter, "analyze: %d pathcap comments did not parse; their events were read as plain packets\n", in.BadComments)
	}
	sum.LostEvents, sum.SkippedEvents = in.LostEvents, in.SkippedEvents
	if err := render.WriteSummaryText(w, sum, to); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return uncleanEnd(in)
}

func runStatsJSON(c *cli.Context) error {
	in, sel, opts, cleanup, err := setup(c)
	if err != nil {
		return err
	}
	defer cleanup()
	sum := paths.NewSummary()
	if sum.DropStacks = c.Int("stacks"); sum.DropStacks < 0 {
		return usagef("--stacks %d: want a count of 0 or more", sum.DropStacks)
	}
	// The summary does not read what changed from hop to hop.
	opts.NoChanges = true
	if err := paths.Process(in, opts, sel, func(p *paths.Packet) error {
		sum.Add(p)
		return nil
	}); err != nil {
		return err
	}
	sum.LostEvents, sum.SkippedEvents = in.LostEvents, in.SkippedEvents
	if _, err := c.App.Writer.Write(render.AppendSummaryJSON(nil, sum, c.Int("top"))); err != nil {
		return err
	}
	return uncleanEnd(in)
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
	// The lines are appended to one buffer, written when it is full:
	// no copy into a bufio.Writer.
	const flushAt = 256 << 10
	out := c.App.Writer
	buf := make([]byte, 0, flushAt+64<<10)
	var enc render.JSONEncoder
	err = paths.Process(in, opts, sel, func(p *paths.Packet) error {
		buf = enc.Append(buf, p)
		if len(buf) < flushAt {
			return nil
		}
		_, err := out.Write(buf)
		buf = buf[:0]
		return err
	})
	if len(buf) > 0 {
		// Also after an error: what was analyzed before it is written.
		if _, werr := out.Write(buf); err == nil {
			err = werr
		}
	}
	if err == nil {
		err = uncleanEnd(in)
	}
	return err
}

// createOutput opens an output file ("-": standard output). The output is
// written to a temporary file beside it, which the returned commit
// function renames into place on success and removes on failure: a
// failed run leaves neither a partial file nor damage to an earlier one.
// The file is readable by its owner only (0600): it holds recorded data.
func createOutput(c *cli.Context, name string) (io.Writer, func(ok bool) error, error) {
	if name == "-" {
		return c.App.Writer, func(bool) error { return nil }, nil
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*.tmp")
	if err != nil {
		return nil, nil, fmt.Errorf("create output: %w", err)
	}
	tmp := f.Name()
	return f, func(ok bool) error {
		err := f.Chmod(0o600)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if ok && err == nil {
			err = os.Rename(tmp, name)
		}
		if !ok || err != nil {
			os.Remove(tmp)
		}
		if err != nil {
			return fmt.Errorf("write output %s: %w", name, err)
		}
		return nil
	}, nil
}

// finishOutput ends a command that wrote to an output of createOutput:
// it flushes bw (when not nil), keeps the output if err is nil (removes
// it otherwise), and then reports inputs that did not end cleanly. A
// truncated input still gives a complete output of what could be read: it
// is kept, and the exit status says the input was damaged.
func finishOutput(in *paths.Input, bw *bufio.Writer, commit func(ok bool) error, err error) error {
	if bw != nil {
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
	}
	if cerr := commit(err == nil); err == nil {
		err = cerr
	}
	if err == nil {
		err = uncleanEnd(in)
	}
	return err
}

// outputName returns -o, or a usage error when it is missing.
func outputName(c *cli.Context) (string, error) {
	name := c.String("output")
	if name == "" {
		return "", usagef("%s needs -o FILE (- for standard output)", c.Command.Name)
	}
	return name, nil
}

func runWireshark(c *cli.Context) error {
	outName, err := outputName(c)
	if err != nil {
		return err
	}
	in, sel, opts, cleanup, err := setup(c)
	if err != nil {
		return err
	}
	defer cleanup()
	out, commit, err := createOutput(c, outName)
	if err != nil {
		return err
	}
	opts.KeepData = true
	v, err := render.NewViewWriter(out, "pathcap analyze "+version)
	if err == nil {
		err = paths.Process(in, opts, sel, v.Write)
	}
	if err == nil {
		err = v.Close()
	}
	return finishOutput(in, nil, commit, err)
}

func runExport(c *cli.Context) error {
	if _, err := inputs(c); err != nil {
		return err
	}
	outName, err := outputName(c)
	if err != nil {
		return err
	}
	format := render.ExportFormat(c.String("format"))
	if format != render.ExportJSONL && format != render.ExportParquet {
		return usagef("--format %q: want jsonl or parquet", format)
	}
	if format == render.ExportParquet && outName == "-" {
		return usagef("parquet needs a file (-o FILE)")
	}
	in, sel, opts, cleanup, err := setup(c)
	if err != nil {
		return err
	}
	defer cleanup()
	out, commit, err := createOutput(c, outName)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(out, 256<<10)
	if selecting(c) {
		// Rows of the selected packets only: the paths are rebuilt first.
		err = render.ExportPackets(in, bw, format, opts, sel)
	} else {
		err = render.Export(in, bw, format)
	}
	return finishOutput(in, bw, commit, err)
}

// uncleanError reports inputs that did not end cleanly (exit status 3):
// everything before where they end was analyzed.
type uncleanError struct {
	lines []string // one per file: the file and what is missing
}

func (e *uncleanError) Error() string { return strings.Join(e.lines, "\n") }

// uncleanEnd reports the inputs that did not end cleanly: those that
// end inside a block (their complete blocks were used) and recordings
// without their closing interface statistics (every event was used).
func uncleanEnd(in *paths.Input) error {
	if len(in.Truncated) == 0 && len(in.NotClosed) == 0 {
		return nil
	}
	e := &uncleanError{}
	for _, err := range in.Truncated {
		file, cause := splitInputError(err)
		e.lines = append(e.lines, fmt.Sprintf("%s: did not end cleanly: its last block is cut short (%v); every complete block before it was used", file, cause))
	}
	for _, err := range in.NotClosed {
		file, cause := splitInputError(err)
		e.lines = append(e.lines, fmt.Sprintf("%s: did not end cleanly: %v; every event in it was used", file, cause))
	}
	return e
}

// splitInputError returns the file and the cause of a *paths.InputError.
func splitInputError(err error) (string, error) {
	var ie *paths.InputError
	if errors.As(err, &ie) {
		return ie.File, ie.Err
	}
	return "input", err
}

// selecting reports whether any selection flag was given.
func selecting(c *cli.Context) bool {
	for _, name := range []string{"id", "outcome", "reason", "hook", "since", "until", "filter"} {
		if c.IsSet(name) {
			return true
		}
	}
	return false
}
