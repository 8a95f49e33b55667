// Command analyze rebuilds each packet's path through the kernel from
// pathcap recordings (or any pcap-ng file): text reports, JSON, statistics,
// a Wireshark view with one frame per packet, event exports, an HTML report
// and the path graph.
//
//	analyze [report] [--stacks] FILE...
//	analyze paths --json FILE...
//	analyze stats [--json] [--stacks N] FILE...
//	analyze wireshark -o OUT.pcapng FILE...
//	analyze export --format jsonl|parquet -o OUT FILE...
//	analyze html -o REPORT.html FILE...
//	analyze graph --format dot|svg [-o OUT] FILE...
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/urfave/cli/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	app := newApp(os.Stdout, os.Stderr)
	err := app.RunContext(ctx, withDefaultCommand(app, os.Args))
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// Exit statuses.
const (
	exitError   = 1 // the analysis failed
	exitUsage   = 2 // how analyze was called is wrong
	exitUnclean = 3 // an input did not end cleanly: everything before was analyzed
)

// exitCode prints err and returns the exit status: 0; 2 for usage
// errors; 3 when an input did not end cleanly (one line per file), the
// analysis of everything before written; 1 otherwise.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "analyze: %v\n", ue.error)
		return exitUsage
	}
	var unclean *uncleanError
	if errors.As(err, &unclean) {
		for _, line := range unclean.lines {
			fmt.Fprintf(stderr, "analyze: %s\n", line)
		}
		return exitUnclean
	}
	fmt.Fprintf(stderr, "analyze: %v\n", err)
	return exitError
}

// withDefaultCommand inserts "report" when the first argument is neither a
// command nor a global flag, so that "analyze FILE" reports.
func withDefaultCommand(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	switch args[1] {
	case "-h", "--help", "-v", "--version", "help", "h":
		return args
	}
	if app.Command(args[1]) != nil {
		return args
	}
	return append([]string{args[0], "report"}, args[1:]...)
}
