// Command record records the packets that kernel hooks see, with their
// kernel metadata, into a pcap-ng file.
//
//	record [flags] [filter expression]
//
// Run "record --help" for the flags.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// A closed output pipe (record -w - | head) is a write error that
	// ends the recording cleanly, not a fatal signal.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp().RunContext(ctx, os.Args)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err and returns the process exit code: 0 without error,
// 2 for usage errors, 1 otherwise.
func exitCode(err error, stderr *os.File) int {
	if err == nil {
		return 0
	}
	code := 1
	if ue, ok := err.(usageError); ok {
		code = 2
		err = ue.error
	}
	fmt.Fprintf(stderr, "record: %v\n", err)
	return code
}
