package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
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
	bytes     string // --bytes: all, changed or auto (bytesMode decides)
	backend   string
	functions string   // --functions: regular expression, "" for the backend's default
	fexit     bool     // --fexit: hook function exits too (fentry)
	traceTC   bool     // --trace-tc: trace the host's tc BPF programs
	noNF      bool     // --netfilter=false: leave nft_do_chain's exit out
	traceXDP  bool     // --trace-xdp: trace the host's XDP programs
	bpfProgs  []string // --bpf-prog: only these programs (ids or names)
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
	boost      int    // --reader-boost: nice levels of the reader above record's own
	verbose    bool   // --verbose: verifier logs of refused programs
	user       string // -Z: drop to this user once attached, "" to keep privileges

	// Files.
	fileSize int64         // -C: a new file past this many bytes, 0 never
	interval time.Duration // -G: a new file this often, 0 never
	maxFiles int           // -W: keep at most this many files, 0 all
	directIO bool          // --direct-io: write files with O_DIRECT where allowed
	maxSize  int64         // --max-size: stop once the files hold this many bytes

	// Flight recorder.
	stopOn    string        // --stop-on: trigger conditions, "" for none
	stopAfter time.Duration // --stop-after: how long the recording goes on after the trigger
	afterSet  bool          // --stop-after was given
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
			"Without -w, events are printed one per line.\n\n" + exitStatusHelp,
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
			&cli.StringFlag{Name: "write", Aliases: []string{"w"}, Usage: "write the recording to `FILE` (- for standard output), created with mode 0600", EnvVars: []string{"PATHCAP_WRITE"}},
			&cli.Uint64Flag{Name: "count", Aliases: []string{"c"}, Usage: "stop after `N` events (packet blocks)"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after `D` (e.g. 10s, 5m)"},

			// Files: rotation and limits (docs/FORMAT.md, Rotated files).
			&cli.GenericFlag{Name: "file-size", Aliases: []string{"C"}, Value: &sizeValue{}, Usage: "start a new file once the current one holds `SIZE` bytes (K, M, G: 100M is 100 MiB); files are then named FILE_NNNNN_YYYYMMDDTHHMMSSZ.ext (number, UTC start time)"},
			&cli.GenericFlag{Name: "file-duration", Aliases: []string{"G"}, Value: &intervalValue{}, Usage: "start a new file every `DURATION` (30s, 10m, 1h, or seconds; 1s at least), events or not; files named as with -C"},
			&cli.IntFlag{Name: "file-count", Aliases: []string{"W"}, Usage: "keep at most `N` files of the recording (with -C or -G): a ring, the oldest removed when a new one starts"},
			&cli.BoolFlag{Name: "direct-io", Value: true, Usage: "write files with direct I/O (O_DIRECT) where their file system allows it: straight to the disk, not through the page cache, which a long recording fills at the host's expense and which cost ten times the CPU on a test VM (docs/BACKENDS.md, Loss); --direct-io=false writes through the page cache, which absorbs bursts faster than a slow disk"},
			&cli.GenericFlag{Name: "max-size", Value: &sizeValue{}, Usage: "stop the recording once it has written `SIZE` bytes, all its files together (removed ones too); it ends cleanly, exit status 0"},
			&cli.StringFlag{Name: "stop-on", Usage: "a flight recorder: stop --stop-after the first event that meets `CONDITIONS`, comma-separated key=value: reason (drop reason, e.g. NETFILTER_DROP), hook (tracepoint or function), dev, netns (inode), and last filter=EXPR (a tcpdump expression on the packet); with -W the ring then holds the time before and after it"},
			&cli.DurationFlag{Name: "stop-after", Value: 2 * time.Second, Usage: "with --stop-on: keep recording for `D` after the trigger (0: stop at once)"},

			&cli.IntFlag{Name: "snaplen", Aliases: []string{"s"}, Value: capture.DefaultSnaplen, Usage: "record at most `N` bytes of each packet", EnvVars: []string{"PATHCAP_SNAPLEN"}},
			&cli.StringFlag{Name: "bytes", Value: bytesAuto, Usage: "`MODE` of recording packet bytes: all (at every hit), changed (at a packet's first hit and where they may have changed, metadata only elsewhere: analyze carries them forward; docs/FORMAT.md), auto (changed when kernel functions are hooked: a function --backend, or auto on a kernel with kprobe-multi or kprobes)", EnvVars: []string{"PATHCAP_BYTES"}},
			&cli.StringFlag{Name: "backend", Value: capture.BackendAuto, Usage: "how kernel functions are hooked, besides the tracepoints: `KIND` auto, tracepoint (none), kprobe-multi, kprobe or fentry (see docs/BACKENDS.md)", EnvVars: []string{"PATHCAP_BACKEND"}},
			&cli.StringFlag{Name: "functions", Usage: "hook the kernel functions taking an skb whose names match `REGEX` (default: all for kprobe-multi, a built-in set for kprobe and fentry)", EnvVars: []string{"PATHCAP_FUNCTIONS"}},
			&cli.BoolFlag{Name: "fexit", Usage: "also hook every function's exit, for return values (fentry backend)"},
			&cli.BoolFlag{Name: "trace-tc", Usage: "also attach fentry and fexit to the tc BPF programs (cls_bpf, tcx) loaded on the host: the packet as each sees it and its verdict (epb_verdict, frame.verdict.ebpf_tc); needs fentry on BPF programs (docs/BACKENDS.md)"},
			&cli.BoolFlag{Name: "trace-xdp", Usage: "also attach fentry and fexit to the XDP programs loaded on the host: the frame as each sees it and its action (frame.verdict.ebpf_xdp); needs fentry on BPF programs"},
			&cli.BoolFlag{Name: "netfilter", Value: true, Usage: "with a function backend, also hook the exit of nftables' nft_do_chain (fexit): the base chain that ran (table, chain) and its verdict, so that analyze names the chain that dropped a packet; needs fentry and, where nf_tables is a module, Linux 5.11+ (docs/BACKENDS.md)"},
			&cli.StringSliceFlag{Name: "bpf-prog", Usage: "with --trace-tc or --trace-xdp: trace only the program with this `ID or NAME` (repeatable; bpftool prog list shows them)"},
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
			&cli.IntFlag{Name: "reader-boost", Value: defaultReaderBoost, Usage: "run the thread that reads the ring buffer and formats the output `N` nice levels above record's own priority (0..20; 0: the same), so that when other jobs want the CPUs too it gets the CPU it needs before the ring buffer overflows, at their expense; it uses at most one CPU, and only while events come (docs/BACKENDS.md, Loss)"},
			&cli.BoolFlag{Name: "verbose", Usage: "print the verifier's log when the kernel refuses a program"},
			&cli.StringFlag{Name: "relinquish-privileges", Aliases: []string{"Z"}, Usage: "once every hook is attached and the output is open, drop to `USER` (a name, a uid or UID:GID): its groups, gid and uid, no capability left; record must start as root, and files it creates later (rotation) belong to USER, so the output directory must be writable by USER"},
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
				bytes:     c.String("bytes"),
				backend:   c.String("backend"),
				functions: c.String("functions"),
				fexit:     c.Bool("fexit"),
				traceTC:   c.Bool("trace-tc"),
				noNF:      !c.Bool("netfilter"),
				traceXDP:  c.Bool("trace-xdp"),
				bpfProgs:  c.StringSlice("bpf-prog"),
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
				boost:      c.Int("reader-boost"),
				verbose:    c.Bool("verbose"),
				user:       c.String("relinquish-privileges"),

				fileSize: c.Generic("file-size").(*sizeValue).n,
				interval: c.Generic("file-duration").(*intervalValue).d,
				maxFiles: c.Int("file-count"),
				directIO: c.Bool("direct-io"),
				maxSize:  c.Generic("max-size").(*sizeValue).n,

				stopOn:    c.String("stop-on"),
				stopAfter: c.Duration("stop-after"),
				afterSet:  c.IsSet("stop-after"),
			}
			if h := c.String("hooks"); h != "" {
				for _, name := range strings.Split(h, ",") {
					if name = strings.TrimSpace(name); name != "" {
						opts.hooks = append(opts.hooks, name)
					}
				}
			}
			return classify(run(c.Context, opts, c.App.Writer, c.App.ErrWriter), opts)
		},
	}
}

// Values of --bytes.
const (
	bytesAll     = "all"
	bytesChanged = "changed"
	bytesAuto    = "auto"
)

// bytesChanged reports whether packet bytes are recorded only where they
// may have changed (--bytes changed). auto, the default, is changed when
// the recording will hook kernel functions (capture.FunctionsLikely:
// decided before the output is created, since its file comment says it):
// there a packet is seen at ~40 hooks and its bytes change at a handful
// (docs/BENCHMARKS.md, bytes per followed packet), and analyze gives the
// same answers (the VM scenarios run both modes). With tracepoints only a
// packet is seen at ~5 hooks and the saving is small, while files with
// every frame's bytes stay readable as they are by tools that carry no
// bytes forward (tcpdump, stock Wireshark): all.
func (o options) bytesChanged() bool {
	switch o.bytes {
	case bytesChanged:
		return true
	case bytesAuto, "":
		return capture.FunctionsLikely(o.backend)
	}
	return false
}

func (o options) validate() error {
	if o.snaplen < 1 || o.snaplen > capture.MaxSnaplen {
		return usagef("snap length %d out of range 1..%d", o.snaplen, capture.MaxSnaplen)
	}
	if o.duration < 0 {
		return usagef("negative duration %v", o.duration)
	}
	if !slices.Contains([]string{bytesAll, bytesChanged, bytesAuto, ""}, o.bytes) {
		return usagef("unknown --bytes %q (want %s, %s or %s)", o.bytes, bytesAll, bytesChanged, bytesAuto)
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
	if len(o.bpfProgs) > 0 && !o.traceTC && !o.traceXDP {
		return usagef("--bpf-prog needs --trace-tc or --trace-xdp")
	}
	if o.probeReads != capture.ProbeReadsAuto && o.probeReads != capture.ProbeReadsOn && o.probeReads != capture.ProbeReadsOff {
		return usagef("--probe-read %q: want auto, on or off", o.probeReads)
	}
	if o.boost < 0 || o.boost > 20 {
		return usagef("--reader-boost %d: want 0 to 20", o.boost)
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
	return o.validateFiles()
}

// minFileSize is the smallest -C: a file holds at least its headers.
const minFileSize = 1 << 10

// validateFiles checks -C, -G, -W and --max-size.
func (o options) validateFiles() error {
	toFile := o.output != "" && o.output != "-"
	switch {
	case (o.fileSize > 0 || o.interval > 0 || o.maxFiles != 0) && !toFile:
		return usagef("-C, -G and -W need -w FILE (rotation writes several files)")
	case o.maxSize > 0 && o.output == "":
		return usagef("--max-size needs -w FILE or -w -")
	case o.fileSize != 0 && o.fileSize < minFileSize:
		return usagef("-C %d: want %d bytes or more", o.fileSize, minFileSize)
	case o.interval != 0 && o.interval < time.Second:
		return usagef("-G %v: want 1s or more", o.interval)
	case o.maxFiles < 0:
		return usagef("-W %d: want a count of files of 1 or more", o.maxFiles)
	case o.maxFiles > 0 && o.fileSize == 0 && o.interval == 0:
		return usagef("-W needs -C or -G: without rotation there is only one file")
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
	var trigger *recording.Trigger
	if o.stopOn != "" {
		if trigger, err = recording.ParseTrigger(o.stopOn, o.snaplen); err != nil {
			return usagef("--stop-on: %v", err)
		}
	} else if o.afterSet {
		return usagef("--stop-after needs --stop-on")
	}
	if o.stopAfter < 0 {
		return usagef("--stop-after %v: want 0 or more", o.stopAfter)
	}
	pre, err := preflight(o)
	if err != nil {
		return err
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}

	names := netdev.NewResolver()
	defer names.Close()
	// /proc/kallsyms is read while the programs load (it takes a few
	// hundred milliseconds); the first symbol looked up waits for it.
	syms := loadSymbols()
	var symbols recording.Symbolizer = symbolizer{syms}

	// Create the output before loading anything, so that a bad path
	// fails fast.
	info := recording.Info{
		Hardware:    machine(),
		OS:          "Linux " + kernelRelease(),
		Application: "pathcap record " + version,
		Comments:    []string{sectionComment()},
		Snaplen:     o.snaplen,
		Recording:   recording.NewRecordingID(),
		// Decided before anything is loaded: the file comment says it.
		BytesChanged: o.bytesChanged(),
	}
	printing := o.output == ""
	var (
		files   *recording.Files
		counter *recording.CountingWriter
		w       *recording.Writer
	)
	switch o.output {
	case "", "-":
		counter = &recording.CountingWriter{W: stdout}
		if printing {
			counter.W = io.Discard
		}
		w, err = recording.NewWriter(counter, info, 256<<10, names, symbols)
	default:
		files, err = recording.CreateFiles(recording.FileOptions{
			Path:     o.output,
			FileSize: o.fileSize,
			Interval: o.interval,
			MaxFiles: o.maxFiles,
			Direct:   o.directIO,
		}, info, 256<<10, names, symbols)
		if err == nil {
			w = files.Writer()
		}
	}
	if err != nil {
		return err
	}

	progress := newStartProgress(stderr, isTerminal(stderr))
	rec, err := capture.NewRecorder(capture.Config{
		Snaplen:        o.snaplen,
		RingBufferSize: o.ringSize,
		Hooks:          o.hooks,
		Backend:        o.backend,
		Functions:      o.functions,
		Exit:           o.fexit,
		TraceTC:        o.traceTC,
		NoNetfilter:    o.noNF,
		TraceXDP:       o.traceXDP,
		BPFPrograms:    o.bpfProgs,
		Filter:         filter,
		Match:          match,
		NoTrack:        !o.track,
		BytesChanged:   info.BytesChanged,

		Stack:      o.stack,
		StackDepth: o.stackDepth,

		ProbeReads: o.probeReads,
		MaxRate:    o.maxRate,
		Progress:   progress.update,
	})
	progress.stop()
	if err != nil {
		if files != nil {
			files.Discard()
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
	if o.stack {
		fmt.Fprintf(stderr, "record: recording kernel stacks, at most %d frames\n", o.stackDepth)
	}

	if o.readyFile != "" {
		if err := os.WriteFile(o.readyFile, nil, recording.FilePerm); err != nil {
			if files != nil {
				files.Discard()
			}
			return fmt.Errorf("create ready file: %w", err)
		}
	}
	// /proc/kallsyms may still be loading (it takes a few hundred
	// milliseconds of CPU, beside the program loads): the ready file does
	// not wait for it, the first symbol looked up does. Its load ends
	// before privileges are dropped (older kernels check the reader's
	// credentials as it reads).
	if symErr := syms.wait(); symErr != nil {
		fmt.Fprintf(stderr, "record: drop locations stay addresses: %v\n", symErr)
	}
	// Before dropping privileges: raising a priority needs them. The
	// event loop below runs in this goroutine.
	defer boostReader(o.boost, stderr)()
	if err := pre.dropPrivileges(stderr); err != nil {
		return err
	}

	ropts := recording.RunOptions{MaxEvents: o.count, MaxBytes: o.maxSize}
	if trigger != nil {
		ropts.Trigger, ropts.StopAfter, ropts.Names = trigger, o.stopAfter, names
		ropts.OnTrigger = func(ev *capture.Event) {
			fmt.Fprintf(stderr, "record: --stop-on %s matched: %s:%s, packet %d, at %s; stopping %s\n",
				trigger, recording.KindName(ev.Hook.Kind), ev.Hook.Name, ev.PacketID,
				ev.Time.UTC().Format("15:04:05.000000"), stopWhen(o.stopAfter))
		}
	}
	if isTerminal(stderr) && !printing {
		ropts.Status = stderr
	}
	if !printing && filter == nil && match == (capture.Match{}) && o.maxRate == 0 && o.count == 0 &&
		o.duration == 0 && o.maxSize == 0 && o.maxFiles == 0 && trigger == nil {
		ropts.VolumeNote = stderr
	}
	if printing {
		bw := bufio.NewWriter(stdout)
		defer bw.Flush()
		ropts.OnEvent = printer(bw, symbols, names)
		ropts.FlushInterval = 100 * time.Millisecond
	}
	var sum recording.Summary
	if files != nil {
		sum, err = recording.RunFiles(ctx, rec, files, ropts)
	} else {
		sum, err = recording.Run(ctx, rec, w, counter, ropts)
	}
	if err != nil {
		return outputFailure(err, sum)
	}
	if sum.Stopped == recording.StopTrigger {
		fmt.Fprintf(stderr, "record: stopped: %s after --stop-on matched\n", o.stopAfter)
	}
	if sum.Stopped == recording.StopSize {
		fmt.Fprintf(stderr, "record: stopped: the recording reached --max-size %s (%d bytes written)\n", formatSize(o.maxSize), sum.Bytes)
	}
	fmt.Fprintf(stderr, "record: %d events written, %d lost, %d bytes%s\n", sum.Events, sum.Lost, sum.Bytes, describeFiles(sum, o))
	if sum.Lost > 0 {
		fmt.Fprintf(stderr, "record: %d events were lost because the ring buffer was full: try a larger --ring-size or a filter\n", sum.Lost)
	}
	if sum.Skipped > 0 {
		fmt.Fprintf(stderr, "record: %d hits were not recorded because the rate limit was reached (--max-rate, per CPU): a narrower filter or a higher limit records them\n", sum.Skipped)
	}
	return nil
}

// stopWhen says when a recording stops after its trigger.
func stopWhen(d time.Duration) string {
	if d <= 0 {
		return "now"
	}
	return "in " + d.String()
}

// describeFiles says which files a rotated recording wrote and kept.
func describeFiles(sum recording.Summary, o options) string {
	if o.fileSize == 0 && o.interval == 0 || len(sum.Kept) == 0 {
		return ""
	}
	s := fmt.Sprintf(" in %d files", len(sum.Files))
	if len(sum.Kept) < len(sum.Files) {
		s += fmt.Sprintf(", the newest %d kept", len(sum.Kept))
	}
	first, last := filepath.Base(sum.Kept[0]), filepath.Base(sum.Kept[len(sum.Kept)-1])
	if first == last {
		return s + ": " + first
	}
	return s + ": " + first + " .. " + last
}

// outputFailure turns a failed write of the output into one line that
// says where, why and what is left; the error it returns wraps err.
func outputFailure(err error, sum recording.Summary) error {
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Op != "write" {
		return err
	}
	name := pe.Path
	if name == os.Stdout.Name() {
		name = "standard output"
	}
	var msg string
	switch {
	case errors.Is(err, syscall.EPIPE):
		msg = fmt.Sprintf("%s: %v (its reader went away): recording stopped after %d events", name, pe.Err, sum.Events)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		msg = fmt.Sprintf("%s: %v: recording stopped after %d events; the file holds every whole block written, without its closing statistics", name, pe.Err, sum.Events)
	default:
		msg = fmt.Sprintf("%s: %v: recording stopped after %d events", name, pe.Err, sum.Events)
	}
	return &writeError{msg: msg, err: err}
}

// writeError is a failed write of the output, said in one line.
type writeError struct {
	msg string
	err error
}

func (e *writeError) Error() string { return e.msg }
func (e *writeError) Unwrap() error { return e.err }

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
		line = kmeta.AppendText(line, &m)
		line = append(line, '\n')
		_, err := w.Write(line)
		return err
	}
}

// symbolizer adapts a kallsyms table to recording.Symbolizer.
// kernelSymbols is /proc/kallsyms being loaded in the background.
type kernelSymbols struct {
	done  chan struct{}
	table *kallsyms.Table // nil if the load failed
	err   error
}

// loadSymbols starts loading /proc/kallsyms.
func loadSymbols() *kernelSymbols {
	s := &kernelSymbols{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.table, s.err = kallsyms.Load()
	}()
	return s
}

// wait waits for the load and returns its error.
func (s *kernelSymbols) wait() error {
	<-s.done
	return s.err
}

// symbolizer resolves kernel addresses with the table of s, once loaded.
type symbolizer struct{ s *kernelSymbols }

func (s symbolizer) resolve(addr uint64) (kallsyms.Symbol, bool) {
	if s.s.wait() != nil {
		return kallsyms.Symbol{}, false
	}
	return s.s.table.Resolve(addr)
}

func (s symbolizer) AppendSymbol(dst []byte, addr uint64) ([]byte, bool) {
	sym, ok := s.resolve(addr)
	if !ok {
		return dst, false
	}
	return sym.AppendTo(dst), true
}

// maxStackDepth is the most frames --stack-depth accepts.
const maxStackDepth = capture.MaxStackDepth

// SymbolizeFrame implements recording.StackSymbolizer.
func (s symbolizer) SymbolizeFrame(addr uint64) (string, uint64, string, bool) {
	sym, ok := s.resolve(addr)
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
