package wireshark_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/pcapng"
)

// udpFrame returns an Ethernet/IPv4/UDP frame from 10.0.0.1:40000 to
// 10.0.0.2:9 with a few bytes of payload.
func udpFrame() []byte {
	payload := []byte("pathcap")
	b := make([]byte, 14+20+8+len(payload))
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], 9)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(udp[8:], payload)
	return b
}

// writeCapture writes a pcap-ng file with one packet per element of
// frames, each carrying the given comments, checks that the dissector
// runs on every frame of it without a Lua error, and returns its path.
func writeCapture(t *testing.T, frames [][]string) string {
	t.Helper()
	return writeCaptureOn(t, frames, []testIface{{"veth1", "netns 4026532841 (test) ifindex 2"}}, nil)
}

// testIface is an interface of a test capture: its if_name and
// if_description.
type testIface struct{ name, desc string }

// writeCaptureOn is writeCapture with the interfaces ifaces, frame i on
// ifaces[on[i]] (on nil: every frame on the first).
func writeCaptureOn(t *testing.T, frames [][]string, ifaces []testIface, on []int) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcapng.NewWriter(&buf, &pcapng.Section{
		Hardware:        "x86_64",
		OS:              "Linux",
		UserApplication: "pathcap test",
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]uint32, len(ifaces))
	for i, ifc := range ifaces {
		ids[i], err = w.AddInterface(&pcapng.Interface{
			LinkType:     pcapng.LinkTypeEthernet,
			SnapLen:      270,
			Name:         ifc.name,
			Description:  ifc.desc,
			TSResolution: pcapng.Nanoseconds,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	data := udpFrame()
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, comments := range frames {
		var opts pcapng.PacketOptions
		for _, c := range comments {
			opts.Comments = append(opts.Comments, []byte(c))
		}
		opts.PacketID, opts.HasPacketID = uint64(i+7), true
		id := ids[0]
		if on != nil {
			id = ids[on[i]]
		}
		err := w.WritePacket(&pcapng.Packet{
			InterfaceID:    id,
			Timestamp:      start.Add(time.Duration(i) * time.Microsecond),
			Data:           data,
			OriginalLength: uint32(len(data)),
			Options:        opts,
		})
		if err != nil {
			t.Fatalf("frame %d: %v", i+1, err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "test.pcapng")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// tshark reports Lua errors of a dissector in the tree, not on
	// standard error.
	if tree := tshark(t, path, "-V"); strings.Contains(tree, "Lua Error") {
		t.Fatalf("Lua error in the tree:\n%s", tree)
	}
	return path
}

// comment returns a version 1 comment for e, as record wrote them before
// version 2 (AppendText's keys): the dissector reads both.
func comment(e kmeta.Event) string {
	return "pathcap/1 " + string(kmeta.AppendText(nil, &e))
}

// tshark runs tshark with pathcap.lua on file and returns its standard
// output. It fails the test if tshark fails or writes anything to standard
// error other than its warning about running as root.
func tshark(t *testing.T, file string, args ...string) string {
	t.Helper()
	script := filepath.Join(testenv.ModuleRoot(t), "wireshark", "pathcap.lua")
	all := append([]string{"-n", "-X", "lua_script:" + script, "-r", file}, args...)
	// A private home keeps the user's preferences and personal plugins
	// (possibly an installed copy of pathcap.lua) out of the test.
	stdout, stderr, err := runTshark(t, t.TempDir(), all...)
	checkStderr(t, args, stderr)
	if err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout
}

// checkStderr fails the test if tshark's standard error holds anything
// other than its warning about running as root.
func checkStderr(t *testing.T, args []string, stderr string) {
	t.Helper()
	for _, line := range strings.Split(stderr, "\n") {
		if line != "" && !strings.HasPrefix(line, "Running as user ") {
			t.Errorf("tshark %s: unexpected standard error:\n%s", strings.Join(args, " "), stderr)
			break
		}
	}
}

// fields returns, for every frame that matches filter (all when it is
// empty), the frame number followed by the values of the named fields,
// one []string per frame. Several occurrences of a field are joined by
// commas. Values are as tshark 4.0 prints them (normalizeField).
func fields(t *testing.T, file, filter string, names ...string) [][]string {
	t.Helper()
	args := []string{"-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-e", "frame.number"}
	for _, n := range names {
		args = append(args, "-e", n)
	}
	if filter != "" {
		args = append(args, "-Y", filter)
	}
	var rows [][]string
	for _, line := range strings.Split(tshark(t, file, args...), "\n") {
		if line == "" {
			continue
		}
		row := strings.Split(line, "\t")
		for i := 1; i < len(row) && i <= len(names); i++ {
			row[i] = normalizeField(t, names[i-1], row[i])
		}
		rows = append(rows, row)
	}
	return rows
}

// frames returns the numbers of the frames that match filter.
func frames(t *testing.T, file, filter string) []int {
	t.Helper()
	var nums []int
	for _, row := range fields(t, file, filter) {
		n, err := strconv.Atoi(row[0])
		if err != nil {
			t.Fatalf("frame number %q: %v", row[0], err)
		}
		nums = append(nums, n)
	}
	return nums
}

// checkFilters checks that each filter selects exactly the given frames.
func checkFilters(t *testing.T, file string, cases []filterCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.filter, func(t *testing.T) {
			t.Parallel()
			if got := frames(t, file, c.filter); !reflect.DeepEqual(got, c.want) {
				t.Errorf("filter %s selects frames %v, want %v", c.filter, got, c.want)
			}
		})
	}
}

type filterCase struct {
	filter string
	want   []int
}

// eventFields are the fields of a raw recording event, in the order the
// tests list expected values.
var eventFields = []string{
	"pathcap.version", "pathcap.hook", "pathcap.kind", "pathcap.hook_name", "pathcap.dev",
	"pathcap.netns", "pathcap.ifindex", "pathcap.skb", "pathcap.len", "pathcap.data_len",
	"pathcap.proto", "pathcap.pkt_type", "pathcap.mark", "pathcap.hdr", "pathcap.ret",
	"pathcap.parent", "pathcap.cpu", "pathcap.pid", "pathcap.tid", "pathcap.comm",
	"pathcap.drop_reason", "pathcap.drop_location",
}

// sampleEvents are raw events covering every key, quoted values, and the
// optional keys both present and absent.
func sampleEvents() []kmeta.Event {
	return []kmeta.Event{
		// 1: the drop of docs/FORMAT.md.
		{Kind: "tp", Hook: "kfree_skb", Dev: "veth1", NetNS: 4026532841, Ifindex: 2,
			SKB: 0xffff8e2b45a3c400, Len: 42, Proto: 0x0800, CPU: 1, Comm: "swapper/1",
			HasDrop: true, Reason: "NO_SOCKET", Location: "__udp4_lib_rcv+0x4bc"},
		// 2: quoted device and task names, every optional key.
		{Kind: "tp", Hook: "net_dev_queue", Dev: "veth 0", NetNS: 4026531840, Ifindex: 7,
			SKB: 0xffff888100000000, Len: 1500, DataLen: 1000, Proto: 0x86dd, PktType: 4,
			Mark: 0x2a, Header: kmeta.HeaderNetwork, BytesSame: true, Parent: 12345678901234567890,
			CPU: 3, PID: 4242, TID: 4243, Comm: `ping "x" \ y`},
		// 3: no device, a return value, a numeric packet type, control
		// bytes and non-ASCII in the task name.
		{Kind: "fexit", Hook: "ip_rcv", SKB: 1, Len: 60, Proto: 0x0806, PktType: 9,
			Header: kmeta.HeaderData, RetVal: -22, HasRetVal: true, CPU: 0, PID: 1, TID: 1,
			Comm: "a\tb\u00a0é"},
		// 4: a device name that is not UTF-8, extreme numbers.
		{Kind: "kprobe", Hook: "dev:with:colons", Dev: "\xff", NetNS: 4294967295, Ifindex: 4294967295,
			SKB: 0xffffffffffffffff, Len: 4294967295, DataLen: 1, Proto: 0xffff, PktType: 7,
			Mark: 0xffffffff, RetVal: 9223372036854775807, HasRetVal: true,
			Parent: 18446744073709551615, CPU: 4294967295, PID: 4294967295, TID: 4294967295,
			Comm: "", HasDrop: true, Reason: "REASON_1234", Location: "0xffffffffc0de0000"},
		// 5: the smallest return value, a drop without a location.
		{Kind: "fexit", Hook: "x", RetVal: -9223372036854775808, HasRetVal: true, Comm: "c",
			HasDrop: true, Reason: "NOT_SPECIFIED"},
	}
}

func TestEventFields(t *testing.T) {
	t.Parallel()
	var frameComments [][]string
	for _, e := range sampleEvents() {
		frameComments = append(frameComments, []string{comment(e)})
	}
	file := writeCapture(t, frameComments)
	want := [][]string{
		{"1", "1", "tp:kfree_skb", "tp", "kfree_skb", "veth1",
			"4026532841", "2", "0xffff8e2b45a3c400", "42", "",
			"0x0800", "", "", "", "",
			"", "1", "0", "0", "swapper/1",
			"NO_SOCKET", "__udp4_lib_rcv+0x4bc"},
		{"2", "1", "tp:net_dev_queue", "tp", "net_dev_queue", "veth 0",
			"4026531840", "7", "0xffff888100000000", "1500", "1000",
			"0x86dd", "outgoing", "0x0000002a", "net", "",
			"12345678901234567890", "3", "4242", "4243", `ping "x" \ y`,
			"", ""},
		// tshark writes a tab in a value as \t.
		{"3", "1", "fexit:ip_rcv", "fexit", "ip_rcv", "",
			"0", "0", "0x0000000000000001", "60", "",
			"0x0806", "9", "", "data", "-22",
			"", "0", "1", "1", `a\tb` + "\u00a0é",
			"", ""},
		// tshark writes string values byte for byte.
		{"4", "1", "kprobe:dev:with:colons", "kprobe", "dev:with:colons", "\xff",
			"4294967295", "4294967295", "0xffffffffffffffff", "4294967295", "1",
			"0xffff", "kernel", "0xffffffff", "", "9223372036854775807",
			"18446744073709551615", "4294967295", "4294967295", "4294967295", "",
			"REASON_1234", "0xffffffffc0de0000"},
		{"5", "1", "fexit:x", "fexit", "x", "",
			"0", "0", "0x0000000000000000", "0", "",
			"0x0000", "", "", "", "-9223372036854775808",
			"", "0", "0", "0", "c",
			"NOT_SPECIFIED", ""},
	}
	got := fields(t, file, "", eventFields...)
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d: %q", len(got), len(want), got)
	}
	for i := range want {
		for j, name := range append([]string{"frame.number"}, eventFields...) {
			if j >= len(got[i]) {
				t.Errorf("frame %d: %s missing from output %q", i+1, name, got[i])
				continue
			}
			if got[i][j] != want[i][j] {
				t.Errorf("frame %d: %s = %q, want %q", i+1, name, got[i][j], want[i][j])
			}
		}
	}
}

func TestEventFilters(t *testing.T) {
	t.Parallel()
	var frameComments [][]string
	for _, e := range sampleEvents() {
		frameComments = append(frameComments, []string{comment(e)})
	}
	file := writeCapture(t, frameComments)
	checkFilters(t, file, []filterCase{
		{`pathcap`, []int{1, 2, 3, 4, 5}},
		{`pathcap.version == 1`, []int{1, 2, 3, 4, 5}},
		{`pathcap.drop_reason == "NO_SOCKET"`, []int{1}},
		{`pathcap.drop_reason`, []int{1, 4, 5}},
		{`pathcap.drop_location contains "udp4" && udp.dstport == 9`, []int{1}},
		{`pathcap.netns == 4026532841`, []int{1}},
		{`pathcap.netns == 0`, []int{3, 5}},
		{`pathcap.ifindex == 7`, []int{2}},
		{`pathcap.skb == 0xffff8e2b45a3c400`, []int{1}},
		{`pathcap.len > 1000`, []int{2, 4}},
		{`pathcap.data_len`, []int{2, 4}},
		{`pathcap && !pathcap.data_len`, []int{1, 3, 5}},
		{`pathcap.proto == 0x86dd`, []int{2}},
		{`pathcap.pkt_type == "outgoing"`, []int{2}},
		{`pathcap.pkt_type`, []int{2, 3, 4}},
		{`pathcap.mark == 0x2a`, []int{2}},
		{`pathcap.mark`, []int{2, 4}},
		{`pathcap.hdr == "net"`, []int{2}},
		{`pathcap.hdr`, []int{2, 3}},
		{`pathcap.bytes == "same"`, []int{2}},
		{`pathcap && !pathcap.bytes`, []int{1, 3, 4, 5}},
		{`pathcap.ret == -22`, []int{3}},
		{`pathcap.ret < 0`, []int{3, 5}},
		{`pathcap.parent == 12345678901234567890`, []int{2}},
		{`pathcap.cpu == 3 && pathcap.pid == 4242 && pathcap.tid == 4243`, []int{2}},
		{`pathcap.hook == "tp:kfree_skb"`, []int{1}},
		{`pathcap.kind == "fexit"`, []int{3, 5}},
		{`pathcap.hook_name == "dev:with:colons"`, []int{4}},
		{`pathcap.dev == "veth 0"`, []int{2}},
		{`pathcap.dev == "\xff"`, []int{4}},
		{`pathcap.comm == "ping \"x\" \\ y"`, []int{2}},
		{`pathcap.comm == "a\tb\u00a0é"`, []int{3}},
		{`pathcap.comm == ""`, []int{4}},
		{`frame.packet_id == 8 && pathcap.hook_name == "net_dev_queue"`, []int{2}},
	})
}

// TestVersion2Places: a version 2 comment's device, namespace and ifindex
// come from the frame's interface (a device's name only where the
// interface's name is the device's), its tid from its pid when it has
// none; the filters and the tree show them as for version 1.
func TestVersion2Places(t *testing.T) {
	t.Parallel()
	ifaces := []testIface{
		{"veth-a", "netns 4026532177 (nsA) ifindex 2"},
		{"if5", "netns 4026531840 (init) ifindex 5"},
		{"nodev", "netns 4026531840 (init) no device"},
		{"if7", "netns 4026531840 (init) ifindex 7"},
		{"nodev", "no device, no netns"},
	}
	type frame struct {
		on int
		e  kmeta.Event
	}
	frames := []frame{
		{0, kmeta.Event{Kind: "tp", Hook: "net_dev_queue", Dev: "veth-a", NetNS: 4026532177, Ifindex: 2, PID: 10, TID: 10, Comm: "ping"}},
		{1, kmeta.Event{Kind: "tp", Hook: "netif_receive_skb", NetNS: 4026531840, Ifindex: 5, PID: 11, TID: 12}},
		{2, kmeta.Event{Kind: "tp", Hook: "consume_skb", NetNS: 4026531840, PID: 13, TID: 13}},
		{3, kmeta.Event{Kind: "tp", Hook: "net_dev_xmit", Dev: "if7", NetNS: 4026531840, Ifindex: 7, PID: 14, TID: 14}},
		{0, kmeta.Event{Kind: "tp", Hook: "net_dev_queue", Dev: "veth-renamed", NetNS: 4026532177, Ifindex: 2, PID: 15, TID: 15}},
		{4, kmeta.Event{Kind: "tp", Hook: "kfree_skb", PID: 16, TID: 16, HasDrop: true, Reason: "NOT_SPECIFIED"}},
	}
	var comments [][]string
	var on []int
	for _, f := range frames {
		e := f.e
		e.Dev = kmeta.DevFor(e.Dev, ifaces[f.on].name, e.Ifindex)
		comments = append(comments, []string{string(kmeta.AppendComment(nil, &e))})
		on = append(on, f.on)
	}
	if !strings.HasPrefix(comments[0][0], "pathcap/2 ") || strings.Contains(comments[0][0], "dev=") || strings.Contains(comments[0][0], "netns=") ||
		strings.Contains(comments[0][0], "tid=") || !strings.Contains(comments[3][0], " dev=if7 ") || !strings.Contains(comments[4][0], " dev=veth-renamed ") {
		t.Fatalf("comments %q", comments)
	}
	file := writeCaptureOn(t, comments, ifaces, on)
	checkFilters(t, file, []filterCase{
		{`pathcap.version == 2`, []int{1, 2, 3, 4, 5, 6}},
		{`pathcap.dev == "veth-a"`, []int{1}},
		{`pathcap.dev == "veth-renamed"`, []int{5}},
		{`pathcap.dev == "if7"`, []int{4}},
		{`pathcap.dev`, []int{1, 4, 5}},
		{`pathcap.netns == 4026532177`, []int{1, 5}},
		{`pathcap.netns == 4026531840`, []int{2, 3, 4}},
		{`pathcap.netns == 0`, []int{6}},
		{`pathcap.ifindex == 5`, []int{2}},
		{`pathcap.ifindex == 0`, []int{3, 6}},
		{`pathcap.tid == 12 && pathcap.pid == 11`, []int{2}},
		{`pathcap.tid == 16`, []int{6}},
	})
	out := tshark(t, file, "-V", "-O", "pathcap", "-Y", "frame.number == 1")
	if !strings.Contains(out, "pathcap: tp:net_dev_queue on veth-a (netns 4026532177)\n") {
		t.Errorf("tree of frame 1:\n%s", out)
	}
}

func TestTreeText(t *testing.T) {
	t.Parallel()
	file := writeCapture(t, [][]string{
		{comment(sampleEvents()[0])},
		{comment(sampleEvents()[3])},
		{viewDropped[0], viewDropped[1], viewDropped[2]},
		{viewDropped[2]},
	})
	out := tshark(t, file, "-V", "-O", "pathcap")
	for _, want := range []string{
		"pathcap: tp:kfree_skb on veth1 (netns 4026532841) dropped: NO_SOCKET at __udp4_lib_rcv+0x4bc\n",
		"    Drop reason: NO_SOCKET\n",
		`pathcap: kprobe:dev:with:colons on \xff (netns 4294967295) dropped: REASON_1234 at 0xffffffffc0de0000 returned 9223372036854775807` + "\n",
		"pathcap path 29: dropped (NO_SOCKET) at ping_rcv+0xab, 2 hops in 41200 ns\n",
		"    Hop 1 (+0 ns): tp:net_dev_queue on va (netns 4026532177), changed dev,netns\n",
		"    Hop 2 (+41200 ns): tp:kfree_skb on vb (netns 4026532178) dropped: NO_SOCKET at ping_rcv+0xab, changed dev,netns\n",
		"        Time since the first hop (ns): 41200\n",
		"pathcap path (no summary comment)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tree lacks %q; tree:\n%s", want, out)
		}
	}
}

// A view of a dropped packet: its summary and two hops.
var viewDropped = []string{
	`pathcap-path/1 id=29 outcome=dropped reason=NO_SOCKET loc=ping_rcv+0xab hops=2 duration_ns=41200 path="net_dev_queue>kfree_skb"`,
	`pathcap-hop/1 n=1 dt_ns=0 hook=tp:net_dev_queue dev=va netns=4026532177 ifindex=2 len=98 comm=ping changed=dev,netns`,
	`pathcap-hop/1 n=2 dt_ns=41200 hook=tp:kfree_skb dev=vb netns=4026532178 ifindex=2 len=84 comm=swapper/1 reason=NO_SOCKET loc=ping_rcv+0xab changed=dev,netns`,
}

// viewFile writes a path view with one frame per outcome.
func viewFile(t *testing.T) string {
	return writeCapture(t, [][]string{
		// 1: delivered.
		{
			`pathcap-path/1 id=5 outcome=delivered hops=3 duration_ns=9000 path="net_dev_queue>net_dev_start_xmit>netif_receive_skb"`,
			`pathcap-hop/1 n=1 dt_ns=0 hook=tp:net_dev_queue dev=va netns=4026532177 ifindex=2 len=98`,
			`pathcap-hop/1 n=2 dt_ns=400 hook=tp:net_dev_start_xmit dev=va netns=4026532177 ifindex=2 len=98`,
			`pathcap-hop/1 n=3 dt_ns=9000 hook=tp:netif_receive_skb dev=vb netns=4026532178 ifindex=2 len=84 changed=dev,netns,len`,
		},
		// 2: dropped, no socket.
		viewDropped,
		// 3: transmitted, with a NAT note and a quoted device.
		{
			`pathcap-path/1 id=30 outcome=transmitted hops=2 duration_ns=700 path="net_dev_queue>net_dev_xmit"`,
			`pathcap-hop/1 n=1 dt_ns=0 hook=tp:net_dev_queue dev="eth 0" netns=4026531840 ifindex=3 len=60`,
			`pathcap-hop/1 n=2 dt_ns=700 hook=tp:net_dev_xmit dev="eth 0" netns=4026531840 ifindex=3 len=60 nat="10.0.0.1:5->192.0.2.1:5"`,
		},
		// 4: dropped by netfilter.
		{
			`pathcap-path/1 id=31 outcome=dropped reason=NETFILTER_DROP loc=nf_hook_slow+0x8a hops=2 duration_ns=1500 path="netif_receive_skb>kfree_skb"`,
			`pathcap-hop/1 n=1 dt_ns=0 hook=tp:netif_receive_skb dev=vb netns=4026532178 ifindex=2 len=84`,
			`pathcap-hop/1 n=2 dt_ns=1500 hook=tp:kfree_skb dev=vb netns=4026532178 ifindex=2 len=84 reason=NETFILTER_DROP loc=nf_hook_slow+0x8a`,
		},
		// 5: consumed.
		{
			`pathcap-path/1 id=32 outcome=consumed hops=1 duration_ns=0 path=consume_skb`,
			`pathcap-hop/1 n=1 dt_ns=0 hook=tp:consume_skb netns=4026532178 ifindex=0 len=84 comm=ping`,
		},
		// 6: unknown, with keys this dissector does not know.
		{
			`pathcap-path/1 id=33 outcome=unknown hops=1 duration_ns=0 path=netif_rx future="x y" more=1`,
			`pathcap-hop/1 n=1 dt_ns=0 hook=tp:netif_rx dev=lo netns=4026531840 ifindex=1 len=10 shiny=new`,
		},
	})
}

func TestViewFields(t *testing.T) {
	t.Parallel()
	file := viewFile(t)
	names := []string{
		"pathcap.id", "pathcap.outcome", "pathcap.drop_reason", "pathcap.drop_location",
		"pathcap.hops", "pathcap.duration_ns", "pathcap.path", "pathcap.hop.n", "pathcap.hop.dt_ns",
		"pathcap.hook", "pathcap.kind", "pathcap.hook_name", "pathcap.dev", "pathcap.netns",
		"pathcap.ifindex", "pathcap.len", "pathcap.comm", "pathcap.changed", "pathcap.nat",
		"pathcap.version", "pathcap.malformed",
	}
	want := [][]string{
		{"1", "5", "delivered", "", "", "3", "9000", "net_dev_queue>net_dev_start_xmit>netif_receive_skb",
			"1,2,3", "0,400,9000", "tp:net_dev_queue,tp:net_dev_start_xmit,tp:netif_receive_skb", "tp,tp,tp",
			"net_dev_queue,net_dev_start_xmit,netif_receive_skb", "va,va,vb", "4026532177,4026532177,4026532178",
			"2,2,2", "98,98,84", "", "dev,netns,len", "", "1", ""},
		{"2", "29", "dropped", "NO_SOCKET,NO_SOCKET", "ping_rcv+0xab,ping_rcv+0xab", "2", "41200", "net_dev_queue>kfree_skb",
			"1,2", "0,41200", "tp:net_dev_queue,tp:kfree_skb", "tp,tp", "net_dev_queue,kfree_skb", "va,vb",
			"4026532177,4026532178", "2,2", "98,84", "ping,swapper/1", "dev,netns,dev,netns", "", "1", ""},
		{"3", "30", "transmitted", "", "", "2", "700", "net_dev_queue>net_dev_xmit",
			"1,2", "0,700", "tp:net_dev_queue,tp:net_dev_xmit", "tp,tp", "net_dev_queue,net_dev_xmit", "eth 0,eth 0",
			"4026531840,4026531840", "3,3", "60,60", "", "", "10.0.0.1:5->192.0.2.1:5", "1", ""},
		{"4", "31", "dropped", "NETFILTER_DROP,NETFILTER_DROP", "nf_hook_slow+0x8a,nf_hook_slow+0x8a", "2", "1500",
			"netif_receive_skb>kfree_skb", "1,2", "0,1500", "tp:netif_receive_skb,tp:kfree_skb", "tp,tp",
			"netif_receive_skb,kfree_skb", "vb,vb", "4026532178,4026532178", "2,2", "84,84", "", "", "", "1", ""},
		{"5", "32", "consumed", "", "", "1", "0", "consume_skb", "1", "0", "tp:consume_skb", "tp", "consume_skb",
			"", "4026532178", "0", "84", "ping", "", "", "1", ""},
		{"6", "33", "unknown", "", "", "1", "0", "netif_rx", "1", "0", "tp:netif_rx", "tp", "netif_rx",
			"lo", "4026531840", "1", "10", "", "", "", "1", ""},
	}
	got := fields(t, file, "", names...)
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d: %q", len(got), len(want), got)
	}
	for i := range want {
		for j, name := range append([]string{"frame.number"}, names...) {
			if j >= len(got[i]) {
				t.Errorf("frame %d: %s missing from output %q", i+1, name, got[i])
				continue
			}
			if got[i][j] != want[i][j] {
				t.Errorf("frame %d: %s = %q, want %q", i+1, name, got[i][j], want[i][j])
			}
		}
	}
}

func TestViewFilters(t *testing.T) {
	t.Parallel()
	file := viewFile(t)
	checkFilters(t, file, []filterCase{
		{`pathcap.outcome == "dropped"`, []int{2, 4}},
		{`pathcap.outcome == "delivered"`, []int{1}},
		{`pathcap.outcome == "transmitted"`, []int{3}},
		{`pathcap.outcome == "consumed"`, []int{5}},
		{`pathcap.outcome == "unknown"`, []int{6}},
		{`pathcap.outcome in {"delivered", "transmitted"}`, []int{1, 3}},
		{`pathcap.hook == "tp:kfree_skb"`, []int{2, 4}},
		{`pathcap.hook_name == "net_dev_queue"`, []int{1, 2, 3}},
		{`pathcap.drop_reason == "NO_SOCKET"`, []int{2}},
		{`pathcap.drop_location contains "nf_hook"`, []int{4}},
		{`pathcap.netns == 4026532177`, []int{1, 2}},
		{`pathcap.netns == 4026532178 && pathcap.outcome != "dropped"`, []int{1, 5}},
		{`pathcap.dev == "eth 0"`, []int{3}},
		{`pathcap.id == 29`, []int{2}},
		{`pathcap.hops >= 2`, []int{1, 2, 3, 4}},
		{`pathcap.duration_ns > 1000`, []int{1, 2, 4}},
		{`pathcap.path contains "xmit"`, []int{1, 3}},
		{`pathcap.hop`, []int{1, 2, 3, 4, 5, 6}},
		{`pathcap.hop.n == 3`, []int{1}},
		{`pathcap.hop.dt_ns > 5000`, []int{1, 2}},
		{`pathcap.changed contains "netns"`, []int{1, 2}},
		{`pathcap.nat`, []int{3}},
		{`pathcap.comm == "ping"`, []int{2, 5}},
		{`frame.packet_id == 8`, []int{2}},
		{`pathcap.malformed`, nil},
	})
}

// malformed are comments that start like pathcap's but do not parse, with
// the message pathcap.malformed holds for each.
var malformed = []struct{ comment, msg string }{
	{`pathcap/1 hook=tp:x comm="abc`, `byte 25: unterminated quoted value`},
	{`pathcap/3 hook=tp:x`, `byte 8: unsupported version 3 (this dissector knows 1 to 2)`},
	{`pathcap/ hook=tp:x`, `byte 8: no version number`},
	{`pathcap/1 netns=1`, `no hook key`},
	{`pathcap/1 hook=tp:x netns=abc`, `bad value "abc" for netns: not a 32-bit decimal number`},
	{`pathcap/1 hook=tp:x netns=4294967296`, `bad value "4294967296" for netns: not a 32-bit decimal number`},
	{`pathcap/1 hook=tp:x proto=0x10000`, `bad value "0x10000" for proto: does not fit 16 bits`},
	{`pathcap/1 hook=tp:x skb=0x`, `bad value "0x" for skb: not a 0x-prefixed hex number`},
	{`pathcap/1 hook=tp:x parent=18446744073709551616`, `bad value "18446744073709551616" for parent: not a 64-bit unsigned decimal number`},
	{`pathcap/1 hook=tp:x ret=9223372036854775808`, `bad value "9223372036854775808" for ret: not a 64-bit signed decimal number`},
	{`pathcap/1 hook=tp:x hdr=ip`, `bad value "ip" for hdr: not mac, net or data`},
	{`pathcap/1 hook=tp:x pkt_type=256`, `bad value "256" for pkt_type: not a packet type`},
	{`pathcap/1 hook=tpx`, `bad value "tpx" for hook: not KIND:NAME`},
	{`pathcap/1 hook=tp:`, `bad value "tp:" for hook: not KIND:NAME`},
	{`pathcap/1 hook=tp:x  dev=a`, `byte 20: invalid key " dev"`},
	{`pathcap/1 hook=tp:x cpu=1 `, `byte 26: expected key=value`},
	{`pathcap/1 hook=tp:x cpu=`, `byte 24: empty value for cpu`},
	{`pathcap/1 hook=tp:x dev=a"b`, `byte 24: bad byte 0x22 in value of dev`},
	{"pathcap/1 hook=tp:x dev=a\x01b", `byte 24: bad byte 0x01 in value of dev`},
	{`pathcap/1 hook=tp:x dev="a"b`, `byte 27: expected a space before the next key`},
	{`pathcap/1 hook=tp:x dev="\q"`, `byte 24: unknown escape \q in quoted value`},
	{`pathcap/1 hook=tp:x dev="\x4"`, `byte 24: bad \x escape in quoted value`},
	{`pathcap/1 hook=tp:x dev="\ud800"`, `byte 24: bad \u escape in quoted value`},
	{`pathcap/1 hook=tp:x dev="\400"`, `byte 24: bad octal escape in quoted value`},
	{"pathcap/1 hook=tp:x dev=\"a\nb\"", `byte 24: newline in quoted value`},
	{`pathcap/1 hook=tp:x Dev=a`, `byte 20: invalid key "Dev"`},
	{`pathcap/1hook=tp:x`, `byte 9: expected a space before the next key`},
	{`pathcap-path/1 id=-1 outcome=dropped`, `bad value "-1" for id: not a 64-bit unsigned decimal number`},
	{`pathcap-path/3 id=1`, `byte 13: unsupported version 3 (this dissector knows 1)`},
	{`pathcap-hop/1 n=1 dt_ns=5`, `no hook key`},
	{`pathcap-hop/1 n=1 dt_ns=x hook=tp:a`, `bad value "x" for dt_ns: not a 64-bit signed decimal number`},
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	var frameComments [][]string
	for _, m := range malformed {
		frameComments = append(frameComments, []string{m.comment})
	}
	// The last frame has a good event next to a bad one.
	good := comment(sampleEvents()[0])
	frameComments = append(frameComments, []string{good, `pathcap/1 hook=tp:y len=-1`})
	file := writeCapture(t, frameComments)

	got := fields(t, file, "", "pathcap.malformed", "pathcap.hook", "pathcap.drop_reason")
	if len(got) != len(frameComments) {
		t.Fatalf("got %d frames, want %d", len(got), len(frameComments))
	}
	for i, m := range malformed {
		row := got[i]
		if row[1] != m.msg || row[2] != "" || row[3] != "" {
			t.Errorf("comment %q: pathcap.malformed, hook, drop_reason = %q, want %q and no other field", m.comment, row[1:], m.msg)
		}
	}
	last := got[len(got)-1]
	wantLast := []string{strconv.Itoa(len(got)), `bad value "-1" for len: not a 32-bit decimal number`, "tp:kfree_skb", "NO_SOCKET"}
	if !reflect.DeepEqual(last, wantLast) {
		t.Errorf("good and bad comment: got %q, want %q", last, wantLast)
	}

	// Each malformed comment carries an expert-info warning.
	all := make([]int, len(frameComments))
	for i := range all {
		all[i] = i + 1
	}
	checkFilters(t, file, []filterCase{
		{`pathcap.expert.malformed`, all},
		{`_ws.expert.severity == warning && _ws.expert.group == malformed`, all},
		{`pathcap.malformed contains "hook"`, []int{4, 13, 14, 30}},
	})

	// The raw event comments that the dissector rejects, kmeta rejects
	// too: both read the same grammar.
	p := kmeta.NewParser()
	for _, m := range malformed {
		if !strings.HasPrefix(m.comment, "pathcap/") {
			continue
		}
		var e kmeta.Event
		if err := p.Parse([]byte(m.comment), &e); err == nil {
			t.Errorf("kmeta accepts %q, which the dissector rejects", m.comment)
		}
	}
}

func TestOtherCommentsIgnored(t *testing.T) {
	t.Parallel()
	good := comment(sampleEvents()[0])
	file := writeCapture(t, [][]string{
		{"a user's note"},
		{"pathcap is great"},
		{"pathcapx/1 hook=tp:x"},
		{"pathcap-future/1 hook=tp:x"},
		{"my note", good, "pathcap rocks"},
		{},
	})
	checkFilters(t, file, []filterCase{
		{`pathcap`, []int{5}},
		{`pathcap.malformed`, nil},
		{`frame.comment == "my note"`, []int{5}},
	})
	got := fields(t, file, "frame.number == 5", "pathcap.hook", "pathcap.drop_reason")
	want := [][]string{{"5", "tp:kfree_skb", "NO_SOCKET"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestAgreesWithKmeta writes random events with kmeta and checks that the
// dissector reads every field back.
func TestAgreesWithKmeta(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	// Characters for names; tabs and other control bytes are left out
	// because tshark escapes them in its output (TestEventFields covers
	// them).
	alphabet := []rune("abcXYZ019 _-/:.\"\\é\u00a0→")
	randString := func(max int) string {
		n := rng.IntN(max + 1)
		var b strings.Builder
		for range n {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	kinds := []string{"tp", "kprobe", "fentry", "fexit"}
	var events []kmeta.Event
	var frameComments [][]string
	for range 200 {
		e := kmeta.Event{
			Kind: kinds[rng.IntN(len(kinds))], Hook: "h" + randString(10), Dev: randString(6),
			NetNS: rng.Uint32(), Ifindex: rng.Uint32(), SKB: rng.Uint64(), Len: rng.Uint32(),
			Proto: uint16(rng.Uint32()), CPU: rng.Uint32(), PID: rng.Uint32(), TID: rng.Uint32(),
			Comm: randString(15),
		}
		if rng.IntN(2) == 0 {
			e.DataLen = rng.Uint32()
		}
		if rng.IntN(2) == 0 {
			e.PktType = uint8(rng.Uint32())
		}
		if rng.IntN(2) == 0 {
			e.Mark = rng.Uint32()
		}
		e.Header = kmeta.HeaderStart(rng.IntN(3))
		if rng.IntN(2) == 0 {
			e.RetVal, e.HasRetVal = int64(rng.Uint64()), true
		}
		if rng.IntN(2) == 0 {
			e.Parent = rng.Uint64()
		}
		if rng.IntN(2) == 0 {
			e.HasDrop, e.Reason, e.Location = true, "R"+randString(8), randString(12)
		}
		events = append(events, e)
		frameComments = append(frameComments, []string{comment(e)})
	}
	file := writeCapture(t, frameComments)
	got := fields(t, file, "", eventFields...)
	if len(got) != len(events) {
		t.Fatalf("got %d frames, want %d", len(got), len(events))
	}
	opt := func(set bool, s string) string {
		if set {
			return s
		}
		return ""
	}
	for i, e := range events {
		reason := ""
		if e.HasDrop {
			reason = e.Reason
		}
		want := []string{
			strconv.Itoa(i + 1), "1", e.Kind + ":" + e.Hook, e.Kind, e.Hook, e.Dev,
			fmt.Sprint(e.NetNS), fmt.Sprint(e.Ifindex), fmt.Sprintf("0x%016x", e.SKB), fmt.Sprint(e.Len),
			opt(e.DataLen != 0, fmt.Sprint(e.DataLen)),
			fmt.Sprintf("0x%04x", e.Proto), opt(e.PktType != 0, kmeta.PktTypeName(e.PktType)),
			opt(e.Mark != 0, fmt.Sprintf("0x%08x", e.Mark)), opt(e.Header != kmeta.HeaderMAC, e.Header.String()),
			opt(e.HasRetVal, fmt.Sprint(e.RetVal)), opt(e.Parent != 0, fmt.Sprint(e.Parent)),
			fmt.Sprint(e.CPU), fmt.Sprint(e.PID), fmt.Sprint(e.TID), e.Comm,
			reason, e.Location,
		}
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("comment %s\n got %q\nwant %q", frameComments[i][0], got[i], want)
		}
	}
}
