package wireshark_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/internal/wsinstall"
)

// installProfile installs the profile and the dissector into a new
// temporary home with the install package and returns the home.
func installProfile(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	env := map[string]string{"HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, ".config")}
	f := wsinstall.DefaultFolders(runtime.GOOS, func(k string) string { return env[k] }, func(string) bool { return false })
	if _, err := wsinstall.Install(wsinstall.Options{Folders: f}); err != nil {
		t.Fatal(err)
	}
	return home
}

// tsharkHome runs tshark with HOME (and XDG_CONFIG_HOME) at home, so that
// it sees the personal folders there and nothing of the real user's, and
// returns its standard output. Standard error may hold only tshark's
// warning about running as root.
func tsharkHome(t *testing.T, home string, args ...string) string {
	t.Helper()
	stdout, stderr, err := runTshark(t, home, append([]string{"-n"}, args...)...)
	checkStderr(t, args, stderr)
	if err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout
}

// countFrames returns how many frames of file match filter.
func countFrames(t *testing.T, home, file, filter string, extra ...string) int {
	t.Helper()
	args := append(slices.Clone(extra), "-r", file, "-T", "fields", "-e", "frame.number")
	if filter != "" {
		args = append(args, "-Y", filter)
	}
	return len(strings.Fields(tsharkHome(t, home, args...)))
}

// recordTCP records, with the record binary, a TCP transfer of size bytes
// from namespace A to B of a new veth pair, then a connection attempt to
// the same port after the listener closed (its SYN is dropped with
// NO_SOCKET), with the filter "tcp port PORT". It returns the recording.
func recordTCP(t *testing.T, pair *testenv.VethPair, size int) string {
	t.Helper()
	record := testenv.BuildCommand(t, "record")
	// A port of this test alone: the filter sees every namespace.
	port := 20000 + os.Getpid()%20000
	dir := t.TempDir()
	file := filepath.Join(dir, "tcp.pcapng")
	ready := filepath.Join(dir, "ready")
	cmd := exec.Command(record, "-w", file, "--ready-file", ready, "--duration", "60s", fmt.Sprintf("tcp port %d", port))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("record did not get ready: %s", stderr.String())
		}
	}

	addr := net.JoinHostPort(pair.IPB, strconv.Itoa(port))
	var ln net.Listener
	if err := testenv.InNamespace(pair.NSB, func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	received := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			received <- -1
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		received <- n
	}()
	err := testenv.InNamespace(pair.NSA, func() error {
		c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(bytes.Repeat([]byte("pathcap "), size/8))
		return err
	})
	if err != nil {
		t.Fatalf("transfer: %v", err)
	}
	if n := <-received; n != int64(size/8*8) {
		t.Fatalf("received %d bytes, sent %d", n, size/8*8)
	}
	ln.Close()
	err = testenv.InNamespace(pair.NSA, func() error {
		c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
		if err == nil {
			c.Close()
			return errors.New("connected to a closed port")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("connection to the closed port: %v", err)
	}

	time.Sleep(300 * time.Millisecond) // the last events reach the ring
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("record: %v\n%s", err, stderr.String())
	}
	t.Logf("record: %s", strings.TrimSpace(stderr.String()))
	return file
}

// psml is tshark's packet summary XML: the column titles, then each
// packet's column values.
type psml struct {
	Titles  []string `xml:"structure>section"`
	Packets []struct {
		Values []string `xml:"section"`
	} `xml:"packet"`
}

// TestProfileOnATCPRecording records a real TCP transfer and shows why the
// profile exists: without it, Wireshark's TCP analysis flags the frames
// that are the same segment at another hook; with it, no frame is flagged,
// and the columns and colours show the hooks and the drop.
func TestProfileOnATCPRecording(t *testing.T) {
	testenv.RequireRoot(t)
	requireTshark(t)
	pair := testenv.NewVethPair(t)
	file := recordTCP(t, pair, 200<<10)

	bare := t.TempDir() // a home without the profile or the dissector
	total := countFrames(t, bare, file, "")
	flagged := countFrames(t, bare, file, "tcp.analysis.flags")
	t.Logf("without the profile: %d of %d frames carry tcp.analysis.flags", flagged, total)
	if flagged == 0 {
		t.Fatalf("without the profile no frame of %d has tcp.analysis.flags: the recording does not show what the profile is for", total)
	}

	home := installProfile(t)
	profile := []string{"-C", "pathcap"}
	if n := countFrames(t, home, file, "tcp.analysis.flags", profile...); n != 0 {
		t.Errorf("with the profile: %d of %d frames carry tcp.analysis.flags, want 0", n, total)
	} else {
		t.Logf("with the profile: 0 of %d frames carry tcp.analysis.flags", total)
	}
	if n := countFrames(t, home, file, "pathcap", profile...); n != total {
		t.Errorf("with the profile: the dissector found a pathcap comment in %d of %d frames", n, total)
	}

	// The columns.
	var sum psml
	if err := xml.Unmarshal([]byte(tsharkHome(t, home, append(profile, "-r", file, "-T", "psml")...)), &sum); err != nil {
		t.Fatalf("psml: %v", err)
	}
	col := map[string]int{}
	for i, title := range sum.Titles {
		col[title] = i
	}
	for _, title := range []string{"Packet id", "Hook", "Device", "Netns", "Verdict"} {
		if _, ok := col[title]; !ok {
			t.Fatalf("no column %q among %q", title, sum.Titles)
		}
	}
	if len(sum.Packets) != total {
		t.Fatalf("psml has %d packets, the file %d frames", len(sum.Packets), total)
	}
	devices := map[string]bool{}
	namespaces := map[string]bool{}
	drops := 0
	for i, p := range sum.Packets {
		if len(p.Values) != len(sum.Titles) {
			t.Fatalf("packet %d: %d values for %d columns", i+1, len(p.Values), len(sum.Titles))
		}
		v := func(title string) string { return p.Values[col[title]] }
		if !strings.HasPrefix(v("Hook"), "tp:") || v("Packet id") == "" {
			t.Errorf("packet %d: hook %q, packet id %q", i+1, v("Hook"), v("Packet id"))
		}
		devices[v("Device")] = true
		namespaces[v("Netns")] = true
		if v("Verdict") != "" && v("Hook") != "tp:kfree_skb" {
			t.Errorf("packet %d: verdict %q at hook %q", i+1, v("Verdict"), v("Hook"))
		}
		if v("Verdict") == "NO_SOCKET" {
			drops++
		}
	}
	if !devices[pair.DevA] || !devices[pair.DevB] {
		t.Errorf("the Device column shows %v, want %s and %s among them", keys(devices), pair.DevA, pair.DevB)
	}
	if a, b := fmt.Sprint(pair.InodeA), fmt.Sprint(pair.InodeB); !namespaces[a] || !namespaces[b] {
		t.Errorf("the Netns column shows %v, want %s and %s among them", keys(namespaces), a, b)
	}
	if drops == 0 {
		t.Error("no frame shows the NO_SOCKET drop of the SYN to the closed port in the Verdict column")
	}

	// The colours: every drop is coloured as one, and data copied to the
	// receiving process as delivered.
	rows := tsharkHome(t, home, append(profile, "--color", "-r", file, "-T", "fields", "-E", "separator=|",
		"-e", "frame.number", "-e", "frame.coloring_rule.name", "-e", "pathcap.drop_reason", "-e", "pathcap.hook_name")...)
	delivered := 0
	for _, line := range strings.Split(strings.TrimSpace(rows), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 4 {
			t.Fatalf("fields line %q", line)
		}
		switch {
		case f[2] != "" && f[1] != "pathcap: dropped":
			t.Errorf("frame %s (drop %s) coloured by %q", f[0], f[2], f[1])
		case f[3] == "skb_copy_datagram_iovec" && f[1] != "pathcap: delivered":
			t.Errorf("frame %s (%s) coloured by %q", f[0], f[3], f[1])
		case f[3] == "skb_copy_datagram_iovec":
			delivered++
		}
	}
	if delivered == 0 {
		t.Error("no frame of data copied to the receiver (skb_copy_datagram_iovec)")
	}
}

func keys(m map[string]bool) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	return k
}
