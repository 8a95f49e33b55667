package pcapng_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/pathcap/pathcap/pcapng"
)

// interopInterfaces are the two interfaces of the interoperability file:
// same link type and snapshot length, as libpcap (tcpdump) requires.
var interopInterfaces = []*pcapng.Interface{
	{LinkType: pcapng.LinkTypeEthernet, SnapLen: 65535, Name: "eth0", Description: "uplink", TSResolution: pcapng.Nanoseconds},
	{LinkType: pcapng.LinkTypeEthernet, SnapLen: 65535, Name: "veth1", TSResolution: pcapng.Microseconds},
}

// interopPackets are real-looking frames with the options other tools
// show: comments, packet ids, tc verdicts and directions.
func interopPackets() []*pcapng.Packet {
	t0 := baseTime
	return []*pcapng.Packet{
		{InterfaceID: 0, Timestamp: t0, Data: icmpEcho(false, 0x4242, 1, 56), Options: pcapng.PacketOptions{
			Comments: [][]byte{[]byte("echo request")}, PacketID: 1, HasPacketID: true,
			Flags: pcapng.DirectionOutbound, HasFlags: true, Verdicts: [][]byte{tcVerdict(0)}}},
		{InterfaceID: 1, Timestamp: t0.Add(1234567 * time.Nanosecond), Data: icmpEcho(true, 0x4242, 1, 56), Options: pcapng.PacketOptions{
			Comments: [][]byte{[]byte("echo reply"), []byte("second comment, with a comma"), []byte("café ✓")}, PacketID: 2, HasPacketID: true,
			Flags: pcapng.DirectionInbound, HasFlags: true, Verdicts: [][]byte{tcVerdict(2)}}},
		{InterfaceID: 0, Timestamp: t0.Add(time.Second), Data: udpFrame(40000, 9, []byte("discard me")), Options: pcapng.PacketOptions{
			PacketID: 3, HasPacketID: true, Flags: pcapng.DirectionOutbound, HasFlags: true}},
		{InterfaceID: 1, Timestamp: t0.Add(time.Second + 999*time.Nanosecond), Data: udpFrame(40001, 9, bytes.Repeat([]byte{0x55}, 1400)), Options: pcapng.PacketOptions{
			Verdicts: [][]byte{tcVerdict(1)}}},
		{InterfaceID: 0, Timestamp: t0.Add(2 * time.Second), Data: icmpEcho(false, 0x4242, 2, 0)},
		{InterfaceID: 1, Timestamp: t0.Add(3 * time.Second), OriginalLength: 2000, Data: udpFrame(40002, 9, []byte{}), Options: pcapng.PacketOptions{
			Comments: [][]byte{[]byte("short")}, PacketID: 1 << 40, HasPacketID: true, Flags: pcapng.DirectionInbound, HasFlags: true}},
	}
}

// writeInteropFile writes the interoperability file into dir.
func writeInteropFile(t *testing.T) (string, []*pcapng.Packet) {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapng.NewWriter(&buf, &pcapng.Section{UserApplication: "pathcap interop test", Comments: []string{"interop"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range interopInterfaces {
		if _, err := w.AddInterface(ifc); err != nil {
			t.Fatal(err)
		}
	}
	pkts := interopPackets()
	for _, p := range pkts {
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteInterfaceStatistics(&pcapng.InterfaceStatistics{
		InterfaceID: 0, Timestamp: baseTime.Add(4 * time.Second),
		StartTime: baseTime, HasStartTime: true, EndTime: baseTime.Add(4 * time.Second), HasEndTime: true,
		IfRecv: 3, HasIfRecv: true, IfDrop: 0, HasIfDrop: true, OSDrop: 0, HasOSDrop: true,
	}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "interop.pcapng")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, pkts
}

// rootWarning is what tshark and capinfos print on stderr whenever they
// run as root; it says nothing about the file.
var rootWarning = regexp.MustCompile(`(?m)^Running as user "root" and group "root"\. This could be dangerous\.\n?`)

// run runs a program and returns its stdout and its stderr without the
// root warning; a non-zero exit is fatal.
func run(t *testing.T, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(needTool(t, name), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstderr: %s", name, strings.Join(args, " "), err, e.String())
	}
	return o.String(), rootWarning.ReplaceAllString(e.String(), "")
}

func epochString(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

func TestInteropTshark(t *testing.T) {
	path, pkts := writeInteropFile(t)

	// Plain reading: no complaint at all.
	out, errOut := run(t, "tshark", "-r", path)
	if errOut != "" {
		t.Errorf("tshark -r printed on stderr:\n%s", errOut)
	}
	if n := strings.Count(out, "\n"); n != len(pkts) {
		t.Errorf("tshark -r printed %d lines, want %d:\n%s", n, len(pkts), out)
	}

	// Every frame dissects cleanly, checksums included: the only expert
	// items are the comments (severity "comment", 0x00100000).
	out, errOut = run(t, "tshark", "-r", path, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
		"-T", "fields", "-E", "aggregator=|", "-e", "frame.number", "-e", "_ws.expert.severity", "-e", "_ws.malformed",
		"-e", "ip.checksum.status", "-e", "udp.checksum.status", "-e", "icmp.checksum.status")
	if errOut != "" {
		t.Errorf("tshark printed on stderr:\n%s", errOut)
	}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		f := strings.Split(line, "\t")
		for _, sev := range strings.Split(f[1], "|") {
			if sev != "" && sev != strconv.Itoa(0x00100000) {
				t.Errorf("frame %s: expert item of severity %s", f[0], sev)
			}
		}
		if f[2] != "" {
			t.Errorf("frame %s is malformed: %s", f[0], f[2])
		}
		for _, st := range f[3:] {
			if st != "" && st != "1" {
				t.Errorf("frame %s: checksum status %s (1 is good)", f[0], st)
			}
		}
	}

	// The fields show exactly what was written. tshark joins several
	// occurrences of a field with the aggregator, prints directions in
	// hex and tc verdicts in decimal.
	fields := []string{"frame.comment", "frame.packet_id", "frame.verdict.ebpf_tc", "frame.packet_flags_direction",
		"frame.interface_name", "frame.interface_id", "frame.time_epoch", "frame.len", "frame.cap_len"}
	args := []string{"-r", path, "-T", "fields", "-E", "aggregator=|"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, errOut = run(t, "tshark", args...)
	if errOut != "" {
		t.Errorf("tshark printed on stderr:\n%s", errOut)
	}
	var want strings.Builder
	for _, p := range pkts {
		var comments []string
		for _, c := range p.Options.Comments {
			comments = append(comments, string(c))
		}
		id := ""
		if p.Options.HasPacketID {
			id = strconv.FormatUint(p.Options.PacketID, 10)
		}
		var verdicts []string
		for _, v := range p.Options.Verdicts {
			if v[0] == pcapng.VerdictLinuxTC {
				verdicts = append(verdicts, strconv.FormatInt(int64(v[1]), 10))
			}
		}
		dir := ""
		if p.Options.HasFlags {
			dir = fmt.Sprintf("0x%08x", p.Options.Direction())
		}
		ifc := interopInterfaces[p.InterfaceID]
		ts, _ := expectedTime(p.Timestamp, ifc)
		orig := max(p.OriginalLength, uint32(len(p.Data)))
		fmt.Fprintf(&want, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%d\t%d\n", strings.Join(comments, "|"), id, strings.Join(verdicts, "|"), dir,
			ifc.Name, p.InterfaceID, epochString(ts), orig, len(p.Data))
	}
	if out != want.String() {
		t.Errorf("tshark fields\n got:\n%s\nwant:\n%s", out, want.String())
	}
}

func TestInteropCapinfos(t *testing.T) {
	path, pkts := writeInteropFile(t)
	out, errOut := run(t, "capinfos", path)
	if errOut != "" {
		t.Errorf("capinfos printed on stderr:\n%s", errOut)
	}
	for _, want := range []string{
		fmt.Sprintf("Number of packets:   %d\n", len(pkts)),
		"File encapsulation:  Ethernet\n",
		"Number of interfaces in file: 2\n",
		"Name = eth0\n",
		"Name = veth1\n",
		"Time precision = nanoseconds (9)\n",
		"Time precision = microseconds (6)\n",
		"Number of stat entries = 1\n",
		"Capture application: pathcap interop test\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("capinfos output lacks %q:\n%s", want, out)
		}
	}
	// Per-interface packet counts.
	counts := regexp.MustCompile(`Number of packets = (\d+)`).FindAllStringSubmatch(out, -1)
	if len(counts) != 2 || counts[0][1] != "3" || counts[1][1] != "3" {
		t.Errorf("per-interface packet counts %v, want 3 and 3", counts)
	}
}

func TestInteropTcpdump(t *testing.T) {
	path, pkts := writeInteropFile(t)
	out, errOut := run(t, "tcpdump", "-r", path, "-n", "-tt", "--time-stamp-precision=nano")
	if strings.TrimSpace(errOut) != "reading from file "+path+", link-type EN10MB (Ethernet), snapshot length 65535" {
		t.Errorf("tcpdump stderr: %q", errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(pkts) {
		t.Fatalf("tcpdump printed %d packets, want %d:\n%s", len(lines), len(pkts), out)
	}
	for i, p := range pkts {
		ts, _ := expectedTime(p.Timestamp, interopInterfaces[p.InterfaceID])
		if !strings.HasPrefix(lines[i], epochString(ts)+" IP ") {
			t.Errorf("tcpdump line %d: %q, want time %s and an IP packet", i, lines[i], epochString(ts))
		}
		if strings.Contains(lines[i], "invalid") || strings.Contains(lines[i], "truncated") {
			t.Errorf("tcpdump line %d: %q", i, lines[i])
		}
	}
}

func TestInteropGopacketReadsOurs(t *testing.T) {
	path, pkts := writeInteropFile(t)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		ts, _ := expectedTime(p.Timestamp, interopInterfaces[p.InterfaceID])
		if !bytes.Equal(data, p.Data) || ci.CaptureLength != len(p.Data) || ci.InterfaceIndex != int(p.InterfaceID) || !ci.Timestamp.Equal(ts) {
			t.Errorf("packet %d: pcapgo read %d bytes on interface %d at %v, want %d bytes on %d at %v",
				i, len(data), ci.InterfaceIndex, ci.Timestamp, len(p.Data), p.InterfaceID, ts)
		}
		if ci.Length != int(max(p.OriginalLength, uint32(len(p.Data)))) {
			t.Errorf("packet %d: original length %d", i, ci.Length)
		}
		if len(opts.Comments) != len(p.Options.Comments) {
			t.Errorf("packet %d: pcapgo reads %d comments, want %d", i, len(opts.Comments), len(p.Options.Comments))
		}
		for j := range opts.Comments {
			if j < len(p.Options.Comments) && opts.Comments[j] != string(p.Options.Comments[j]) {
				t.Errorf("packet %d comment %d: %q", i, j, opts.Comments[j])
			}
		}
		if p.Options.HasPacketID != (opts.PacketID != nil) || opts.PacketID != nil && *opts.PacketID != p.Options.PacketID {
			t.Errorf("packet %d: packet id %v", i, opts.PacketID)
		}
		if len(opts.Verdicts) != len(p.Options.Verdicts) {
			t.Errorf("packet %d: %d verdicts", i, len(opts.Verdicts))
		}
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Errorf("after the last packet: %v, want EOF", err)
	}
	// pcapgo reads interface descriptions as it meets them.
	if r.NInterfaces() != 2 {
		t.Errorf("pcapgo saw %d interfaces, want 2", r.NInterfaces())
	}
	for i, want := range interopInterfaces {
		ifc, err := r.Interface(i)
		if err != nil || ifc.Name != want.Name || ifc.SnapLength != want.SnapLen || ifc.LinkType != layers.LinkTypeEthernet {
			t.Errorf("pcapgo interface %d: %+v, %v", i, ifc, err)
		}
	}
}

// TestInteropWeReadGopacket reads a file written by pcapgo's NgWriter.
func TestInteropWeReadGopacket(t *testing.T) {
	var buf bytes.Buffer
	w, err := pcapgo.NewNgWriter(&buf, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	pkts := interopPackets()
	for _, p := range pkts {
		id := p.Options.PacketID
		opts := pcapgo.NgPacketOptions{}
		for _, c := range p.Options.Comments {
			opts.Comments = append(opts.Comments, string(c))
		}
		if p.Options.HasPacketID {
			opts.PacketID = &id
		}
		ci := gopacket.CaptureInfo{Timestamp: p.Timestamp, CaptureLength: len(p.Data), Length: len(p.Data)}
		if err := w.WritePacketWithOptions(ci, p.Data, opts); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := pcapng.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range pkts {
		p, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(p.Data, want.Data) || !p.Timestamp.Equal(want.Timestamp) || p.InterfaceID != 0 || p.Interface.LinkType != pcapng.LinkTypeEthernet {
			t.Errorf("packet %d: %d bytes at %v on %d, want %d bytes at %v", i, len(p.Data), p.Timestamp, p.InterfaceID, len(want.Data), want.Timestamp)
		}
		if fmt.Sprintf("%q", p.Options.Comments) != fmt.Sprintf("%q", want.Options.Comments) && len(want.Options.Comments)+len(p.Options.Comments) > 0 {
			t.Errorf("packet %d: comments %q, want %q", i, p.Options.Comments, want.Options.Comments)
		}
		if p.Options.HasPacketID != want.Options.HasPacketID || p.Options.PacketID != want.Options.PacketID {
			t.Errorf("packet %d: packet id %v %d", i, p.Options.HasPacketID, p.Options.PacketID)
		}
	}
	if _, err := r.ReadPacket(); err != io.EOF {
		t.Errorf("after the last packet: %v", err)
	}
}

// wtapEncap maps the link types of the corpus to Wireshark's encapsulation
// numbers (frame.encap_type).
var wtapEncap = map[pcapng.LinkType]int{
	pcapng.LinkTypeNull:     15,
	pcapng.LinkTypeEthernet: 1,
	pcapng.LinkTypeRaw:      7,
}

// TestConformanceAgainstTshark compares, for every corpus file in both
// byte orders, the packets our Reader returns with the frames tshark
// shows: section, interface, link type and comments.
func TestConformanceAgainstTshark(t *testing.T) {
	files := conformanceFiles(t)
	needTool(t, "tshark")
	for _, le := range files {
		for _, path := range []string{le, strings.Replace(le, "output_le", "output_be", 1)} {
			name, _ := filepath.Rel(conformanceDir, path)
			t.Run(name, func(t *testing.T) {
				out, errOut := run(t, "tshark", "-r", path, "-T", "fields", "-E", "aggregator=|",
					"-e", "frame.cb_pen", "-e", "frame.section_number", "-e", "frame.interface_id", "-e", "frame.encap_type", "-e", "frame.cap_len", "-e", "frame.comment")
				if errOut != "" {
					t.Errorf("tshark stderr: %s", errOut)
				}
				var want []string
				for _, line := range strings.Split(out, "\n") {
					if line == "" {
						continue
					}
					f := strings.SplitN(line, "\t", 2)
					if f[0] != "" {
						// A custom block, which tshark shows as a frame.
						continue
					}
					want = append(want, f[1])
				}
				var got []string
				err := eachPacket(path, func(r *pcapng.Reader, p *pcapng.Packet) {
					enc, ok := wtapEncap[p.Interface.LinkType]
					if !ok {
						t.Fatalf("link type %v has no Wireshark encapsulation in the table", p.Interface.LinkType)
					}
					var comments []string
					for _, c := range p.Options.Comments {
						comments = append(comments, string(c))
					}
					got = append(got, fmt.Sprintf("%d\t%d\t%d\t%d\t%s", r.SectionIndex()+1, p.InterfaceID, enc, len(p.Data), strings.Join(comments, "|")))
				})
				if err != nil {
					t.Fatal(err)
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("our Reader:\n%s\ntshark:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			})
		}
	}
}

// eachPacket calls fn for every packet of a file.
func eachPacket(path string, fn func(*pcapng.Reader, *pcapng.Packet)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := pcapng.NewReader(f)
	if err != nil {
		return err
	}
	for {
		p, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		fn(r, p)
	}
}
