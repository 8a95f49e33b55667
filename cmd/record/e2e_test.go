package main_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/pcapng"
)

// recording is a running record process.
type recording struct {
	cmd    *exec.Cmd
	file   string
	stderr bytes.Buffer
}

// startRecord starts the record binary with args plus -w FILE and waits
// until every hook is attached.
func startRecord(t *testing.T, bin string, args ...string) *recording {
	t.Helper()
	dir := t.TempDir()
	r := &recording{file: filepath.Join(dir, "rec.pcapng")}
	ready := filepath.Join(dir, "ready")
	args = append([]string{"-w", r.file, "--ready-file", ready, "--duration", "60s"}, args...)
	r.cmd = exec.Command(bin, args...)
	r.cmd.Stderr = &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.cmd.Process.Kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("record did not get ready: %s", r.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the recording with SIGINT and checks it exits 0.
func (r *recording) stop(t *testing.T) {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // let the last events reach the ring
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	r.wait(t)
}

// stopTogether ends several recordings with SIGINT at the same moment
// (recordings compared with each other must cover the same time), and
// checks each exits 0.
func stopTogether(t *testing.T, rs ...*recording) {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // let the last events reach the rings
	for _, r := range rs {
		if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rs {
		r.wait(t)
	}
}

// wait waits for a recording sent SIGINT to exit, and checks it exits 0.
func (r *recording) wait(t *testing.T) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("record: %v\n%s", err, r.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("record did not stop on SIGINT")
	}
}

// event is one decoded packet block of a recording.
type event struct {
	meta     kmeta.Event
	id       uint64
	iface    pcapng.Interface
	data     []byte
	dropped  uint64
	flags    uint32
	hasFlags bool
	// stackComments are the event's comments after the metadata one.
	stackComments []string
}

// readRecording reads every event and interface statistics block of a file
// with this project's reader.
func readRecording(t *testing.T, path string) ([]event, []pcapng.InterfaceStatistics) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapng.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	parser := kmeta.NewParser()
	var events []event
	var stats []pcapng.InterfaceStatistics
	for {
		typ, err := r.Next()
		if err == io.EOF {
			return events, stats
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		switch typ {
		case pcapng.BlockEnhancedPacket:
			p := r.Packet()
			// The metadata comment, and with --stack a stack comment.
			for _, c := range p.Options.Comments[min(1, len(p.Options.Comments)):] {
				if !bytes.HasPrefix(c, []byte(kmeta.StackPrefix)) {
					t.Fatalf("event at offset %d: extra comment %q", r.Offset(), c)
				}
			}
			if len(p.Options.Comments) < 1 {
				t.Fatalf("event at offset %d has no comment", r.Offset())
			}
			e := event{id: p.Options.PacketID, iface: *p.Interface, data: bytes.Clone(p.Data),
				dropped: p.Options.DropCount, flags: p.Options.Flags, hasFlags: p.Options.HasFlags}
			if !p.Options.HasPacketID {
				t.Fatalf("event at offset %d has no packet id", r.Offset())
			}
			parser.SetPlace(kmeta.PlaceOf(p.Interface.Name, p.Interface.Description))
			if err := parser.Parse(p.Options.Comments[0], &e.meta); err != nil {
				t.Fatalf("event at offset %d: comment %q: %v", r.Offset(), p.Options.Comments[0], err)
			}
			for _, c := range p.Options.Comments[1:] {
				e.stackComments = append(e.stackComments, string(c))
			}
			events = append(events, e)
		case pcapng.BlockInterfaceStatistics:
			stats = append(stats, *r.InterfaceStatistics())
		}
	}
}

// ipv4 returns the IPv4 header fields of an Ethernet frame: protocol,
// source, destination and the offset of the payload.
func ipv4(frame []byte) (proto byte, src, dst netip.Addr, payload int, ok bool) {
	if len(frame) < 34 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		return 0, src, dst, 0, false
	}
	ihl := int(frame[14]&0xf) * 4
	return frame[23], netip.AddrFrom4([4]byte(frame[26:30])), netip.AddrFrom4([4]byte(frame[30:34])), 14 + ihl, true
}

// tshark runs tshark on a file and fails on any warning on stderr.
func tshark(t *testing.T, args ...string) string {
	t.Helper()
	bin := testenv.RequireTool(t, "tshark")
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	// tshark warns about running as root; anything else is a problem.
	var warn []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if line != "" && !strings.Contains(line, "Running as user \"root\"") {
			warn = append(warn, line)
		}
	}
	if err != nil || len(warn) > 0 {
		t.Fatalf("tshark %v: %v\n%s", args, err, strings.Join(warn, "\n"))
	}
	return string(out)
}

func TestRecordPingAcrossVeth(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.BuildCommand(t, "record")
	pair := testenv.NewVethPair(t)
	rec := startRecord(t, bin, "-s", "128")
	pair.Exec(t, pair.NSA, "ping", "-c", "1", "-W", "2", pair.IPB)
	rec.stop(t)
	if !strings.Contains(rec.stderr.String(), "events written, 0 lost") && !strings.Contains(rec.stderr.String(), "events written") {
		t.Errorf("stderr has no summary: %s", rec.stderr.String())
	}
	events, _ := readRecording(t, rec.file)

	// The echo request, as it leaves A.
	dstB := netip.MustParseAddr(pair.IPB)
	var id uint64
	for _, e := range events {
		proto, _, dst, off, ok := ipv4(e.data)
		if ok && proto == 1 && dst == dstB && len(e.data) > off && e.data[off] == 8 &&
			e.meta.Hook == "net_dev_queue" && e.meta.NetNS == pair.InodeA {
			id = e.id
			break
		}
	}
	if id == 0 {
		t.Fatalf("no echo request at net_dev_queue in netns %d among %d events", pair.InodeA, len(events))
	}
	want := map[string]struct {
		netns uint32
		dev   string
		flags uint32
	}{
		"net_dev_queue":      {pair.InodeA, pair.DevA, pcapng.DirectionOutbound},
		"net_dev_start_xmit": {pair.InodeA, pair.DevA, pcapng.DirectionOutbound},
		"net_dev_xmit":       {pair.InodeA, pair.DevA, pcapng.DirectionOutbound},
		"netif_receive_skb":  {pair.InodeB, pair.DevB, pcapng.DirectionInbound},
	}
	found := map[string]bool{}
	for _, e := range events {
		w, ok := want[e.meta.Hook]
		if e.id != id || !ok {
			continue
		}
		found[e.meta.Hook] = true
		if e.meta.NetNS != w.netns || e.meta.Dev != w.dev {
			t.Errorf("%s: netns %d dev %q, want netns %d dev %q", e.meta.Hook, e.meta.NetNS, e.meta.Dev, w.netns, w.dev)
		}
		if e.iface.Name != w.dev || !strings.Contains(e.iface.Description, fmt.Sprintf("netns %d ", w.netns)) {
			t.Errorf("%s: interface %q (%s), want %q in netns %d", e.meta.Hook, e.iface.Name, e.iface.Description, w.dev, w.netns)
		}
		if !e.hasFlags || e.flags != w.flags {
			t.Errorf("%s: epb_flags %d (present %v), want direction %d", e.meta.Hook, e.flags, e.hasFlags, w.flags)
		}
	}
	for hook := range want {
		if !found[hook] {
			t.Errorf("packet %d not seen at %s", id, hook)
		}
	}

	// tshark sees the same packet, its ICMP header and the comments.
	out := tshark(t, "-r", rec.file, "-Y", fmt.Sprintf("frame.packet_id == %d", id),
		"-T", "fields", "-e", "icmp.type", "-e", "frame.interface_name", "-e", "frame.comment")
	for hook, w := range want {
		re := regexp.MustCompile(`(?m)^8\t` + regexp.QuoteMeta(w.dev) + `\tpathcap/2 hook=tp:` + hook + ` `)
		if !re.MatchString(out) {
			t.Errorf("tshark shows no ICMP echo request at %s on %s:\n%s", hook, w.dev, out)
		}
	}
	// Every reader of the file agrees on the count.
	n := strings.Count(tshark(t, "-r", rec.file, "-T", "fields", "-e", "frame.number"), "\n")
	if n != len(events) {
		t.Errorf("tshark counts %d frames, this reader %d events", n, len(events))
	}
	if tcpdump, err := exec.LookPath("tcpdump"); err == nil {
		// -# numbers each packet: count the lines that start with a
		// number (some decodes print continuation lines).
		// Only ICMP: the recording holds whatever else the host sent
		// meanwhile (other tests' tunnels and floods), whose decodes
		// tcpdump may print over several lines or none.
		cmd := exec.Command(tcpdump, "-r", rec.file, "-n", "-#", "icmp")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("tcpdump -r: %v\n%s", err, stderr.String())
		}
		icmp := 0
		for _, e := range events {
			if proto, _, _, _, ok := ipv4(e.data); ok && proto == 1 {
				icmp++
			}
		}
		got := len(regexp.MustCompile(`(?m)^\s*\d+\s+\d\d:\d\d:\d\d\.`).FindAllIndex(out, -1))
		if got != icmp || icmp == 0 {
			t.Errorf("tcpdump printed %d ICMP packets, want %d", got, icmp)
		}
	}
}

func TestRecordUDPToClosedPort(t *testing.T) {
	testenv.RequireRoot(t)
	bash := testenv.RequireTool(t, "bash")
	bin := testenv.BuildCommand(t, "record")
	pair := testenv.NewVethPair(t)
	// Resolve the neighbour first so the datagram is not held back.
	pair.Exec(t, pair.NSA, "ping", "-c", "1", "-W", "2", pair.IPB)
	rec := startRecord(t, bin, "--hooks", "kfree_skb,netif_receive_skb,net_dev_queue")
	pair.Exec(t, pair.NSA, bash, "-c", fmt.Sprintf("echo pathcap > /dev/udp/%s/9", pair.IPB))
	rec.stop(t)
	events, _ := readRecording(t, rec.file)
	dstB := netip.MustParseAddr(pair.IPB)
	var drop *event
	for i, e := range events {
		proto, _, dst, _, ok := ipv4(e.data)
		if ok && proto == 17 && dst == dstB && e.meta.Hook == "kfree_skb" {
			drop = &events[i]
		}
	}
	if drop == nil {
		t.Fatalf("no kfree_skb of the UDP datagram among %d events", len(events))
	}
	if !drop.meta.HasDrop || drop.meta.Reason != "NO_SOCKET" {
		t.Errorf("drop reason %q, want NO_SOCKET", drop.meta.Reason)
	}
	if !regexp.MustCompile(`^__udp4_lib_rcv\+0x[0-9a-f]+$|^udp`).MatchString(drop.meta.Location) {
		t.Errorf("drop location %q is not in a UDP receive function", drop.meta.Location)
	}
	if drop.meta.NetNS != pair.InodeB {
		t.Errorf("drop in netns %d, want %d", drop.meta.NetNS, pair.InodeB)
	}
	out := tshark(t, "-r", rec.file, "-Y", "udp.dstport == 9 && frame.comment contains \"reason=NO_SOCKET\"", "-T", "fields", "-e", "frame.comment")
	if !strings.Contains(out, "loc="+drop.meta.Location) {
		t.Errorf("tshark does not show the drop: %q", out)
	}
}

func TestRecordLossIsCounted(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.BuildCommand(t, "record")
	pair := testenv.NewVethPair(t)
	// A ring of one page holds a few dozen events: a ping flood overruns it.
	rec := startRecord(t, bin, "--ring-size", "4096", "-s", "64")
	cmd := exec.Command("ip", "netns", "exec", pair.NSA, "ping", "-f", "-q", "-w", "2", pair.IPB)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Logf("ping -f ended with %v (losses are expected under a flood)\n%s", err, out)
	}
	rec.stop(t)
	m := regexp.MustCompile(`(\d+) events written, (\d+) lost`).FindStringSubmatch(rec.stderr.String())
	if m == nil {
		t.Fatalf("no summary on stderr: %s", rec.stderr.String())
	}
	written, _ := strconv.ParseUint(m[1], 10, 64)
	lost, _ := strconv.ParseUint(m[2], 10, 64)
	if lost == 0 {
		t.Fatalf("no loss reported with a 4 KiB ring under a ping flood: %s", rec.stderr.String())
	}
	events, stats := readRecording(t, rec.file)
	if uint64(len(events)) != written {
		t.Errorf("file has %d events, stderr says %d", len(events), written)
	}
	var dropSum uint64
	for _, e := range events {
		dropSum += e.dropped
	}
	if dropSum == 0 || dropSum > lost {
		t.Errorf("epb_dropcount sums to %d, want between 1 and %d", dropSum, lost)
	}
	var osDrop uint64
	var hasOSDrop bool
	for _, s := range stats {
		if s.HasOSDrop {
			osDrop += s.OSDrop
			hasOSDrop = true
		}
	}
	if !hasOSDrop || osDrop != lost {
		t.Errorf("ISB isb_osdrop %d (present %v), want %d", osDrop, hasOSDrop, lost)
	}
	// The events around the losses are whole: every packet is readable by
	// tshark too.
	n := strings.Count(tshark(t, "-r", rec.file, "-T", "fields", "-e", "frame.drop_count"), "\n")
	if n != len(events) {
		t.Errorf("tshark reads %d frames, want %d", n, len(events))
	}
}

func TestRecordUsageErrors(t *testing.T) {
	bin := testenv.BuildCommand(t, "record")
	for _, args := range [][]string{
		{"-s", "0"},
		{"--backend", "kprobe-nonsense"},
		{"--backend", "kprobe", "--fexit"},
		{"--backend", "tracepoint", "--functions", "^ip_rcv$"},
		{"--functions", "ip_(rcv"},
		{"--stack", "--stack-depth", "128"},
		{"--ring-size", "1000"},
		{"--no-such-flag"},
		{"-w", "x.pcapng", "-C", "5X"},
		{"-w", "x.pcapng", "-C", "100"},
		{"-C", "1M"},
		{"-w", "-", "-G", "10s"},
		{"-w", "x.pcapng", "-G", "500ms"},
		{"-w", "x.pcapng", "-W", "3"},
		{"--max-size", "1M"},
		{"-w", "x.pcapng", "--max-size", "lots"},
	} {
		cmd := exec.Command(bin, args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("record %v: %v, want exit status 2\n%s", args, err, out)
		}
		if !strings.Contains(string(out), "record:") && !strings.Contains(string(out), "Incorrect Usage") {
			t.Errorf("record %v: no message: %s", args, out)
		}
	}
}

func TestRecordCannotCreateOutput(t *testing.T) {
	bin := testenv.BuildCommand(t, "record")
	out, err := exec.Command(bin, "-w", "/nonexistent-dir/x.pcapng").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 5 || !strings.Contains(string(out), "create output") {
		t.Errorf("got %v: %s", err, out)
	}
}

func TestRecordListFunctions(t *testing.T) {
	bin := testenv.BuildCommand(t, "record")
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		testenv.SkipOrFail(t, "no kernel BTF: %v", err)
	}
	out, err := exec.Command(bin, "--list", "--functions", "^ip_rcv$").CombinedOutput()
	if err != nil {
		t.Fatalf("record --list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "tp:kfree_skb (drop reason)") || !strings.Contains(string(out), "func:ip_rcv skb=arg0 backends=kprobe-multi,kprobe,fentry\n") {
		t.Errorf("record --list --functions ^ip_rcv$:\n%s", out)
	}
	if n := strings.Count(string(out), "func:"); n != 1 {
		t.Errorf("%d functions listed, want 1", n)
	}
}

// TestRecordStackStreaming records with --stack to standard output and
// checks that the stream is a readable recording of the drop.
func TestRecordStackStreaming(t *testing.T) {
	testenv.RequireRoot(t)
	bash := testenv.RequireTool(t, "bash")
	bin := testenv.BuildCommand(t, "record")
	pair := testenv.NewVethPair(t)
	pair.Exec(t, pair.NSA, "ping", "-c", "1", "-W", "2", pair.IPB)
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "stream.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ready := filepath.Join(dir, "ready")
	cmd := exec.Command(bin, "-w", "-", "--ready-file", ready, "--duration", "4s", "--stack", "--stack-depth", "32",
		"--hooks", "kfree_skb,net_dev_queue", "--netns", pair.NSB)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("record did not get ready: %s", stderr.String())
		}
	}
	pair.Exec(t, pair.NSA, bash, "-c", fmt.Sprintf("echo pathcap > /dev/udp/%s/9", pair.IPB))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("record: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "backend tracepoint") {
		t.Errorf("stderr does not name the backend:\n%s", stderr.String())
	}
	events, _ := readRecording(t, out.Name())
	found := false
	var stacks []string
	for _, e := range events {
		stacks = append(stacks, e.stackComments...)
		if proto, _, _, _, ok := ipv4(e.data); ok && proto == 17 && e.meta.Hook == "kfree_skb" {
			found = true
		}
	}
	if !found {
		t.Errorf("no kfree_skb of the UDP datagram among %d streamed events\n%s", len(events), stderr.String())
	}
	if !strings.Contains(strings.Join(stacks, "\n"), "__udp4_lib_rcv") {
		t.Errorf("no stack comment names __udp4_lib_rcv: %q", stacks)
	}
}
