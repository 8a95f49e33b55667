package main

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/pathcap/pathcap/paths"
)

// terminalWidth returns the width of w if it is a terminal.
func terminalWidth(w io.Writer) (int, bool) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0, false
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width <= 0 {
		return 80, true
	}
	return width, true
}

// startProgress shows a progress bar on stderr, when it is a terminal, for
// inputs that take more than a second. It returns a function that removes
// the bar.
func startProgress(stderr io.Writer, in *paths.Input) func() {
	if _, ok := terminalWidth(stderr); !ok {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-done:
			return
		case <-time.After(time.Second):
		}
		_, total := in.Progress()
		bar := progressbar.NewOptions64(max(total, -1),
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription("reading"),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				_ = bar.Finish()
				return
			case <-t.C:
				read, _ := in.Progress()
				_ = bar.Set64(read)
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}
