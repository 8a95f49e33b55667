package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/completion"
	"github.com/pathcap/pathcap/internal/kallsyms"
	"github.com/pathcap/pathcap/internal/netdev"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/recording"
)

// version is the recorder's version, written into every file.
const version = "0.1.0"

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// options are the command line, as plain values.
type options struct {
	output    string
	count     uint64
	duration  time.Duration
	snaplen   int
	backend   string
	functions string // --functions: regular expression, "" for the backend's default
	fexit     bool   // --fexit: hook function exits too (fentry)
	hooks     []string
	list      bool
	readyFile string
	ringSize  int
	filter    string // libpcap expression, "" for none
	netns     string // --netns: namespace file, name or inode
	mark      string // --mark: VALUE[/MASK]
	ifname    string // --ifname: device name
	pid       int64  // --pid: 0 for any
	track     bool   // --track: follow kept packets at later hooks

	// Kernel stacks.
	stack      bool // --stack: record each event's kernel stack
	stackDepth int  // --stack-depth: at most this many frames

	probeReads string // --probe-read: auto, on or off
	maxRate    int    // --max-rate: events per second, 0 for no limit
	verbose    bool   // --verbose: verifier logs of refused programs
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "record",
		Usage: "record the packets kernel hooks see, with kernel metadata, into pcap-ng",
		UsageText: "record [flags] [filter expression] [flags]\n\n" +
			"The filter expression is tcpdump's (pcap-filter(7)), e.g. record -w out.pcapng tcp port 443;\n" +
			"as with tcpdump, flags may also follow it (record tcp port 443 -w out.pcapng -c 10).\n" +
			"It and the --netns, --ifname, --mark and --pid conditions are evaluated in the kernel,\n" +
			"ANDed, for each packet not yet followed; a packet that matched is recorded at every\n" +
			"later hook (--track=false to filter at every hook). See docs/FILTERS.md.",
		Version: version,
		Description: "Attaches BPF programs to every kernel tracepoint (and, with a function backend,\n" +
			"every kernel function) that sees a struct sk_buff and writes one\n" +
			"pcap-ng packet block per hook hit: the bytes as the kernel held them, and the hook,\n" +
			"device, network namespace, drop reason and process as options and comments.\n" +
			"Without -w, events are printed one per line.",
		HideHelpCommand: true,
		Commands: []*cli.Command{checkCommand, wiresharkInstallCommand, completion.Command(completion.Spec{
			Values: map[string][]string{
				"backend":    capture.Backends(),
				"probe-read": {capture.ProbeReadsAuto, capture.ProbeReadsOn, capture.ProbeReadsOff},
			},
			Dynamic: map[string]string{
				"ifname": "ls /sys/class/net; echo any",
				"netns":  "ls /run/netns",
				"hooks":  "record --list --backend tracepoint | sed -e 's/^[a-z]*://' -e 's/ .*//'",
			},
			Files: []string{"write", "ready-file"},
		})},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "write", Aliases: []string{"w"}, Usage: "write the recording to `FILE` (- for standard output)", EnvVars: []string{"PATHCAP_WRITE"}},
			&cli.Uint64Flag{Name: "count", Aliases: []string{"c"}, Usage: "stop after `N` events (packet blocks)"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after `D` (e.g. 10s, 5m)"},
			&cli.IntFlag{Name: "snaplen", Aliases: []string{"s"}, Value: capture.DefaultSnaplen, Usage: "record at most `N` bytes of each packet", EnvVars: []string{"PATHCAP_SNAPLEN"}},
			&cli.StringFlag{Name: "backend", Value: capture.BackendAuto, Usage: "how kernel functions are hooked, besides the tracepoints: `KIND` auto, tracepoint (none), kprobe-multi, kprobe or fentry (see docs/BACKENDS.md)", EnvVars: []string{"PATHCAP_BACKEND"}},
			&cli.StringFlag{Name: "functions", Usage: "hook the kernel functions taking an skb whose names match `REGEX` (default: all for kprobe-multi, a built-in set for kprobe and fentry)", EnvVars: []string{"PATHCAP_FUNCTIONS"}},
			&cli.BoolFlag{Name: "fexit", Usage: "also hook every function's exit, for return values (fentry backend)"},
			&cli.StringFlag{Name: "hooks", Usage: "record only these comma-separated tracepoint `NAMES` (default: all)"},
			&cli.BoolFlag{Name: "list", Aliases: []string{"D"}, Usage: "print the hooks this kernel offers (with --backend and --functions: what that would attach) and exit; tcpdump's -D lists devices, record's hooks, since every device is recorded unless --ifname says otherwise"},
			&cli.StringFlag{Name: "ready-file", Usage: "create `PATH` once every hook is attached"},
			&cli.IntFlag{Name: "ring-size", Value: capture.DefaultRingBufferSize, Usage: "ring buffer size in `BYTES` (a power of two)"},
			&cli.StringFlag{Name: "netns", Usage: "record only packets in the network namespace `NS`: /proc/PID/ns/net, /run/netns/NAME, NAME or an inode number", EnvVars: []string{"PATHCAP_NETNS"}},
			&cli.StringFlag{Name: "ifname", Aliases: []string{"i"}, Usage: "record only packets on device `NAME` (in --netns, else in record's own namespace); unlike tcpdump, record sees every device by default, and -i any is the same as no -i"},
			&cli.StringFlag{Name: "mark", Usage: "record only packets with skb->mark & MASK == VALUE (`VALUE[/MASK]`)"},
			&cli.Int64Flag{Name: "pid", Usage: "record only packets seen while process `PID` runs (its sends; receiving runs in softirq)"},
			&cli.BoolFlag{Name: "track", Value: true, Usage: "keep recording a packet that matched at every later hook, whatever its bytes become (NAT, tunnels); --track=false filters at every hook"},

			// Kernel stacks.
			&cli.BoolFlag{Name: "stack", Usage: "record the kernel stack of every event, symbolized from /proc/kallsyms (docs/FORMAT.md, Kernel stacks)"},
			&cli.IntFlag{Name: "stack-depth", Value: capture.DefaultStackDepth, Usage: "record at most `N` frames of each kernel stack (with --stack)"},

			// Host safety.
			&cli.StringFlag{Name: "probe-read", Value: capture.ProbeReadsAuto, Usage: "`MODE` of bpf_probe_read_kernel calls per event: auto (not where SELinux would write an audit record per call, see record check), on (always: packet bytes everywhere), off (never: no packet bytes, no kprobes)", EnvVars: []string{"PATHCAP_PROBE_READ"}},
			&cli.IntFlag{Name: "max-rate", Usage: "record at most `N` events per second, enforced in the kernel per CPU (0: no limit; audit-safe mode defaults to " + fmt.Sprint(capture.DefaultAuditSafeRate) + ")"},
			&cli.BoolFlag{Name: "verbose", Usage: "print the verifier's log when the kernel refuses a program"},
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Action: func(c *cli.Context) error {
			opts := options{
				output:    c.String("write"),
				count:     c.Uint64("count"),
				duration:  c.Duration("duration"),
				snaplen:   c.Int("snaplen"),
				backend:   c.String("backend"),
				functions: c.String("functions"),
				fexit:     c.Bool("fexit"),
				list:      c.Bool("list"),
				readyFile: c.String("ready-file"),
				ringSize:  c.Int("ring-size"),
				filter:    strings.TrimSpace(strings.Join(c.Args().Slice(), " ")),
				netns:     c.String("netns"),
				ifname:    c.String("ifname"),
				mark:      c.String("mark"),
				pid:       c.Int64("pid"),
				track:     c.Bool("track"),

				stack:      c.Bool("stack"),
				stackDepth: c.Int("stack-depth"),

				probeReads: c.String("probe-read"),
				maxRate:    c.Int("max-rate"),
				verbose:    c.Bool("verbose"),
			}
			if h := c.String("hooks"); h != "" {
				for _, name := range strings.Split(h, ",") {
					if name = strings.TrimSpace(name); name != "" {
						opts.hooks = append(opts.hooks, name)
					}
				}
			}
			return run(c.Context, opts, c.App.Writer, c.App.ErrWriter)
		},
	}
}

func (o options) validate() error {
	if o.snaplen < 1 || o.snaplen > capture.MaxSnaplen {
		return usagef("snap length %d out of range 1..%d", o.snaplen, capture.MaxSnaplen)
	}
	if o.duration < 0 {
		return usagef("negative duration %v", o.duration)
	}
	if !slices.Contains(capture.Backends(), o.backend) {
		return usagef("unknown backend %q (want %s)", o.backend, strings.Join(capture.Backends(), ", "))
	}
	if o.functions != "" {
		if _, err := regexp.Compile(o.functions); err != nil {
			return usagef("--functions %q: %v", o.functions, err)
		}
		if o.backend == capture.BackendTracepoint {
			return usagef("--functions needs a function backend, not %s", o.backend)
		}
	}
	if o.fexit && o.backend != capture.BackendFentry && o.backend != capture.BackendAuto {
		return usagef("--fexit needs the fentry backend, not %s", o.backend)
	}
	if o.probeReads != capture.ProbeReadsAuto && o.probeReads != capture.ProbeReadsOn && o.probeReads != capture.ProbeReadsOff {
		return usagef("--probe-read %q: want auto, on or off", o.probeReads)
	}
	if o.maxRate < 0 {
		return usagef("--max-rate %d: want 0 (no limit) or more", o.maxRate)
	}
	if o.ringSize < 4096 || o.ringSize&(o.ringSize-1) != 0 {
		return usagef("ring size %d is not a power of two of at least 4096", o.ringSize)
	}
	// Kernel stacks: at most kernel.perf_event_max_stack's default.
	if o.stackDepth < 1 || o.stackDepth > maxStackDepth {
		return usagef("stack depth %d out of range 1..%d", o.stackDepth, maxStackDepth)
	}
	return nil
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.list {
		return listHooks(stdout, o)
	}
	// Compile the filter before creating the output or loading anything,
	// so that a bad expression fails fast.
	filter, match, err := o.filters()
	if err != nil {
		return err
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}

	// Create the output before loading anything, so that a bad path
	// fails fast.
	var out io.Writer = stdout
	var file *os.File
	switch o.output {
	case "", "-":
	default:
		f, err := os.OpenFile(o.output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return fmt.Errorf("create output: %w", err)
		}
		file, out = f, f
	}
	printing := o.output == ""
	if printing {
		out = io.Discard
	}

	rec, err := capture.NewRecorder(capture.Config{
		Snaplen:        o.snaplen,
		RingBufferSize: o.ringSize,
		Hooks:          o.hooks,
		Backend:        o.backend,
		Functions:      o.functions,
		Exit:           o.fexit,
		Filter:         filter,
		Match:          match,
		NoTrack:        !o.track,

		Stack:      o.stack,
		StackDepth: o.stackDepth,

		ProbeReads: o.probeReads,
		MaxRate:    o.maxRate,
	})
	if err != nil {
		if file != nil {
			file.Close()
			os.Remove(o.output)
		}
		var le *capture.LoadError
		if o.verbose && errors.As(err, &le) {
			fmt.Fprintf(stderr, "record: verifier log of %s:\n%s\n", le.What, strings.Join(le.Log(), "\n"))
		}
		return explain(err)
	}
	defer rec.Close()
	for _, n := range rec.Notes() {
		fmt.Fprintf(stderr, "record: %s\n", n)
	}
	describeHooks(stderr, rec, o)
	if filter != nil || match != (capture.Match{}) {
		fmt.Fprintf(stderr, "record: filtering in the kernel: %s\n", describeFilter(filter, match, o.track))
	}

	names := netdev.NewResolver()
	defer names.Close()
	var symbols recording.Symbolizer
	if table, err := kallsyms.Load(); err == nil {
		symbols = symbolizer{table}
	} else {
		fmt.Fprintf(stderr, "record: drop locations stay addresses: %v\n", err)
	}
	if o.stack {
		fmt.Fprintf(stderr, "record: recording kernel stacks, at most %d frames\n", o.stackDepth)
	}

	counter := &recording.CountingWriter{W: out}
	w, err := recording.NewWriter(counter, recording.Info{
		Hardware:    machine(),
		OS:          "Linux " + kernelRelease(),
		Application: "pathcap record " + version,
		Comments:    []string{sectionComment()},
		Snaplen:     o.snaplen,
	}, 256<<10, names, symbols)
	if err != nil {
		return err
	}

	if o.readyFile != "" {
		if err := os.WriteFile(o.readyFile, nil, 0o644); err != nil {
			return fmt.Errorf("create ready file: %w", err)
		}
	}

	ropts := recording.RunOptions{MaxEvents: o.count}
	if isTerminal(stderr) && !printing {
		ropts.Status = stderr
	}
	if printing {
		bw := bufio.NewWriter(stdout)
		defer bw.Flush()
		ropts.OnEvent = printer(bw, symbols, names)
		ropts.FlushInterval = 100 * time.Millisecond
	}
	sum, err := recording.Run(ctx, rec, w, counter, ropts)
	if file != nil {
		if cerr := file.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close output: %w", cerr)
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "record: %d events written, %d lost, %d bytes\n", sum.Events, sum.Lost, sum.Bytes)
	if sum.Lost > 0 {
		fmt.Fprintf(stderr, "record: %d events were lost because the ring buffer was full: try a larger --ring-size or a filter\n", sum.Lost)
	}
	if sum.Skipped > 0 {
		fmt.Fprintf(stderr, "record: %d hits were not recorded because the rate limit was reached (--max-rate, per CPU): a narrower filter or a higher limit records them\n", sum.Skipped)
	}
	return nil
}

// describeFilter says in one line what is filtered.
func describeFilter(f *capture.Filter, m capture.Match, track bool) string {
	var parts []string
	if f != nil {
		parts = append(parts, fmt.Sprintf("%q", f.String()))
	}
	if m.NetNS != 0 {
		parts = append(parts, fmt.Sprintf("netns %d", m.NetNS))
	}
	if m.Ifindex != 0 {
		parts = append(parts, fmt.Sprintf("ifindex %d", m.Ifindex))
	}
	if m.MarkMask != 0 {
		parts = append(parts, fmt.Sprintf("mark %#x/%#x", m.Mark, m.MarkMask))
	}
	if m.PID != 0 {
		parts = append(parts, fmt.Sprintf("pid %d", m.PID))
	}
	s := strings.Join(parts, " and ")
	if track {
		return s + ", following kept packets"
	}
	return s + ", at every hook"
}

// explain turns the recorder's typed errors into advice.
func explain(err error) error {
	switch {
	case errors.Is(err, capture.ErrPermission):
		return fmt.Errorf("%w\n  run as root, or grant CAP_BPF and CAP_PERFMON (e.g. sudo setcap cap_bpf,cap_perfmon+ep record)", err)
	case errors.Is(err, capture.ErrNoBTF):
		return fmt.Errorf("%w\n  the kernel needs CONFIG_DEBUG_INFO_BTF=y (/sys/kernel/btf/vmlinux)", err)
	case errors.Is(err, capture.ErrNoHooks), errors.Is(err, capture.ErrUnknownHook):
		return fmt.Errorf("%w\n  run record --list to see the hooks this kernel offers", err)
	}
	return err
}

// describeHooks says on stderr what is attached and, for auto, why.
func describeHooks(stderr io.Writer, rec *capture.Recorder, o options) {
	kinds := map[capture.HookKind]int{}
	for _, h := range rec.Hooks() {
		kinds[h.Kind]++
	}
	var parts []string
	for _, k := range []capture.HookKind{capture.HookTracepoint, capture.HookKprobe, capture.HookFentry, capture.HookFexit, capture.HookKretprobe} {
		if kinds[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", recording.KindName(k), kinds[k]))
		}
	}
	fmt.Fprintf(stderr, "record: backend %s (asked: %s); hooks attached: %s; snap length %d\n", rec.Backend(), o.backend, strings.Join(parts, ", "), o.snaplen)
	if n := rec.SkippedFunctions(); n > 0 {
		fmt.Fprintf(stderr, "record: %d selected functions could not be attached and are left out\n", n)
	}
	if note := rec.BackendNote(); note != "" {
		fmt.Fprintf(stderr, "record: backends not available: %s\n", note)
	}
}

// listHooks prints the tracepoints, then the kernel functions taking an
// skb with the backends that attach each by default; with a function
// backend or --functions, only what that would attach.
func listHooks(stdout io.Writer, o options) error {
	hooks, err := capture.ListHooks()
	if err != nil {
		return explain(err)
	}
	w := bufio.NewWriter(stdout)
	for _, h := range hooks {
		extra := ""
		if h.ReasonArg >= 0 {
			extra = " (drop reason)"
		}
		fmt.Fprintf(w, "%s:%s%s\n", recording.KindName(h.Kind), h.Name, extra)
	}
	if o.backend == capture.BackendTracepoint {
		return w.Flush()
	}
	fns, err := capture.ListFunctions()
	if err != nil {
		w.Flush()
		return explain(err)
	}
	var re *regexp.Regexp
	if o.functions != "" {
		re = regexp.MustCompile(o.functions) // checked by validate
	}
	defaults := capture.DefaultFunctions()
	for _, h := range fns {
		if re != nil && !re.MatchString(h.Name) {
			continue
		}
		var by []string
		for _, b := range []string{capture.BackendKprobeMulti, capture.BackendKprobe, capture.BackendFentry} {
			if re != nil || b == capture.BackendKprobeMulti || slices.Contains(defaults, h.Name) {
				by = append(by, b)
			}
		}
		if o.backend != capture.BackendAuto && !slices.Contains(by, o.backend) {
			continue
		}
		clone := ""
		if h.Clone {
			clone = " (clone: exit hooked to follow clones)"
		}
		fmt.Fprintf(w, "func:%s skb=arg%d backends=%s%s\n", h.Name, h.SKBArg, strings.Join(by, ","), clone)
	}
	return w.Flush()
}

// printer returns an OnEvent function that prints one line per event.
func printer(w *bufio.Writer, symbols recording.Symbolizer, names recording.DeviceNamer) func(*capture.Event) error {
	var line []byte
	var m kmeta.Event
	desc := recording.NewDescriber(names, symbols)
	return func(ev *capture.Event) error {
		desc.Describe(ev, &m)
		line = ev.Time.AppendFormat(line[:0], "15:04:05.000000000")
		line = append(line, " id="...)
		line = fmt.Appendf(line, "%d ", ev.PacketID)
		line = append(line, kmeta.AppendComment(nil, &m)[len(kmeta.Prefix)+1:]...)
		line = append(line, '\n')
		_, err := w.Write(line)
		return err
	}
}

// symbolizer adapts a kallsyms table to recording.Symbolizer.
type symbolizer struct{ t *kallsyms.Table }

func (s symbolizer) AppendSymbol(dst []byte, addr uint64) ([]byte, bool) {
	sym, ok := s.t.Resolve(addr)
	if !ok {
		return dst, false
	}
	return sym.AppendTo(dst), true
}

// maxStackDepth is the most frames --stack-depth accepts.
const maxStackDepth = capture.MaxStackDepth

// SymbolizeFrame implements recording.StackSymbolizer.
func (s symbolizer) SymbolizeFrame(addr uint64) (string, uint64, string, bool) {
	sym, ok := s.t.Resolve(addr)
	return sym.Name, sym.Offset, sym.Module, ok
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func uname() unix.Utsname {
	var u unix.Utsname
	_ = unix.Uname(&u)
	return u
}

func machine() string {
	u := uname()
	return unix.ByteSliceToString(u.Machine[:])
}

func kernelRelease() string {
	u := uname()
	return unix.ByteSliceToString(u.Release[:])
}

// sectionComment names the host and the command line.
func sectionComment() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("pathcap recording on host %s: %s", host, strings.Join(os.Args, " "))
}
