// Command record records the packets that kernel hooks see, with their
// kernel metadata, into a pcap-ng file.
//
//	record [flags] [filter expression] [flags]
//
// Run "record --help" for the flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pathcap/pathcap/internal/extcap"
)

func main() {
	// A closed output pipe (record -w - | head) is a write error that
	// ends the recording cleanly, not a fatal signal.
	signal.Ignore(syscall.SIGPIPE)
	if extcap.IsCall(os.Args[1:]) { // Wireshark runs record as an extcap (extcap.go)
		os.Exit(extcapMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := newApp()
	err := app.RunContext(ctx, tcpdumpOrder(app, os.Args))
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err and returns the process exit code: 0 without error,
// 2 for usage errors, the status of an exitError (see exitUsage and the
// others), 1 otherwise.
func exitCode(err error, stderr *os.File) int {
	if err == nil {
		return 0
	}
	code := exitFailure
	var ee exitError
	if ue, ok := err.(usageError); ok {
		code = exitUsage
		err = ue.error
	} else if errors.As(err, &ee) {
		code = ee.status
	}
	fmt.Fprintf(stderr, "record: %v\n", err)
	return code
}
