package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/extcap"
	"github.com/pathcap/pathcap/internal/wsinstall"
)

// The extcap interface: Wireshark lists record as a capture interface and
// runs it with --extcap-* arguments (see internal/extcap). A capture is an
// ordinary recording into the named pipe Wireshark reads, made by the same
// command line parser and run function as record -w.

// extcapInterface is the one interface record offers.
var extcapInterface = extcap.Interface{Value: "pathcap", Display: "pathcap: kernel packet paths"}

// extcapLogFile is the dialog option that sends record's messages to a
// file; it is not a record flag.
const extcapLogFile = "--log-file"

// extcapArgs are the options of the interface's configuration dialog, by
// the record flags they set. The filter expression is Wireshark's capture
// filter field, which Wireshark passes as --extcap-capture-filter.
func extcapArgs() []extcap.Arg {
	var backends []extcap.Value
	for _, b := range capture.Backends() {
		backends = append(backends, extcap.Value{Value: b, Display: b, Default: b == capture.BackendAuto})
	}
	return []extcap.Arg{
		{Call: "--backend", Display: "Backend", Type: extcap.TypeSelector, Values: backends,
			Tooltip: "How kernel functions are hooked besides the tracepoints: auto takes the best this kernel allows, tracepoint hooks no functions (docs/BACKENDS.md)"},
		{Call: "--functions", Display: "Functions (regular expression)", Type: extcap.TypeString,
			Tooltip: "Hook the kernel functions taking an skb whose names match (function backends; empty: the backend's default set)"},
		{Call: "--stack", Display: "Kernel stacks", Type: extcap.TypeBoolFlag,
			Tooltip: "Record each event's kernel call chain, in a pathcap-stack comment"},
		{Call: "--trace-tc", Display: "Trace tc programs", Type: extcap.TypeBoolFlag,
			Tooltip: "Also record the packet at the entry and the verdict at the exit of every tc BPF program loaded on the host (needs fentry on BPF programs: record check)"},
		{Call: "--trace-xdp", Display: "Trace XDP programs", Type: extcap.TypeBoolFlag,
			Tooltip: "Also record the frame at the entry and the action at the exit of every XDP program loaded on the host (unfiltered; needs fentry on BPF programs)"},
		{Call: "--snaplen", Display: "Snap length", Type: extcap.TypeUnsigned, Default: fmt.Sprint(capture.DefaultSnaplen),
			Range: fmt.Sprintf("1,%d", capture.MaxSnaplen), Tooltip: "Bytes recorded of each packet"},
		{Call: "--netns", Display: "Network namespace", Type: extcap.TypeString,
			Tooltip: "Only packets in this network namespace: a name under /run/netns, a path such as /proc/PID/ns/net, or an inode number (empty: every namespace)"},
		{Call: "--max-rate", Display: "Max rate (events/s per CPU)", Type: extcap.TypeUnsigned, Default: "0",
			Tooltip: "At most this many events per second on each CPU, enforced in the kernel; the rest are counted as skipped (0: no limit)"},
		{Call: extcapLogFile, Display: "Log file", Type: extcap.TypeFileSelect, Group: "Debug",
			Tooltip: "Append record's messages (hooks attached, events lost) to this file; Wireshark shows anything written to standard error as an error"},
	}
}

// extcapMain answers one extcap call and returns the exit status.
// Wireshark reports a failed capture with what the program wrote to
// standard error, and any output there as an error even on success: only
// errors go there.
func extcapMain(args []string, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "record: %s\n", oneLine(err))
		return 1
	}
	r, err := extcap.Parse(args, extcapArgs())
	if err != nil {
		return fail(fmt.Errorf("extcap: %w", err))
	}
	switch {
	case r.Interfaces:
		err = extcap.WriteInterfaces(stdout, version, []extcap.Interface{extcapInterface})
	case !r.DLTs && !r.Config && !r.Capture && !r.HasFilter && r.HasVersion:
		err = extcap.WriteVersion(stdout, version)
	case r.Interface != extcapInterface.Value:
		err = fmt.Errorf("extcap: unknown interface %q (record offers %q)", r.Interface, extcapInterface.Value)
	case r.DLTs:
		// Every interface block of a recording is Ethernet (docs/FORMAT.md).
		err = extcap.WriteDLTs(stdout, []extcap.DLT{{Number: 1, Name: "EN10MB", Display: "Ethernet (synthesized where the kernel had no MAC header)"}})
	case r.Config:
		err = extcap.WriteConfig(stdout, extcapArgs())
	case r.Capture:
		err = extcapCapture(r)
	case r.HasFilter:
		// A filter check: nothing for a valid filter, else the reason on
		// the first line of standard output, and status 0 (Wireshark
		// ignores the output of a call that fails).
		if msg := checkCaptureFilter(r.Filter); msg != "" {
			_, err = fmt.Fprintln(stdout, msg)
		}
	default:
		err = errors.New("extcap: nothing asked (want --extcap-interfaces, --extcap-dlts, --extcap-config, --extcap-capture-filter or --capture)")
	}
	if err != nil {
		return fail(err)
	}
	return 0
}

// checkCaptureFilter returns why expr cannot be a filter, or "" if it can
// (an empty expression is no filter).
func checkCaptureFilter(expr string) string {
	if strings.TrimSpace(expr) == "" {
		return ""
	}
	if _, err := capture.CompileFilter(expr); err != nil {
		return oneLine(err)
	}
	return ""
}

// extcapCapture records into the fifo until Wireshark stops the capture
// (SIGTERM, or closing the pipe): the record command line built from the
// dialog's options, run as record -w - would run, with the pipe as
// standard output.
func extcapCapture(r extcap.Request) error {
	if r.Fifo == "" {
		return errors.New("extcap: --capture needs --fifo")
	}
	// Open the pipe before anything can fail: Wireshark's reader waits in
	// open() for a writer, and would wait forever if record exited
	// without opening it. Closed without data, the pipe gives the reader
	// an end of file instead.
	fifo, err := os.OpenFile(r.Fifo, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open the capture pipe: %w", err)
	}
	defer fifo.Close()

	log := io.Discard
	// Every frame with its bytes: Wireshark shows the frames as they come,
	// and carries no bytes forward (--bytes changed would leave most
	// frames empty there).
	argv := []string{"record", "--write", "-", "--bytes", "all"}
	for _, o := range r.Options {
		switch {
		case o.Call == extcapLogFile:
			if o.Value == "" {
				continue
			}
			f, err := os.OpenFile(o.Value, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				return fmt.Errorf("open log file: %w", err)
			}
			defer f.Close()
			log = f
		case o.Value == "" && isBoolFlag(o.Call):
			argv = append(argv, o.Call)
		case o.Value == "":
			// Wireshark passes an emptied text field as an empty value.
		default:
			argv = append(argv, o.Call+"="+o.Value)
		}
	}
	if strings.TrimSpace(r.Filter) != "" {
		argv = append(argv, "--", r.Filter)
	}
	fmt.Fprintf(log, "record: extcap capture into %s: %s\n", r.Fifo, strings.Join(argv, " "))
	if err := makeDumpable(); err != nil {
		fmt.Fprintf(log, "record: %v\n", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		if readerGone(ctx, fifo) {
			fmt.Fprintf(log, "record: the reader closed the pipe\n")
			cancel()
		}
	}()
	app := newApp()
	app.Writer, app.ErrWriter = fifo, log
	err = app.RunContext(ctx, argv)
	var ue usageError
	if errors.As(err, &ue) {
		err = ue.error
	}
	if errors.Is(err, syscall.EPIPE) {
		// Wireshark closed the pipe: the capture is over.
		fmt.Fprintf(log, "record: stopped: the reader closed the pipe\n")
		return nil
	}
	if err != nil {
		fmt.Fprintf(log, "record: %v\n", err)
	}
	return err
}

// readerGone waits until the pipe f, open for writing, has no reader left
// (true) or ctx is done (false), so that a capture without events still
// ends when Wireshark goes away.
func readerGone(ctx context.Context, f *os.File) bool {
	conn, err := f.SyscallConn()
	if err != nil {
		return false
	}
	for ctx.Err() == nil {
		gone := false
		cerr := conn.Control(func(fd uintptr) {
			fds := []unix.PollFd{{Fd: int32(fd)}}
			// A pipe's writer gets POLLERR once every reader closed it.
			if n, err := unix.Poll(fds, 200); err == nil && n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0 {
				gone = true
			}
		})
		if cerr != nil {
			return false
		}
		if gone {
			return true
		}
	}
	return false
}

// makeDumpable undoes what executing a binary with file capabilities does
// to the process: it starts non-dumpable, so that its /proc/self files
// belong to root and it cannot open its own /proc/self/mem, from which
// the BPF library reads the kernel version that kprobe programs are
// loaded with (the kprobe-multi and kprobe backends, the attach cookie
// probe). Other processes of the user gain nothing: to trace the process
// or read its memory, the kernel also requires every capability it holds
// (ptrace access checks).
func makeDumpable() error {
	d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil || d == 1 {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("make the process dumpable (for /proc/self/mem): %w", err)
	}
	return nil
}

// isBoolFlag reports whether call (--name) is a boolean record flag.
func isBoolFlag(call string) bool {
	name := strings.TrimPrefix(call, "--")
	for _, f := range newApp().Flags {
		if _, ok := f.(*cli.BoolFlag); ok && slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// oneLine returns err's message on one line, for Wireshark's dialogs.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// wiresharkInstallCommand installs the profile, the dissector and the
// extcap entry for the user who runs it.
var wiresharkInstallCommand = &cli.Command{
	Name:  "wireshark-install",
	Usage: "install the Wireshark profile, Lua dissector and extcap entry for the current user",
	Description: "Writes the pathcap configuration profile into Wireshark's personal profiles\n" +
		"folder, pathcap.lua into its personal Lua plugins folder, and links\n" +
		"record into its personal extcap folder as \"pathcap\", so that Wireshark lists\n" +
		"the interface \"pathcap: kernel packet paths\"; it says where each went.\n" +
		"Run it as the user who runs Wireshark (not with sudo). Wireshark runs the\n" +
		"extcap as that user: grant record the capabilities it needs with\n" +
		"sudo setcap cap_bpf,cap_perfmon,cap_net_admin+ep RECORD (see README.md).",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "extcap-dir", Usage: "link the extcap entry into `DIR` instead of the personal extcap folder (e.g. Wireshark's global one, as root)"},
		&cli.BoolFlag{Name: "no-extcap", Usage: "install only the profile and the dissector"},
	},
	Action: func(c *cli.Context) error {
		folders := wsinstall.Detect(c.Context, runtime.GOOS)
		opts := wsinstall.Options{Folders: folders}
		if d := c.String("extcap-dir"); d != "" {
			opts.Folders.Extcap, opts.Folders.ExtcapUnread = d, false
		}
		if !c.Bool("no-extcap") {
			exe, err := selfPath()
			if err != nil {
				return err
			}
			opts.Extcap = exe
		}
		done, err := wsinstall.Install(opts)
		if werr := wsinstall.WriteReport(c.App.Writer, "record", opts.Folders, done); err == nil {
			err = werr
		}
		if err != nil {
			return err
		}
		if opts.Extcap != "" {
			if note := privilegeNote(opts.Extcap); note != "" {
				fmt.Fprintf(c.App.Writer, "record: %s\n", note)
			}
		}
		return nil
	},
}

// selfPath returns the path of the running record binary, symbolic links
// resolved.
func selfPath() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find record's own path: %w", err)
	}
	return exe, nil
}

// privilegeNote says how Wireshark, which runs the extcap as the user, can
// record: "" when exe carries file capabilities.
func privilegeNote(exe string) string {
	if _, err := unix.Getxattr(exe, "security.capability", nil); err == nil {
		return fmt.Sprintf("%s carries file capabilities (getcap %s shows them): Wireshark can capture as you", exe, exe)
	}
	return fmt.Sprintf("Wireshark runs the extcap as you, and recording needs privileges: grant them to the binary with\n"+
		"  sudo setcap cap_bpf,cap_perfmon,cap_net_admin+ep %s\n"+
		"  (lets every user who can run it load BPF programs and read kernel memory through them; see README.md)", exe)
}
