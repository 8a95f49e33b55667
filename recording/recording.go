// Package recording writes the events of a capture.Recorder into a pcap-ng
// file that follows pathcap's file contract (docs/FORMAT.md): one
// interface description per (network namespace, ifindex) the events were
// seen on, one enhanced packet block per event with its packet bytes, its
// tracking id, direction, process and loss count as standard options, and
// its kernel metadata as a kmeta comment (and, for events recorded with
// their kernel stack, a second comment with the stack's frames);
// interface statistics with the event and loss counts when the file is
// closed.
package recording

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/pcapng"
)

// ethHeaderLen is the length of the Ethernet header synthesized for events
// whose bytes do not start at a MAC header.
const ethHeaderLen = 14

// DeviceNamer names devices and network namespaces.
type DeviceNamer interface {
	// DeviceName returns the name of device ifindex in namespace netns.
	DeviceName(netns, ifindex uint32) (string, bool)
	// NamespaceName returns a human name for namespace netns.
	NamespaceName(netns uint32) string
}

// Symbolizer turns kernel code addresses into "function+0xoffset".
type Symbolizer interface {
	// AppendSymbol appends the symbol for addr to dst; ok is false when
	// the address is not known.
	AppendSymbol(dst []byte, addr uint64) (out []byte, ok bool)
}

// Info describes the recording, for the section header.
type Info struct {
	Hardware    string // machine, e.g. "x86_64"
	OS          string // e.g. "Linux 6.18.44"
	Application string // e.g. "pathcap record 0.1.0"
	// Comments are written as section header comments (e.g. the host
	// name and the command line).
	Comments []string
	// Snaplen is the largest number of packet bytes an event carries.
	Snaplen int
	// Recording, when not empty, identifies the recording across the
	// files it is written to (NewRecordingID makes one): every section
	// header then also gets a kmeta.FileComment with it and the file's
	// part number.
	Recording string
	// BytesChanged says the events may carry no bytes because they are
	// those of the packet's previous event with bytes (capture's
	// Config.BytesChanged): the file comment says so (bytes=changed), for
	// readers to carry bytes forward. Needs Recording.
	BytesChanged bool
}

type ifaceKey struct{ netns, ifindex uint32 }

// recentIface is a slot of Writer.recent: s is nil or ifaces[key].
type recentIface struct {
	key ifaceKey
	s   *ifaceStats
}

type ifaceStats struct {
	id       uint32
	received uint64
	name     string // if_name: the comments' dev key says it only when it differs
}

// Writer writes events to a pcap-ng stream. It is not safe for concurrent
// use.
type Writer struct {
	pw      *pcapng.Writer
	info    Info
	bufSize int
	part    uint64 // the file's number in the recording, from 1
	names   DeviceNamer
	snaplen int
	desc    *Describer
	ifaces  map[ifaceKey]*ifaceStats // of the current file
	recent  [16]recentIface          // a direct-mapped cache of ifaces
	order   []ifaceKey               // in IDB order
	start   time.Time                // first event of the current file
	last    time.Time
	events  uint64 // in every file
	lost    uint64
	skipped uint64 // SetSkipped: hits the in-kernel rate limit left out

	// Kernel stacks: the ones written so far, and how to name frames.
	stacks       stackTable
	stackSymbols StackSymbolizer

	// Reused for every event.
	pkt          pcapng.Packet
	meta         kmeta.Event
	cc           kmeta.CommentCache
	comments     [2][]byte
	comment      []byte
	stackComment []byte
	frames       []byte
	funcs        []byte
	frame        []byte
	verdict      []byte
}

// NewWriter checks info, writes the section header for info to w and
// returns a Writer; with an invalid info it writes nothing.
// bufSize is the size of the block buffer (0: one write per block); call
// Flush to write what is buffered. names and symbols may be nil; kernel
// stacks are symbolized when symbols is also a StackSymbolizer.
func NewWriter(w io.Writer, info Info, bufSize int, names DeviceNamer, symbols Symbolizer) (*Writer, error) {
	// Arguments first: nothing is written when they are wrong.
	if info.Snaplen <= 0 || info.Snaplen+ethHeaderLen > pcapng.MaxCaptureLength {
		return nil, fmt.Errorf("snap length %d out of range 1..%d", info.Snaplen, pcapng.MaxCaptureLength-ethHeaderLen)
	}
	rw := &Writer{
		info:    info,
		bufSize: bufSize,
		part:    1,
		names:   names,
		snaplen: info.Snaplen,
		desc:    NewDescriber(names, symbols),
		ifaces:  make(map[ifaceKey]*ifaceStats),
	}
	rw.info.Comments = slices.Clone(info.Comments)
	rw.stackSymbols, _ = symbols.(StackSymbolizer)
	pw, err := pcapng.NewWriterSize(w, rw.section(), bufSize)
	if err != nil {
		return nil, fmt.Errorf("write section header: %w", err)
	}
	rw.pw = pw
	rw.stacks.part = rw.part
	return rw, nil
}

// section returns the section header of the current file.
func (w *Writer) section() *pcapng.Section {
	comments := w.info.Comments
	if w.info.Recording != "" {
		fc := kmeta.FileComment{Recording: w.info.Recording, Part: w.part, BytesChanged: w.info.BytesChanged}
		comments = append(slices.Clip(comments), string(kmeta.AppendFileComment(nil, &fc)))
	}
	return &pcapng.Section{
		Hardware:        w.info.Hardware,
		OS:              w.info.OS,
		UserApplication: w.info.Application,
		Comments:        comments,
	}
}

// Restart begins the next file of the recording on out, after Close ended
// the current one: a section header with the next part number, then, as
// events need them, the interface descriptions again, and each kernel
// stack defined in full again the first time it appears in the file (its
// number stays the same). Tracking ids and stack numbers go on, so that the
// files join into one recording; Events counts the events of every file.
func (w *Writer) Restart(out io.Writer) error {
	w.part++
	pw, err := pcapng.NewWriterSize(out, w.section(), w.bufSize)
	if err != nil {
		return fmt.Errorf("write section header: %w", err)
	}
	w.pw = pw
	clear(w.ifaces)
	clear(w.recent[:])
	w.order = w.order[:0]
	w.start, w.last = time.Time{}, time.Time{}
	w.stacks.part = w.part
	return nil
}

// Part returns the number of the current file in the recording, from 1.
func (w *Writer) Part() uint64 { return w.part }

// Buffered returns the number of bytes written to the Writer but not yet
// to its output (Flush writes them).
func (w *Writer) Buffered() int { return w.pw.Buffered() }

// Events returns the number of events written.
func (w *Writer) Events() uint64 { return w.events }

// Interfaces returns the number of interface descriptions written.
func (w *Writer) Interfaces() int { return len(w.order) }

// interfaceFor returns the interface for the event's device, writing its
// description first if it is new.
func (w *Writer) interfaceFor(netns, ifindex uint32) (*ifaceStats, error) {
	key := ifaceKey{netns, ifindex}
	slot := &w.recent[(netns*0x9e3779b1^ifindex*0x85ebca6b)>>28]
	if slot.s != nil && slot.key == key {
		return slot.s, nil
	}
	if s, ok := w.ifaces[key]; ok {
		slot.key, slot.s = key, s
		return s, nil
	}
	name, ok := "", false
	if w.names != nil && ifindex != 0 {
		name, ok = w.names.DeviceName(netns, ifindex)
	}
	switch {
	case ifindex == 0:
		name = kmeta.NoDeviceName
	case !ok:
		name = kmeta.UnresolvedName(ifindex)
	}
	nsName := ""
	if w.names != nil && netns != 0 {
		nsName = w.names.NamespaceName(netns)
	}
	id, err := w.pw.AddInterface(&pcapng.Interface{
		LinkType:     pcapng.LinkTypeEthernet,
		SnapLen:      w.idbSnaplen(),
		Name:         name,
		Description:  kmeta.InterfaceDescription(netns, nsName, ifindex),
		TSResolution: pcapng.Nanoseconds,
	})
	if err != nil {
		return nil, err
	}
	s := &ifaceStats{id: id, name: name}
	w.ifaces[key] = s
	w.order = append(w.order, key)
	return s, nil
}

func (w *Writer) idbSnaplen() uint32 { return uint32(w.snaplen + ethHeaderLen) }

// Direction returns the epb_flags direction a hook implies, by its class
// (kmeta.ClassOf): pcapng.DirectionInbound on the receive path,
// pcapng.DirectionOutbound on the transmit path, DirectionUnknown
// otherwise.
func Direction(hook string) uint32 {
	switch c := kmeta.ClassOf(hook); {
	case c.Inbound():
		return pcapng.DirectionInbound
	case c.Outbound():
		return pcapng.DirectionOutbound
	}
	return pcapng.DirectionUnknown
}

// WriteEvent writes one event. An event with a kernel stack (Event.Stack,
// or Event.StackLost) gets the stack= key and, unless the stack was lost,
// a second comment with its frames: in full the first time the stack
// appears, function names only after that (docs/FORMAT.md, "Kernel
// stacks").
func (w *Writer) WriteEvent(ev *capture.Event) error {
	ifc, err := w.interfaceFor(ev.NetNS, ev.Ifindex)
	if err != nil {
		return fmt.Errorf("describe interface: %w", err)
	}
	m := &w.meta
	w.desc.Describe(ev, m)
	m.Dev = kmeta.DevFor(m.Dev, ifc.name, ev.Ifindex)
	var stackComment []byte
	if ev.Stack != nil || ev.StackLost {
		stackComment = w.stack(ev, m)
	}
	w.comment = w.cc.Append(w.comment[:0], m)

	p := &w.pkt
	p.InterfaceID = ifc.id
	p.Timestamp = ev.Time
	data := ev.Data
	orig := ev.Len
	if ev.BytesSame {
		// No bytes: a packet block of captured length 0 whose original
		// length is what a block with the bytes would have had.
		if ev.Header != capture.HeaderMAC {
			orig += ethHeaderLen
		}
	} else if ev.Header != capture.HeaderMAC {
		// Synthesize an Ethernet header so that every interface has the
		// same link type and the bytes dissect as the protocol they are.
		w.frame = append(w.frame[:0], make([]byte, 12)...)
		w.frame = binary.BigEndian.AppendUint16(w.frame, ev.Protocol)
		w.frame = append(w.frame, data...)
		data = w.frame
		orig += ethHeaderLen
	}
	if uint32(len(data)) > orig {
		orig = uint32(len(data))
	}
	p.Data = data
	p.OriginalLength = orig
	o := &p.Options
	w.comments[0] = w.comment
	o.Comments = w.comments[:1]
	if stackComment != nil {
		w.comments[1] = stackComment
		o.Comments = w.comments[:2]
	}
	o.Flags = Direction(ev.Hook.Name)
	o.HasFlags = o.Flags != pcapng.DirectionUnknown
	o.PacketID, o.HasPacketID = ev.PacketID, true
	o.ProcessID, o.ThreadID, o.HasProcessID = ev.PID, ev.TID, true
	o.DropCount, o.HasDropCount = ev.LostBefore, ev.LostBefore != 0
	o.Verdicts = o.Verdicts[:0]
	if v, ok := Verdict(ev); ok {
		w.verdict = v
		o.Verdicts = append(o.Verdicts, w.verdict)
	}
	if err := w.pw.WritePacket(p); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	if w.start.IsZero() {
		w.start = ev.Time
	}
	w.last = ev.Time
	w.events++
	w.lost += ev.LostBefore
	ifc.received++
	return nil
}

// Verdict returns the epb_verdict option of ev: for the exit of a traced
// tc or XDP program (Hook.Prog), the verdict type (pcapng.VerdictLinuxTC
// or VerdictLinuxXDP) followed by the program's return value as 8 bytes
// in the section's (little-endian) byte order, so that Wireshark shows it
// as frame.verdict.ebpf_tc or frame.verdict.ebpf_xdp; false for any other
// event.
func Verdict(ev *capture.Event) ([]byte, bool) {
	if ev.Hook == nil || ev.Hook.Prog == nil || ev.Hook.Kind != capture.HookFexit || !ev.HasRetVal {
		return nil, false
	}
	var t uint8
	switch ev.Hook.Prog.Type {
	case kmeta.ProgTC:
		t = pcapng.VerdictLinuxTC
	case kmeta.ProgXDP:
		t = pcapng.VerdictLinuxXDP
	default:
		return nil, false
	}
	return binary.LittleEndian.AppendUint64([]byte{t}, uint64(ev.RetVal)), true
}

// KindName returns the name of a hook kind in comments (kmeta.KindTracepoint,
// kmeta.KindKprobe, ...).
func KindName(k capture.HookKind) string {
	switch k {
	case capture.HookTracepoint:
		return kmeta.KindTracepoint
	case capture.HookKprobe:
		return kmeta.KindKprobe
	case capture.HookKretprobe:
		return kmeta.KindKretprobe
	case capture.HookFentry:
		return kmeta.KindFentry
	case capture.HookFexit:
		return kmeta.KindFexit
	}
	return k.String()
}

// Flush writes buffered blocks.
func (w *Writer) Flush() error { return w.pw.Flush() }

// SetSkipped sets the number of hits the in-kernel rate limit (record
// --max-rate) left out while the current file was written (the whole
// recording's for a recording in one file), for Close.
func (w *Writer) SetSkipped(n uint64) { w.skipped = n }

// Close ends the current file: it writes one interface statistics block
// per interface of the file (events recorded on it in isb_ifrecv and
// isb_usrdeliv) and flushes. The events lost while the file was written
// (the whole recording's for a recording in one file), totalLost, go into
// isb_osdrop of the "nodev" interface without netns (added if needed),
// since a lost event's device is unknown. Close does not close the
// underlying writer; Restart begins the next file.
func (w *Writer) Close(totalLost uint64, end time.Time) error {
	lossKey := ifaceKey{}
	if _, ok := w.ifaces[lossKey]; !ok && (totalLost > 0 || w.skipped > 0) {
		if _, err := w.interfaceFor(0, 0); err != nil {
			return err
		}
	}
	start := w.start
	if start.IsZero() {
		start = end
	}
	for _, k := range w.order {
		s := w.ifaces[k]
		isb := pcapng.InterfaceStatistics{
			InterfaceID:  s.id,
			Timestamp:    end,
			StartTime:    start,
			HasStartTime: true,
			EndTime:      end,
			HasEndTime:   true,
			IfRecv:       s.received,
			HasIfRecv:    true,
			UsrDeliv:     s.received,
			HasUsrDeliv:  true,
		}
		if k == lossKey {
			isb.OSDrop, isb.HasOSDrop = totalLost, true
			if w.skipped > 0 {
				isb.Comments = [][]byte{fmt.Appendf(nil, "pathcap: %d hits not recorded: the in-kernel rate limit (record --max-rate) was reached", w.skipped)}
			}
		}
		if err := w.pw.WriteInterfaceStatistics(&isb); err != nil {
			return fmt.Errorf("write interface statistics: %w", err)
		}
	}
	return w.pw.Flush()
}
