package main_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/internal/testenv"
)

// TestExtcapSentences checks record's answers to Wireshark's extcap calls.
func TestExtcapSentences(t *testing.T) {
	bin := testenv.BuildCommand(t, "record")
	run := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), code
	}
	out, errOut, code := run("--extcap-interfaces", "--extcap-version=4.0")
	if want := "extcap {version=0.1.0}\ninterface {value=pathcap}{display=pathcap: kernel packet paths}\n"; out != want || errOut != "" || code != 0 {
		t.Errorf("--extcap-interfaces: %q %q %d, want %q", out, errOut, code, want)
	}
	out, _, code = run("--extcap-dlts", "--extcap-interface", "pathcap")
	if !strings.HasPrefix(out, "dlt {number=1}{name=EN10MB}{display=") || code != 0 {
		t.Errorf("--extcap-dlts: %q %d", out, code)
	}
	out, _, code = run("--extcap-config", "--extcap-interface", "pathcap")
	for _, want := range []string{
		"{call=--backend}{display=Backend}{type=selector}",
		"value {arg=0}{value=auto}{display=auto}{default=true}",
		"{call=--functions}", "{call=--stack}{display=Kernel stacks}{type=boolflag}",
		"{call=--snaplen}{display=Snap length}{type=unsigned}", "{range=1,65535}{default=256}",
		"{call=--netns}", "{call=--max-rate}", "{call=--log-file}",
		"{call=--trace-tc}{display=Trace tc programs}{type=boolflag}", "{call=--trace-xdp}{display=Trace XDP programs}{type=boolflag}",
	} {
		if !strings.Contains(out, want) || code != 0 {
			t.Errorf("--extcap-config lacks %q (status %d):\n%s", want, code, out)
		}
	}
	// A capture filter check: nothing for a valid filter, the reason on
	// standard output for an invalid one, and status 0 either way.
	if out, errOut, code := run("--extcap-interface", "pathcap", "--extcap-capture-filter", "tcp port 80"); out != "" || errOut != "" || code != 0 {
		t.Errorf("valid filter: %q %q %d", out, errOut, code)
	}
	if out, errOut, code := run("--extcap-interface", "pathcap", "--extcap-capture-filter", "tcp port 80 and"); !strings.Contains(out, "can't parse filter expression") || strings.Count(out, "\n") != 1 || errOut != "" || code != 0 {
		t.Errorf("invalid filter: %q %q %d", out, errOut, code)
	}
	if _, errOut, code := run("--extcap-dlts", "--extcap-interface", "eth0"); code != 1 || !strings.Contains(errOut, `unknown interface "eth0"`) {
		t.Errorf("unknown interface: %q %d", errOut, code)
	}
	// Without extcap arguments, record is record.
	if out, _, code := run("--version"); code != 0 || !strings.HasPrefix(out, "record version") {
		t.Errorf("--version: %q %d", out, code)
	}
}

// unprivileged is a world-readable directory with a copy of record that
// carries file capabilities, and a home for the user nobody.
type unprivileged struct {
	dir, record, home string
	uid, gid          uint32
}

// newUnprivileged sets up what Wireshark run by an ordinary user needs:
// record with the capabilities of the capability route (README.md), and
// the profile, dissector and extcap entry installed by that user with
// record wireshark-install.
func newUnprivileged(t *testing.T) *unprivileged {
	t.Helper()
	testenv.RequireRoot(t)
	setcap := testenv.RequireTool(t, "setcap")
	testenv.RequireTool(t, "tshark")
	nobody, err := user.Lookup("nobody")
	if err != nil {
		testenv.SkipOrFail(t, "no user nobody: %v", err)
	}
	uid, _ := strconv.ParseUint(nobody.Uid, 10, 32)
	gid, _ := strconv.ParseUint(nobody.Gid, 10, 32)
	// t.TempDir's parent is private to root: nobody could not reach it.
	dir, err := os.MkdirTemp("", "pathcap-extcap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	u := &unprivileged{dir: dir, record: filepath.Join(dir, "record"), home: filepath.Join(dir, "home"), uid: uint32(uid), gid: uint32(gid)}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Flags&unix.ST_NOSUID != 0 {
		testenv.SkipOrFail(t, "%s is on a file system mounted nosuid, where file capabilities are ignored: set TMPDIR to a directory on another", dir)
	}
	if err := os.Mkdir(u.home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(u.home, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	copyFile(t, testenv.BuildCommand(t, "record"), u.record)
	// The capability route. The file system of the temporary directory
	// must honour file capabilities (not mounted nosuid).
	if out, err := exec.Command(setcap, "cap_bpf,cap_perfmon+ep", u.record).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v\n%s", err, out)
	}
	out := u.run(t, u.record, "wireshark-install")
	link := filepath.Join(u.home, ".local", "lib", "wireshark", "extcap", "pathcap")
	if target, err := os.Readlink(link); err != nil || target != u.record {
		t.Fatalf("wireshark-install made extcap link %q -> %q (%v):\n%s", link, target, err, out)
	}
	for _, want := range []string{filepath.Join(u.home, ".config", "wireshark", "profiles", "pathcap"), filepath.Join(u.home, ".local", "lib", "wireshark", "plugins", "pathcap.lua"), link} {
		if !strings.Contains(out, want) {
			t.Errorf("wireshark-install does not say it installed %s:\n%s", want, out)
		}
	}
	t.Logf("record wireshark-install (as nobody):\n%s", out)
	return u
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// command returns a command that runs as nobody with the home, and the
// extcap folder for Wireshark 4.0, which reads no personal extcap folder
// (4.2 and later do) but honours WIRESHARK_EXTCAP_DIR for users other
// than root.
func (u *unprivileged) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = u.home
	cmd.Env = append(os.Environ(), "HOME="+u.home, "XDG_CONFIG_HOME="+filepath.Join(u.home, ".config"),
		"WIRESHARK_EXTCAP_DIR="+filepath.Join(u.home, ".local", "lib", "wireshark", "extcap"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}}}
	return cmd
}

// run runs a command as nobody and returns its standard output; it fails
// t if the command fails.
func (u *unprivileged) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := u.command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s (as nobody): %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// start starts cmd in a process group of its own, which t's cleanup
// kills: tshark's children (dumpcap, the extcap) with it.
func start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
}

// wait waits for cmd, at most d.
func wait(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("still running after %v", d)
	}
}

// TestExtcapInWireshark runs tshark as the user nobody with the extcap
// entry that record wireshark-install made: tshark lists the interface,
// captures through it (record recording with file capabilities), and
// reports an invalid capture filter as the extcap's error.
func TestExtcapInWireshark(t *testing.T) {
	u := newUnprivileged(t)
	tshark := testenv.RequireTool(t, "tshark")

	t.Run("list", func(t *testing.T) {
		out := u.run(t, tshark, "-D")
		if !strings.Contains(out, ". pathcap (pathcap: kernel packet paths)\n") {
			t.Errorf("tshark -D does not list the interface:\n%s", out)
		}
	})

	t.Run("capture", func(t *testing.T) {
		pair := testenv.NewVethPair(t)
		file := filepath.Join(u.home, "live.pcapng")
		// The dialog's log file option, given as tshark gives extcap
		// options (-o extcap.INTERFACE.OPTION:VALUE), says when record
		// has attached its hooks.
		log := filepath.Join(u.home, "record.log")
		cmd := u.command(tshark, "-i", "pathcap", "-o", "extcap.pathcap.logfile:"+log,
			"-f", "icmp and host "+pair.IPB, "-a", "duration:120", "-w", file)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start(t, cmd)
		// On a busy machine tshark takes seconds to start the extcap.
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if b, _ := os.ReadFile(log); bytes.Contains(b, []byte("hooks attached")) {
				break
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(log)
				t.Fatalf("record did not attach its hooks within 60 s of tshark's start; its log:\n%s\ntshark: %s", b, stderr.String())
			}
		}
		pair.Exec(t, pair.NSA, "ping", "-c", "5", "-i", "0.3", "-W", "2", pair.IPB)
		time.Sleep(500 * time.Millisecond)
		// Stop the capture as a user would (Ctrl-C): tshark stops the
		// extcap.
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if err := wait(cmd, 60*time.Second); err != nil {
			t.Fatalf("tshark -i pathcap: %v\n%s", err, stderr.String())
		}
		if strings.Contains(stderr.String(), "Error") || strings.Contains(stderr.String(), "rror by extcap") {
			t.Errorf("tshark reports an error:\n%s", stderr.String())
		}
		// Wireshark stopped the capture: record has exited, so every
		// BPF link it held is gone with it.
		if out, err := exec.Command("pgrep", "-f", u.record).Output(); err == nil {
			t.Errorf("record still runs after the capture: pids %s", out)
		}

		rows := testenv.Run(t, tshark, "-n", "-r", file, "-Y", "icmp.type == 8", "-T", "fields", "-E", "separator=|",
			"-e", "icmp.seq", "-e", "frame.packet_id", "-e", "frame.interface_description")
		// Echo request (sequence number) -> packet id -> interfaces.
		seen := map[string]map[string]map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(rows), "\n") {
			f := strings.Split(line, "|")
			if len(f) != 3 {
				continue
			}
			if seen[f[0]] == nil {
				seen[f[0]] = map[string]map[string]bool{}
			}
			if seen[f[0]][f[1]] == nil {
				seen[f[0]][f[1]] = map[string]bool{}
			}
			seen[f[0]][f[1]][f[2]] = true
		}
		wantA := fmt.Sprintf("netns %d (%s) ifindex %d", pair.InodeA, pair.NSA, pair.IfindexA)
		wantB := fmt.Sprintf("netns %d (%s) ifindex %d", pair.InodeB, pair.NSB, pair.IfindexB)
		both := 0
		for _, ids := range seen {
			for _, descs := range ids {
				if descs[wantA] && descs[wantB] {
					both++
					break
				}
			}
		}
		// The first request may also leave a packet of its own: while
		// ARP resolves, the kernel consumes the queued skb and sends a
		// copy, which the tracepoint backend cannot link.
		t.Logf("%d echo requests captured, %d of them under one packet id on both devices", len(seen), both)
		if len(seen) != 5 || both != 5 {
			t.Errorf("want the 5 echo requests, each with one packet id on both %q and %q; captured:\n%s", wantA, wantB, rows)
		}
		// Wireshark closes the pipe and sends SIGTERM: record stops on
		// whichever comes first, and says so.
		if b, err := os.ReadFile(log); err != nil || !bytes.Contains(b, []byte("events written")) && !bytes.Contains(b, []byte("the reader closed the pipe")) {
			t.Errorf("record's log does not say it stopped: %v\n%s", err, b)
		}
		if t.Failed() {
			full := testenv.Run(t, tshark, "-n", "-X", "lua_script:"+filepath.Join(testenv.ModuleRoot(t), "wireshark", "pathcap.lua"), "-r", file,
				"-T", "fields", "-e", "frame.packet_id", "-e", "pathcap.hook", "-e", "pathcap.netns", "-e", "_ws.col.Info")
			t.Logf("the capture:\n%s", full)
		}
	})

	t.Run("invalid filter", func(t *testing.T) {
		// Up to three tries: on a loaded machine tshark (Wireshark 4.0)
		// now and then ends with an empty "tshark: " line before it has
		// read the extcap's stderr (seen once in a run beside VM tests;
		// the next try showed the message). A record that never reports
		// the error fails all three.
		const want = "Error by extcap pipe: record: filter expression \"tcp port 80 and\": can't parse filter expression"
		for try := 1; try <= 3; try++ {
			cmd := u.command(tshark, "-i", "pathcap", "-f", "tcp port 80 and", "-a", "duration:30", "-w", filepath.Join(u.home, "bad.pcapng"))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start(t, cmd)
			err := wait(cmd, 60*time.Second)
			t.Logf("try %d: tshark -f 'tcp port 80 and': %v\n%s", try, err, stderr.String())
			if strings.Contains(stderr.String(), want) {
				return
			}
		}
		t.Errorf("tshark does not report the extcap's filter error (three tries)")
	})
}

// TestExtcapCaptureStops checks how an extcap capture ends: on SIGTERM
// (what Wireshark sends) record finishes the file, interface statistics
// included, and exits 0; when the reader closes the pipe, record stops by
// itself and exits 0, even with no event to write.
func TestExtcapCaptureStops(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.BuildCommand(t, "record")
	pair := testenv.NewVethPair(t)

	// capture starts record as Wireshark does, with a reader on the pipe
	// that copies it to a file unless keep is false, in which case it
	// closes the pipe at once.
	capture := func(t *testing.T, keep bool) (cmd *exec.Cmd, log, file string, copied chan error) {
		dir := t.TempDir()
		fifo, log, file := filepath.Join(dir, "fifo"), filepath.Join(dir, "log"), filepath.Join(dir, "rec.pcapng")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(bin, "--capture", "--extcap-interface", "pathcap", "--fifo", fifo,
			"--extcap-capture-filter", "icmp and host "+pair.IPB, "--log-file", log)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		copied = make(chan error, 1)
		go func() {
			r, err := os.Open(fifo) // waits for record to open it
			if err != nil {
				copied <- err
				return
			}
			defer r.Close()
			if !keep {
				copied <- nil
				return
			}
			out, err := os.Create(file)
			if err == nil {
				_, err = io.Copy(out, r)
				if cerr := out.Close(); err == nil {
					err = cerr
				}
			}
			copied <- err
		}()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if b, _ := os.ReadFile(log); bytes.Contains(b, []byte("hooks attached")) {
				return cmd, log, file, copied
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(log)
				t.Fatalf("record did not attach its hooks: %s\n%s", b, stderr.String())
			}
		}
	}

	t.Run("SIGTERM", func(t *testing.T) {
		cmd, log, file, copied := capture(t, true)
		pair.Exec(t, pair.NSA, "ping", "-c", "2", "-i", "0.2", "-W", "2", pair.IPB)
		time.Sleep(300 * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := wait(cmd, 30*time.Second); err != nil {
			b, _ := os.ReadFile(log)
			t.Fatalf("record after SIGTERM: %v\n%s", err, b)
		}
		if err := <-copied; err != nil {
			t.Fatal(err)
		}
		events, stats := readRecording(t, file)
		if len(events) == 0 || len(stats) == 0 {
			t.Errorf("the capture has %d events and %d interface statistics blocks, want some of each", len(events), len(stats))
		}
		if b, _ := os.ReadFile(log); !bytes.Contains(b, []byte(fmt.Sprintf("%d events written, 0 lost", len(events)))) {
			t.Errorf("record's log does not count the %d events written:\n%s", len(events), b)
		}
	})

	t.Run("reader closes", func(t *testing.T) {
		cmd, log, _, copied := capture(t, false)
		if err := <-copied; err != nil {
			t.Fatal(err)
		}
		if err := wait(cmd, 10*time.Second); err != nil {
			b, _ := os.ReadFile(log)
			t.Fatalf("record after the reader closed the pipe: %v\n%s", err, b)
		}
		if b, _ := os.ReadFile(log); !bytes.Contains(b, []byte("the reader closed the pipe")) {
			t.Errorf("record's log does not say why it stopped:\n%s", b)
		}
	})
}
