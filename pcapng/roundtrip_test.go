package pcapng_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pathcap/pathcap/pcapng"
)

// item is one block to write and then expect back.
type item struct {
	section *pcapng.Section
	ifc     *pcapng.Interface
	packet  *pcapng.Packet
	simple  *pcapng.Packet
	stats   *pcapng.InterfaceStatistics
	names   *pcapng.NameResolution
	secrets *pcapng.DecryptionSecrets
	custom  *pcapng.CustomBlock
}

func (it item) write(w *pcapng.Writer) error {
	switch {
	case it.section != nil:
		return w.NewSection(it.section)
	case it.ifc != nil:
		_, err := w.AddInterface(it.ifc)
		return err
	case it.packet != nil:
		return w.WritePacket(it.packet)
	case it.simple != nil:
		return w.WriteSimplePacket(it.simple)
	case it.stats != nil:
		return w.WriteInterfaceStatistics(it.stats)
	case it.names != nil:
		return w.WriteNameResolution(it.names)
	case it.secrets != nil:
		return w.WriteDecryptionSecrets(it.secrets)
	case it.custom != nil:
		return w.WriteCustomBlock(it.custom)
	}
	panic("empty item")
}

func (it item) blockType() pcapng.BlockType {
	switch {
	case it.section != nil:
		return pcapng.BlockSectionHeader
	case it.ifc != nil:
		return pcapng.BlockInterfaceDescription
	case it.packet != nil:
		return pcapng.BlockEnhancedPacket
	case it.simple != nil:
		return pcapng.BlockSimplePacket
	case it.stats != nil:
		return pcapng.BlockInterfaceStatistics
	case it.names != nil:
		return pcapng.BlockNameResolution
	case it.secrets != nil:
		return pcapng.BlockDecryptionSecrets
	}
	return it.custom.Type
}

var res2m20 = pcapng.NewResolution(true, 20)

func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func tcVerdict(v uint64) []byte {
	return binary.LittleEndian.AppendUint64([]byte{pcapng.VerdictLinuxTC}, v)
}

func xdpVerdict(v uint64) []byte {
	return binary.LittleEndian.AppendUint64([]byte{pcapng.VerdictLinuxXDP}, v)
}

// everything returns blocks using every feature the Writer has.
func everything() []item {
	sec1 := &pcapng.Section{
		Hardware:        "x86_64 test rig",
		OS:              "Linux 6.1",
		UserApplication: "pathcap test",
		Comments:        []string{"first section", "", "ünïcode ✓"},
		Custom: []pcapng.CustomOption{
			{Code: pcapng.OptCustomString, PEN: 32473, Data: []byte("custom string")},
			{Code: pcapng.OptCustomBinary, PEN: 32473, Data: []byte{0, 1, 2}},
			{Code: pcapng.OptCustomStringNoCopy, PEN: 1, Data: nil},
			{Code: pcapng.OptCustomBinaryNoCopy, PEN: 0xffffffff, Data: []byte{9, 9, 9, 9, 9}},
		},
		Unknown: []pcapng.RawOption{{Code: 77, Value: []byte("opaque")}},
	}
	ifNano := &pcapng.Interface{
		LinkType:    pcapng.LinkTypeEthernet,
		SnapLen:     pcapng.MaxCaptureLength,
		Name:        "eth0",
		Description: "first port",
		IPv4Addrs: []pcapng.IPv4Address{
			{Addr: netip.MustParseAddr("192.0.2.1"), Mask: netip.MustParseAddr("255.255.255.0")},
			{Addr: netip.MustParseAddr("10.1.2.3"), Mask: netip.MustParseAddr("255.0.0.0")},
		},
		IPv6Addrs:    []netip.Prefix{netip.MustParsePrefix("2001:db8::1/64"), netip.MustParsePrefix("fe80::1/128")},
		MAC:          net.HardwareAddr(macA),
		EUI:          net.HardwareAddr{0x02, 0x34, 0x56, 0xff, 0xfe, 0x78, 0x9a, 0xbc},
		Speed:        10_000_000_000,
		TxSpeed:      1_000_000_000,
		RxSpeed:      2_500_000_000,
		TSResolution: pcapng.Nanoseconds,
		TSOffset:     1_700_000_000,
		Tzone:        -3600,
		Filter:       append([]byte{0}, "tcp port 80"...),
		OS:           "Linux",
		Hardware:     "virtio",
		IANATzname:   "Europe/Paris",
		FCSLen:       4,
		HasFCSLen:    true,
		Comments:     []string{"ifc comment one", "ifc comment two"},
		Custom:       []pcapng.CustomOption{{Code: pcapng.OptCustomBinary, PEN: 32473, Data: []byte("ifc custom")}},
		Unknown:      []pcapng.RawOption{{Code: 200, Value: []byte{1, 2, 3, 4, 5, 6, 7}}},
	}
	ifMicro := &pcapng.Interface{
		LinkType:     pcapng.LinkTypeRaw,
		SnapLen:      1000,
		Name:         "tun0",
		TSResolution: pcapng.Microseconds,
	}
	ifBin := &pcapng.Interface{
		LinkType:     pcapng.LinkTypeLinuxSLL2,
		Name:         "any",
		TSResolution: res2m20,
		TSOffset:     -86400,
	}
	ifDefault := &pcapng.Interface{LinkType: pcapng.LinkTypeIPv6}

	full := pcapng.PacketOptions{
		Comments:     [][]byte{[]byte("packet comment"), []byte("a second one"), []byte("")},
		Flags:        pcapng.DirectionOutbound | 1<<5 | 0xff000000,
		HasFlags:     true,
		Hashes:       [][]byte{append([]byte{2}, bytes.Repeat([]byte{0xab}, 16)...), {0}},
		DropCount:    17,
		HasDropCount: true,
		PacketID:     0xfeedfacecafebeef,
		HasPacketID:  true,
		Queue:        3,
		HasQueue:     true,
		Verdicts:     [][]byte{{pcapng.VerdictHardware, 0xde, 0xad}, tcVerdict(2), xdpVerdict(1)},
		ProcessID:    4242,
		ThreadID:     4343,
		HasProcessID: true,
		Custom: []pcapng.CustomOption{
			{Code: pcapng.OptCustomString, PEN: 32473, Data: []byte("pkt")},
			{Code: pcapng.OptCustomBinaryNoCopy, PEN: 7, Data: []byte{1}},
		},
		Unknown: []pcapng.RawOption{{Code: 100, Value: []byte{}}, {Code: 0x8001, Value: []byte("local use")}},
	}
	items := []item{
		{section: sec1},
		{ifc: ifNano},
		{ifc: ifMicro},
		{ifc: ifBin},
		{ifc: ifDefault},
		{packet: &pcapng.Packet{InterfaceID: 0, Timestamp: baseTime, OriginalLength: 60, Data: icmpEcho(false, 1, 1, 18), Options: full}},
		{packet: &pcapng.Packet{InterfaceID: 0, Timestamp: baseTime.Add(time.Nanosecond), Data: []byte{}}},
		{packet: &pcapng.Packet{InterfaceID: 0, Timestamp: baseTime.Add(2 * time.Second), OriginalLength: 70000, Data: payload(1, 1),
			Options: pcapng.PacketOptions{Comments: [][]byte{[]byte("one byte")}, Flags: pcapng.DirectionInbound, HasFlags: true}}},
		{packet: &pcapng.Packet{InterfaceID: 0, Timestamp: baseTime, Data: payload(pcapng.MaxCaptureLength, 3),
			Options: pcapng.PacketOptions{Comments: [][]byte{bytes.Repeat([]byte("c"), 65535)}, PacketID: 1, HasPacketID: true}}},
		{packet: &pcapng.Packet{InterfaceID: 1, Timestamp: baseTime, Data: payload(1000, 4),
			Options: pcapng.PacketOptions{Verdicts: [][]byte{tcVerdict(0)}}}},
		{packet: &pcapng.Packet{InterfaceID: 2, Timestamp: baseTime, Data: payload(3, 5)}},
		{packet: &pcapng.Packet{InterfaceID: 2, Timestamp: time.Unix(0, 0).Add(-86400 * time.Second), Data: payload(2, 5)}},
		{packet: &pcapng.Packet{InterfaceID: 3, Timestamp: baseTime.Add(999 * time.Nanosecond), Data: payload(40, 6),
			Options: pcapng.PacketOptions{Flags: pcapng.DirectionUnknown, HasFlags: true, DropCount: 0, HasDropCount: true}}},
		{simple: &pcapng.Packet{Data: payload(64, 7)}},
		{simple: &pcapng.Packet{Data: []byte{}}},
		{stats: &pcapng.InterfaceStatistics{
			InterfaceID: 0, Timestamp: baseTime.Add(time.Minute),
			StartTime: baseTime.Add(-time.Minute), HasStartTime: true,
			EndTime: baseTime.Add(time.Minute), HasEndTime: true,
			IfRecv: 1000, HasIfRecv: true, IfDrop: 1, HasIfDrop: true,
			FilterAccept: 900, HasFilterAccept: true, OSDrop: 2, HasOSDrop: true,
			UsrDeliv: 898, HasUsrDeliv: true,
			Comments: [][]byte{[]byte("stats")},
			Custom:   []pcapng.CustomOption{{Code: pcapng.OptCustomBinary, PEN: 32473, Data: []byte("isb")}},
			Unknown:  []pcapng.RawOption{{Code: 99, Value: []byte{1}}},
		}},
		{stats: &pcapng.InterfaceStatistics{InterfaceID: 2, Timestamp: baseTime.Add(123456789), IfRecv: 0, HasIfRecv: true}},
		{stats: &pcapng.InterfaceStatistics{InterfaceID: 1, Timestamp: baseTime}},
		{names: &pcapng.NameResolution{
			Records: []pcapng.NameRecord{
				{Type: pcapng.NameRecordIPv4, Addr: []byte{192, 0, 2, 1}, Names: []string{"host.example", "alias.example"}},
				{Type: pcapng.NameRecordIPv6, Addr: netip.MustParseAddr("2001:db8::7").AsSlice(), Names: []string{"v6.example"}},
				{Type: pcapng.NameRecordEUI48, Addr: macB, Names: []string{"router"}},
				{Type: pcapng.NameRecordEUI64, Addr: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Names: []string{"eui64"}},
				{Type: pcapng.NameRecordIPv4, Addr: []byte{10, 0, 0, 1}},
				{Type: 9, Value: []byte("future record")},
			},
			DNSName:     "ns.example",
			DNSIPv4Addr: netip.MustParseAddr("192.0.2.53"),
			DNSIPv6Addr: netip.MustParseAddr("2001:db8::53"),
			Comments:    [][]byte{[]byte("names")},
			Custom:      []pcapng.CustomOption{{Code: pcapng.OptCustomString, PEN: 32473, Data: []byte("nrb")}},
			Unknown:     []pcapng.RawOption{{Code: 66, Value: []byte("x")}},
		}},
		{secrets: &pcapng.DecryptionSecrets{
			SecretsType: 0x544c534b, // TLS key log
			Data:        []byte("CLIENT_RANDOM 00 11\n"),
			Comments:    [][]byte{[]byte("keys")},
			Custom:      []pcapng.CustomOption{{Code: pcapng.OptCustomBinary, PEN: 32473, Data: []byte("dsb")}},
			Unknown:     []pcapng.RawOption{{Code: 55, Value: []byte("y")}},
		}},
		{secrets: &pcapng.DecryptionSecrets{SecretsType: 1, Data: []byte{}}},
		{custom: &pcapng.CustomBlock{Type: pcapng.BlockCustom, PEN: 32473, Data: []byte("copyable custom block")}},
		{custom: &pcapng.CustomBlock{Type: pcapng.BlockCustomNoCopy, PEN: 32473, Data: []byte("1234")}},
		// A second section: the interface ids start again at 0.
		{section: &pcapng.Section{Comments: []string{"second section"}}},
		{ifc: &pcapng.Interface{LinkType: pcapng.LinkTypeEthernet, SnapLen: 128, TSResolution: pcapng.NewResolution(false, 3)}},
		{packet: &pcapng.Packet{InterfaceID: 0, Timestamp: baseTime, OriginalLength: 1514, Data: payload(128, 8),
			Options: pcapng.PacketOptions{Comments: [][]byte{[]byte("cut to 128")}, Flags: pcapng.DirectionInbound, HasFlags: true}}},
		{custom: &pcapng.CustomBlock{Type: pcapng.BlockCustom, PEN: 1, Data: nil}},
	}
	return items
}

// expectedTime is the time a reader gives back for t written on an
// interface, computed with arbitrary precision: the time is converted to
// whole units of the resolution (truncating, unless the next unit reads
// back as exactly t) and back to nanoseconds (truncating).
func expectedTime(t time.Time, ifc *pcapng.Interface) (time.Time, uint64) {
	r := ifc.TSResolution
	if r == (pcapng.Resolution{}) {
		r = pcapng.Microseconds
	}
	base := int64(10)
	if r.Base2 {
		base = 2
	}
	den := new(big.Int).Exp(big.NewInt(base), big.NewInt(int64(r.Exp)), nil)
	billion := big.NewInt(1e9)
	ns := new(big.Int).Mul(big.NewInt(t.Unix()-ifc.TSOffset), billion)
	ns.Add(ns, big.NewInt(int64(t.Nanosecond())))
	units, rem := new(big.Int).QuoRem(new(big.Int).Mul(ns, den), billion, new(big.Int))
	if rem.Sign() != 0 {
		next := new(big.Int).Add(units, big.NewInt(1))
		if back := new(big.Int).Mul(next, billion); back.Quo(back, den).Cmp(ns) == 0 {
			units = next
		}
	}
	back := new(big.Int).Mul(units, billion)
	back.Quo(back, den)
	sec, nsec := new(big.Int).QuoRem(back, billion, new(big.Int))
	return time.Unix(sec.Int64()+ifc.TSOffset, nsec.Int64()), units.Uint64()
}

// emptyToNil makes nil and empty slices compare equal under DeepEqual.
func emptyToNil(o *pcapng.PacketOptions) {
	if len(o.Comments) == 0 {
		o.Comments = nil
	}
	if len(o.Hashes) == 0 {
		o.Hashes = nil
	}
	if len(o.Verdicts) == 0 {
		o.Verdicts = nil
	}
	if len(o.Custom) == 0 {
		o.Custom = nil
	}
	if len(o.Unknown) == 0 {
		o.Unknown = nil
	}
	for i := range o.Custom {
		if len(o.Custom[i].Data) == 0 {
			o.Custom[i].Data = nil
		}
	}
	for i := range o.Unknown {
		if len(o.Unknown[i].Value) == 0 {
			o.Unknown[i].Value = nil
		}
	}
}

func customEmptyToNil(c []pcapng.CustomOption) []pcapng.CustomOption {
	if len(c) == 0 {
		return nil
	}
	out := append([]pcapng.CustomOption(nil), c...)
	for i := range out {
		if len(out[i].Data) == 0 {
			out[i].Data = nil
		}
	}
	return out
}

func bytesListEmptyToNil(b [][]byte) [][]byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func rawEmptyToNil(r []pcapng.RawOption) []pcapng.RawOption {
	if len(r) == 0 {
		return nil
	}
	return r
}

// checkItem compares the Reader's current block with what was written.
func checkItem(t *testing.T, r *pcapng.Reader, it item, ifaces []*pcapng.Interface) {
	t.Helper()
	switch {
	case it.section != nil:
		got := *r.Section()
		want := *it.section
		want.ByteOrder, want.MajorVersion, want.MinorVersion, want.Length = binary.LittleEndian, 1, 0, -1
		want.Custom = customEmptyToNil(want.Custom)
		got.Custom = customEmptyToNil(got.Custom)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("section:\n got %+v\nwant %+v", got, want)
		}
	case it.ifc != nil:
		ifs := r.Interfaces()
		got := ifs[len(ifs)-1]
		if !reflect.DeepEqual(got, *it.ifc) {
			t.Errorf("interface %d:\n got %+v\nwant %+v", len(ifs)-1, got, *it.ifc)
		}
	case it.packet != nil, it.simple != nil:
		p := r.Packet()
		if p == nil {
			t.Fatalf("no packet for a %v block", r.BlockType())
		}
		w := it.packet
		if w == nil {
			w = it.simple
		}
		ifc := ifaces[w.InterfaceID]
		if p.Interface == nil || !reflect.DeepEqual(*p.Interface, *ifc) {
			t.Errorf("packet's interface = %+v, want %+v", p.Interface, ifc)
		}
		if p.InterfaceID != w.InterfaceID {
			t.Errorf("interface id %d, want %d", p.InterfaceID, w.InterfaceID)
		}
		wantOrig := w.OriginalLength
		if wantOrig < uint32(len(w.Data)) {
			wantOrig = uint32(len(w.Data))
		}
		if p.OriginalLength != wantOrig {
			t.Errorf("original length %d, want %d", p.OriginalLength, wantOrig)
		}
		if !bytes.Equal(p.Data, w.Data) {
			t.Errorf("data differs: got %d bytes, want %d", len(p.Data), len(w.Data))
		}
		if it.packet != nil {
			if p.Type != pcapng.BlockEnhancedPacket {
				t.Errorf("type %v, want EPB", p.Type)
			}
			wantTime, wantRaw := expectedTime(w.Timestamp, ifc)
			if !p.Timestamp.Equal(wantTime) || p.TimestampRaw != wantRaw {
				t.Errorf("timestamp %v (raw %d), want %v (raw %d)", p.Timestamp, p.TimestampRaw, wantTime, wantRaw)
			}
		} else {
			if p.Type != pcapng.BlockSimplePacket || p.TimestampRaw != 0 {
				t.Errorf("simple packet: type %v, raw timestamp %d", p.Type, p.TimestampRaw)
			}
		}
		got, want := p.Options, w.Options
		emptyToNil(&got)
		emptyToNil(&want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("options:\n got %+v\nwant %+v", got, want)
		}
	case it.stats != nil:
		got, want := *r.InterfaceStatistics(), *it.stats
		ifc := ifaces[want.InterfaceID]
		for _, c := range []struct {
			name      string
			got, want time.Time
			has       bool
		}{{"timestamp", got.Timestamp, want.Timestamp, true}, {"start", got.StartTime, want.StartTime, want.HasStartTime}, {"end", got.EndTime, want.EndTime, want.HasEndTime}} {
			if !c.has {
				if !c.got.IsZero() {
					t.Errorf("ISB %s: %v, want none", c.name, c.got)
				}
				continue
			}
			if w, _ := expectedTime(c.want, ifc); !c.got.Equal(w) {
				t.Errorf("ISB %s: %v, want %v", c.name, c.got, w)
			}
		}
		_, wantRaw := expectedTime(want.Timestamp, ifc)
		want.TimestampRaw = wantRaw
		got.Timestamp, got.StartTime, got.EndTime = time.Time{}, time.Time{}, time.Time{}
		want.Timestamp, want.StartTime, want.EndTime = time.Time{}, time.Time{}, time.Time{}
		got.Comments, want.Comments = bytesListEmptyToNil(got.Comments), bytesListEmptyToNil(want.Comments)
		got.Custom, want.Custom = customEmptyToNil(got.Custom), customEmptyToNil(want.Custom)
		got.Unknown, want.Unknown = rawEmptyToNil(got.Unknown), rawEmptyToNil(want.Unknown)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ISB:\n got %+v\nwant %+v", got, want)
		}
	case it.names != nil:
		got, want := *r.NameResolution(), *it.names
		got.Comments = bytesListEmptyToNil(got.Comments)
		got.Custom, want.Custom = customEmptyToNil(got.Custom), customEmptyToNil(want.Custom)
		got.Unknown = rawEmptyToNil(got.Unknown)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("NRB:\n got %+v\nwant %+v", got, want)
		}
	case it.secrets != nil:
		got, want := *r.DecryptionSecrets(), *it.secrets
		got.Comments, want.Comments = bytesListEmptyToNil(got.Comments), bytesListEmptyToNil(want.Comments)
		got.Custom, want.Custom = customEmptyToNil(got.Custom), customEmptyToNil(want.Custom)
		got.Unknown, want.Unknown = rawEmptyToNil(got.Unknown), rawEmptyToNil(want.Unknown)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("DSB:\n got %+v\nwant %+v", got, want)
		}
	case it.custom != nil:
		got := r.CustomBlock()
		want := *it.custom
		pad := (4 - len(want.Data)%4) % 4
		wantData := append(append([]byte{}, want.Data...), make([]byte, pad)...)
		if got == nil || got.Type != want.Type || got.PEN != want.PEN || !bytes.Equal(got.Data, wantData) {
			t.Errorf("custom block %+v, want %+v with data padded to %q", got, want, wantData)
		}
	}
}

// writeAll writes items and returns the file.
func writeAll(t *testing.T, items []item, bufSize int) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := pcapng.NewWriterSize(&out, items[0].section, bufSize)
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range items[1:] {
		if err := it.write(w); err != nil {
			t.Fatalf("item %d (%v): %v", i+1, it.blockType(), err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// readAndCheck reads file and compares every block with items.
func readAndCheck(t *testing.T, file []byte, items []item) {
	t.Helper()
	r, err := pcapng.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	var ifaces []*pcapng.Interface
	section := -1
	for i, it := range items {
		typ, err := r.Next()
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if typ != it.blockType() {
			t.Fatalf("block %d is %v, want %v", i, typ, it.blockType())
		}
		if it.section != nil {
			ifaces = nil
			section++
			if r.SectionIndex() != section {
				t.Errorf("block %d: section index %d, want %d", i, r.SectionIndex(), section)
			}
		}
		if it.ifc != nil {
			ifaces = append(ifaces, it.ifc)
		}
		checkItem(t, r, it, ifaces)
	}
	if typ, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last block: %v, %v; want EOF", typ, err)
	}
}

func TestRoundTripEverything(t *testing.T) {
	items := everything()
	unbuffered := writeAll(t, items, 0)
	for _, bufSize := range []int{0, 1, 4096, 1 << 20} {
		t.Run(fmt.Sprintf("buffer=%d", bufSize), func(t *testing.T) {
			file := writeAll(t, items, bufSize)
			readAndCheck(t, file, items)
			if !bytes.Equal(file, unbuffered) {
				t.Errorf("%d bytes, unbuffered %d: not the same", len(file), len(unbuffered))
			}
		})
	}
}

// TestBufferedInPlace: a buffered Writer builds blocks at the end of its
// buffer; blocks larger than the room left there, refused blocks between
// them and buffers taken by a BufferTaker change no byte of the output.
func TestBufferedInPlace(t *testing.T) {
	write := func(w *pcapng.Writer) {
		t.Helper()
		if _, err := w.AddInterface(&pcapng.Interface{LinkType: pcapng.LinkTypeEthernet, TSResolution: pcapng.Nanoseconds}); err != nil {
			t.Fatal(err)
		}
		for i := range 300 {
			n := 60 + i%200
			if i%37 == 5 {
				n = 150 << 10 // more than a block built in place may take
			}
			c := strings.Repeat("c", i%50)
			if err := w.WritePacket(&pcapng.Packet{Timestamp: baseTime.Add(time.Duration(i)), Data: payload(n, byte(i)),
				Options: pcapng.PacketOptions{Comments: [][]byte{[]byte(c)}, PacketID: uint64(i), HasPacketID: true}}); err != nil {
				t.Fatal(err)
			}
			if i%11 == 0 {
				// Refused after part of the block was built.
				long := make([]byte, 70000)
				if err := w.WritePacket(&pcapng.Packet{Timestamp: baseTime, Data: payload(n, 1), Options: pcapng.PacketOptions{Comments: [][]byte{long}}}); err == nil {
					t.Fatal("a comment of 70000 bytes was taken")
				}
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	var want bytes.Buffer
	w, err := pcapng.NewWriter(&want, nil)
	if err != nil {
		t.Fatal(err)
	}
	write(w)
	for _, bufSize := range []int{1, 4096, 256 << 10} {
		for _, taker := range []bool{false, true} {
			var got bytes.Buffer
			var out io.Writer = &got
			if taker {
				out = &takingWriter{w: &got}
			}
			w, err := pcapng.NewWriterSize(out, nil, bufSize)
			if err != nil {
				t.Fatal(err)
			}
			write(w)
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("buffer %d, taker %v: %d bytes, unbuffered %d: not the same", bufSize, taker, got.Len(), want.Len())
			}
		}
	}
}

// takingWriter is a BufferTaker that writes what it takes and hands back
// a fresh buffer of the same capacity.
type takingWriter struct{ w *bytes.Buffer }

func (t *takingWriter) Write(p []byte) (int, error) { return t.w.Write(p) }

func (t *takingWriter) TakeBuffer(b []byte) ([]byte, error) {
	t.w.Write(b)
	for i := range b {
		b[i] = 0xee // a taker owns b: the Writer must not read it again
	}
	return make([]byte, 0, cap(b)), nil
}

// TestRoundTripRewrite reads a file and writes every block again: the copy
// must be byte for byte the same, timestamps included (the binary
// resolution of the third interface does not express nanoseconds exactly).
func TestRoundTripRewrite(t *testing.T) {
	items := everything()
	orig := writeAll(t, items, 0)
	r, err := pcapng.NewReader(bytes.NewReader(orig))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	var w *pcapng.Writer
	for {
		typ, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case pcapng.BlockSectionHeader:
			s := *r.Section()
			if w == nil {
				w, err = pcapng.NewWriter(&out, &s)
			} else {
				err = w.NewSection(&s)
			}
		case pcapng.BlockInterfaceDescription:
			ifs := r.Interfaces()
			_, err = w.AddInterface(&ifs[len(ifs)-1])
		case pcapng.BlockEnhancedPacket:
			err = w.WritePacket(r.Packet())
		case pcapng.BlockSimplePacket:
			err = w.WriteSimplePacket(r.Packet())
		case pcapng.BlockInterfaceStatistics:
			err = w.WriteInterfaceStatistics(r.InterfaceStatistics())
		case pcapng.BlockNameResolution:
			err = w.WriteNameResolution(r.NameResolution())
		case pcapng.BlockDecryptionSecrets:
			err = w.WriteDecryptionSecrets(r.DecryptionSecrets())
		case pcapng.BlockCustom, pcapng.BlockCustomNoCopy:
			err = w.WriteCustomBlock(r.CustomBlock())
		default:
			t.Fatalf("unexpected %v", typ)
		}
		if err != nil {
			t.Fatalf("rewriting %v at %d: %v", typ, r.Offset(), err)
		}
	}
	if !bytes.Equal(out.Bytes(), orig) {
		i := 0
		for i < len(orig) && i < out.Len() && orig[i] == out.Bytes()[i] {
			i++
		}
		t.Fatalf("rewritten file differs from the original at byte %d (lengths %d and %d)", i, out.Len(), len(orig))
	}
}

// TestRoundTripBinaryResolutionTimestamps writes many timestamps on a 2^-20
// interface and checks each read-back value against arbitrary-precision
// arithmetic, and that rewriting the read-back time gives the same units.
func TestRoundTripBinaryResolutionTimestamps(t *testing.T) {
	for _, res := range []pcapng.Resolution{res2m20, pcapng.NewResolution(true, 10), pcapng.NewResolution(true, 30), pcapng.Nanoseconds, pcapng.Microseconds, pcapng.NewResolution(false, 1)} {
		ifc := &pcapng.Interface{LinkType: pcapng.LinkTypeEthernet, TSResolution: res, TSOffset: 1_000_000_000}
		items := []item{{section: &pcapng.Section{}}, {ifc: ifc}}
		for i := range 500 {
			ts := baseTime.Add(time.Duration(i) * 7777777 * time.Nanosecond)
			items = append(items, item{packet: &pcapng.Packet{Timestamp: ts, Data: []byte{byte(i)}}})
		}
		file := writeAll(t, items, 0)
		readAndCheck(t, file, items)
	}
}

// failingOnce fails the next Write call when armed.
type failingWriter struct {
	bytes.Buffer
	fail bool
}

var errDisk = errors.New("disk full")

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.fail {
		return 0, errDisk
	}
	return f.Buffer.Write(p)
}

func TestWriterRefusals(t *testing.T) {
	long := strings.Repeat("x", 65536)
	tests := []struct {
		name string
		do   func(w *pcapng.Writer) error
		want error
	}{
		{"packet comment over 65535 bytes", func(w *pcapng.Writer) error {
			return w.WritePacket(&pcapng.Packet{Timestamp: baseTime, Data: payload(10, 0),
				Options: pcapng.PacketOptions{Comments: [][]byte{[]byte("ok"), []byte(long)}}})
		}, pcapng.ErrOptionTooLong},
		{"packet custom option over 65535 bytes", func(w *pcapng.Writer) error {
			return w.WritePacket(&pcapng.Packet{Timestamp: baseTime, Data: payload(10, 0),
				Options: pcapng.PacketOptions{Custom: []pcapng.CustomOption{{Code: pcapng.OptCustomBinary, PEN: 1, Data: make([]byte, 65532)}}}})
		}, pcapng.ErrOptionTooLong},
		{"packet unknown option over 65535 bytes", func(w *pcapng.Writer) error {
			return w.WritePacket(&pcapng.Packet{Timestamp: baseTime, Data: payload(10, 0),
				Options: pcapng.PacketOptions{Unknown: []pcapng.RawOption{{Code: 300, Value: make([]byte, 65536)}}}})
		}, pcapng.ErrOptionTooLong},
		{"interface name over 65535 bytes", func(w *pcapng.Writer) error {
			_, err := w.AddInterface(&pcapng.Interface{Name: long})
			return err
		}, pcapng.ErrOptionTooLong},
		{"section comment over 65535 bytes", func(w *pcapng.Writer) error {
			return w.NewSection(&pcapng.Section{Comments: []string{long}})
		}, pcapng.ErrOptionTooLong},
		{"ISB comment over 65535 bytes", func(w *pcapng.Writer) error {
			return w.WriteInterfaceStatistics(&pcapng.InterfaceStatistics{Timestamp: baseTime, Comments: [][]byte{[]byte(long)}})
		}, pcapng.ErrOptionTooLong},
		{"name record over 65535 bytes", func(w *pcapng.Writer) error {
			return w.WriteNameResolution(&pcapng.NameResolution{Records: []pcapng.NameRecord{{Type: pcapng.NameRecordIPv4, Addr: []byte{1, 2, 3, 4}, Names: []string{long}}}})
		}, pcapng.ErrOptionTooLong},
		{"caplen above snaplen", func(w *pcapng.Writer) error {
			return w.WritePacket(&pcapng.Packet{InterfaceID: 1, Timestamp: baseTime, Data: payload(101, 0)})
		}, pcapng.ErrPacketTooLarge},
		{"caplen above 262144", func(w *pcapng.Writer) error {
			return w.WritePacket(&pcapng.Packet{InterfaceID: 0, Timestamp: baseTime, Data: payload(pcapng.MaxCaptureLength+1, 0)})
		}, pcapng.ErrPacketTooLarge},
		{"simple packet above snaplen", func(w *pcapng.Writer) error {
			return w.WriteSimplePacket(&pcapng.Packet{Data: payload(pcapng.MaxCaptureLength+1, 0)})
		}, pcapng.ErrPacketTooLarge},
		{"snaplen above 262144", func(w *pcapng.Writer) error {
			_, err := w.AddInterface(&pcapng.Interface{SnapLen: pcapng.MaxCaptureLength + 1})
			return err
		}, pcapng.ErrPacketTooLarge},
		{"EPB for an undescribed interface", func(w *pcapng.Writer) error {
			return w.WritePacket(&pcapng.Packet{InterfaceID: 2, Timestamp: baseTime, Data: payload(10, 0)})
		}, pcapng.ErrUnknownInterface},
		{"ISB for an undescribed interface", func(w *pcapng.Writer) error {
			return w.WriteInterfaceStatistics(&pcapng.InterfaceStatistics{InterfaceID: 7, Timestamp: baseTime})
		}, pcapng.ErrUnknownInterface},
		{"tc verdict of 5 bytes", func(w *pcapng.Writer) error {
			return w.WritePacket(&pcapng.Packet{Timestamp: baseTime, Data: payload(10, 0),
				Options: pcapng.PacketOptions{Comments: [][]byte{[]byte("c")}, Verdicts: [][]byte{{pcapng.VerdictLinuxTC, 1, 2, 3, 4}}}})
		}, pcapng.ErrInvalidOption},
		{"xdp verdict of 10 bytes", func(w *pcapng.Writer) error {
			return w.WritePacket(&pcapng.Packet{Timestamp: baseTime, Data: payload(10, 0),
				Options: pcapng.PacketOptions{Verdicts: [][]byte{append(xdpVerdict(1), 0)}}})
		}, pcapng.ErrInvalidOption},
		{"empty verdict", func(w *pcapng.Writer) error {
			return w.WritePacket(&pcapng.Packet{Timestamp: baseTime, Data: payload(10, 0),
				Options: pcapng.PacketOptions{Verdicts: [][]byte{{}}}})
		}, pcapng.ErrInvalidOption},
		{"empty hash", func(w *pcapng.Writer) error {
			return w.WritePacket(&pcapng.Packet{Timestamp: baseTime, Data: payload(10, 0),
				Options: pcapng.PacketOptions{Hashes: [][]byte{{}}}})
		}, pcapng.ErrInvalidOption},
		{"unknown option with code 0", func(w *pcapng.Writer) error {
			return w.WritePacket(&pcapng.Packet{Timestamp: baseTime, Data: payload(10, 0),
				Options: pcapng.PacketOptions{Unknown: []pcapng.RawOption{{Code: 0, Value: []byte{1}}}}})
		}, pcapng.ErrInvalidOption},
		{"MAC address of 5 bytes", func(w *pcapng.Writer) error {
			_, err := w.AddInterface(&pcapng.Interface{MAC: net.HardwareAddr{1, 2, 3, 4, 5}})
			return err
		}, pcapng.ErrInvalidOption},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, bufSize := range []int{0, 1 << 20} {
				var out bytes.Buffer
				w, err := pcapng.NewWriterSize(&out, nil, bufSize)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.AddInterface(&pcapng.Interface{LinkType: pcapng.LinkTypeEthernet, TSResolution: pcapng.Nanoseconds}); err != nil {
					t.Fatal(err)
				}
				if _, err := w.AddInterface(&pcapng.Interface{LinkType: pcapng.LinkTypeEthernet, SnapLen: 100}); err != nil {
					t.Fatal(err)
				}
				before := bytes.Clone(out.Bytes())
				buffered := w.Buffered()
				err = tc.do(w)
				if !errors.Is(err, tc.want) {
					t.Fatalf("buffer %d: got %v, want an error wrapping %v", bufSize, err, tc.want)
				}
				if !bytes.Equal(out.Bytes(), before) || w.Buffered() != buffered {
					t.Fatalf("buffer %d: output changed by a refused call (%d bytes before, %d after; %d buffered before, %d after)",
						bufSize, len(before), out.Len(), buffered, w.Buffered())
				}
				// The Writer is still usable, and the file still reads.
				if err := w.WritePacket(&pcapng.Packet{InterfaceID: 1, Timestamp: baseTime, Data: payload(100, 9)}); err != nil {
					t.Fatalf("buffer %d: writing after a refusal: %v", bufSize, err)
				}
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
				r, err := pcapng.NewReader(bytes.NewReader(out.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				var n int
				for {
					p, err := r.ReadPacket()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("buffer %d: reading back: %v", bufSize, err)
					}
					if len(p.Data) != 100 {
						t.Errorf("buffer %d: read a %d-byte packet, want only the 100-byte one", bufSize, len(p.Data))
					}
					n++
				}
				if n != 1 {
					t.Errorf("buffer %d: read %d packets, want 1", bufSize, n)
				}
			}
		})
	}
}

func TestWriterStickyWriteError(t *testing.T) {
	fw := &failingWriter{}
	w, err := pcapng.NewWriter(fw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddInterface(&pcapng.Interface{LinkType: pcapng.LinkTypeEthernet}); err != nil {
		t.Fatal(err)
	}
	fw.fail = true
	if err := w.WritePacket(&pcapng.Packet{Timestamp: baseTime, Data: payload(10, 0)}); !errors.Is(err, errDisk) {
		t.Fatalf("got %v, want the write error", err)
	}
	fw.fail = false
	n := fw.Len()
	if err := w.WritePacket(&pcapng.Packet{Timestamp: baseTime, Data: payload(10, 0)}); !errors.Is(err, errDisk) {
		t.Fatalf("after a write error: got %v, want the same error again", err)
	}
	if err := w.Flush(); !errors.Is(err, errDisk) {
		t.Fatalf("Flush after a write error: %v", err)
	}
	if fw.Len() != n {
		t.Fatalf("%d bytes written after a write error", fw.Len()-n)
	}
}

// TestUnbufferedOneWritePerBlock checks that an unbuffered Writer hands
// each block to the underlying writer in exactly one Write call.
func TestUnbufferedOneWritePerBlock(t *testing.T) {
	items := everything()
	wc := &writeCounter{}
	w, err := pcapng.NewWriter(wc, items[0].section)
	if err != nil {
		t.Fatal(err)
	}
	if len(wc.sizes) != 1 {
		t.Fatalf("section header took %d Write calls", len(wc.sizes))
	}
	for i, it := range items[1:] {
		calls := len(wc.sizes)
		if err := it.write(w); err != nil {
			t.Fatal(err)
		}
		if got := len(wc.sizes) - calls; got != 1 {
			t.Fatalf("item %d (%v): %d Write calls, want 1", i+1, it.blockType(), got)
		}
	}
	// Each Write call holds exactly one block: its length field, trailing
	// length and type are those of the block the call was for.
	file := wc.buf.Bytes()
	off := 0
	for i, n := range wc.sizes {
		blk := file[off : off+n]
		l := binary.LittleEndian.Uint32(blk[4:])
		if int(l) != n || binary.LittleEndian.Uint32(blk[n-4:]) != l {
			t.Fatalf("write %d of %d bytes holds a block of length %d", i, n, l)
		}
		var want pcapng.BlockType
		if i == 0 {
			want = pcapng.BlockSectionHeader
		} else {
			want = items[i].blockType()
		}
		if got := pcapng.BlockType(binary.LittleEndian.Uint32(blk)); got != want {
			t.Fatalf("write %d is a %v block, want %v", i, got, want)
		}
		off += n
	}
	// A buffered Writer makes no Write call until its buffer fills.
	wc2 := &writeCounter{}
	bw, err := pcapng.NewWriterSize(wc2, nil, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bw.AddInterface(&pcapng.Interface{}); err != nil {
		t.Fatal(err)
	}
	if len(wc2.sizes) != 0 || bw.Buffered() == 0 {
		t.Fatalf("buffered writer: %d Write calls, %d bytes buffered", len(wc2.sizes), bw.Buffered())
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(wc2.sizes) != 1 || bw.Buffered() != 0 {
		t.Fatalf("after Flush: %d Write calls, %d bytes buffered", len(wc2.sizes), bw.Buffered())
	}
}

// TestWriterSimplePacketRules checks the one case where a simple packet
// block cannot say what it holds.
func TestWriterSimplePacketRules(t *testing.T) {
	var out bytes.Buffer
	w, err := pcapng.NewWriter(&out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteSimplePacket(&pcapng.Packet{Data: []byte{1}}); !errors.Is(err, pcapng.ErrUnknownInterface) {
		t.Fatalf("SPB without an interface: %v", err)
	}
	if _, err := w.AddInterface(&pcapng.Interface{SnapLen: 64}); err != nil {
		t.Fatal(err)
	}
	n := out.Len()
	if err := w.WriteSimplePacket(&pcapng.Packet{Data: payload(10, 0), OriginalLength: 100}); err == nil {
		t.Fatal("SPB of 10 of 100 bytes with snaplen 64 accepted: a reader would take 64 bytes")
	}
	if out.Len() != n {
		t.Fatal("refused SPB was written")
	}
	if err := w.WriteSimplePacket(&pcapng.Packet{Data: payload(64, 0), OriginalLength: 1500}); err != nil {
		t.Fatalf("SPB cut by the snaplen: %v", err)
	}
	r, err := pcapng.NewReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	if p.OriginalLength != 1500 || !bytes.Equal(p.Data, payload(64, 0)) {
		t.Fatalf("SPB read back as %d of %d bytes", len(p.Data), p.OriginalLength)
	}
}

// taker is a pcapng.BufferTaker that keeps the buffers it takes and hands
// back a new one each time.
type taker struct {
	taken [][]byte
	out   bytes.Buffer
}

func (k *taker) Write(p []byte) (int, error) { return k.out.Write(p) }

func (k *taker) TakeBuffer(b []byte) ([]byte, error) {
	k.taken = append(k.taken, b)
	k.out.Write(b)
	return make([]byte, 0, 16), nil
}

// TestWriterBufferTaker: a buffered Writer hands its buffer itself to a
// BufferTaker; the bytes are those written through Write, and the Writer
// never touches a buffer once taken.
func TestWriterBufferTaker(t *testing.T) {
	items := everything()
	want := writeAll(t, items, 4096)
	k := &taker{}
	w, err := pcapng.NewWriterSize(k, items[0].section, 4096)
	if err != nil {
		t.Fatal(err)
	}
	var copies [][]byte
	check := func() {
		for i, b := range k.taken {
			if i >= len(copies) {
				copies = append(copies, bytes.Clone(b))
			} else if !bytes.Equal(copies[i], b) {
				t.Fatalf("buffer %d changed after it was taken", i)
			}
		}
	}
	for i, it := range items[1:] {
		if err := it.write(w); err != nil {
			t.Fatalf("item %d: %v", i+1, err)
		}
		check()
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	check()
	if len(k.taken) < 2 || !bytes.Equal(k.out.Bytes(), want) {
		t.Errorf("%d buffers taken, %d bytes; equal to a plain Writer's %v", len(k.taken), k.out.Len(), bytes.Equal(k.out.Bytes(), want))
	}
	readAndCheck(t, k.out.Bytes(), items)
}
