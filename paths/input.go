package paths

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/pcapng"
)

// Event is one packet block of an input, decoded.
type Event struct {
	// ID is the tracking id (epb_packetid); HasID says it was present.
	ID    uint64
	HasID bool
	// Time is in nanoseconds since the epoch.
	Time int64
	// Meta is the pathcap metadata; HasMeta says the block had it.
	Meta    kmeta.Event
	HasMeta bool
	// meta, in the events of Process's reading stage, is the metadata
	// when it is shared with other events (kmeta.Parser.ParseShared; read
	// only), and then Meta is not set; nil otherwise.
	meta *kmeta.Event
	// Stack is the event's kernel stack (Meta.Stack), nil when it has
	// none or its frames are not in the input.
	Stack *Stack
	// Interface is the block's interface description: valid until the
	// next call to Next, nil in the events Process hands to the Analyzer.
	Interface *pcapng.Interface
	// IfName is the interface's name (if_name), NSName the name of its
	// network namespace as its description gives it ("" when none; see
	// kmeta.ParseInterfaceDescription).
	IfName string
	NSName string

	// Data is the packet's captured bytes. From Next it aliases the
	// reader's buffer, valid until the next call.
	Data    []byte
	OrigLen uint32
	// Lost is epb_dropcount: events lost just before this one.
	Lost uint64
	// File is the index of the input file, Frame the block's frame number
	// in it (from 1), Recording identifies the recording the file belongs
	// to (files with the same section header are parts of one recording).
	File      int
	Frame     int64
	Recording int
}

// metadata returns the event's metadata: the shared one when there is
// one, else Meta.
func (e *Event) metadata() *kmeta.Event {
	if e.meta != nil {
		return e.meta
	}
	return &e.Meta
}

// InputError is an error in one input file.
type InputError struct {
	File string
	Err  error
}

// Error returns the file name and the error.
func (e *InputError) Error() string { return e.File + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *InputError) Unwrap() error { return e.Err }

// fileInput reads one file.
type fileInput struct {
	name   string
	index  int
	f      *os.File
	size   int64
	count  *countingReader
	r      *pcapng.Reader
	parser *kmeta.Parser
	// ev is the file's pending event: own, or a destination Process's
	// reading stage handed to nextInto.
	ev        *Event
	own       Event
	recording int // of the current section
	// carry: the current section is of a --bytes changed recording;
	// carryPending: the pending event's bytes are still to be carried
	// (byteCarry.apply), which happens when it is delivered, in the merged
	// order, after the events of earlier parts.
	carry, carryPending bool
	frame               int64
	done                bool

	// Whether the current section ended cleanly: a section of record
	// that described interfaces ends with their statistics.
	byRecord bool             // the section is record's
	ifaces   bool             // it described an interface
	last     pcapng.BlockType // its last block

	// stackComments are the comments after the metadata comment of ev
	// when it has stack=N (they alias the reader's buffer): the stack is
	// looked up only when ev is the next event in time order, so that
	// definitions in earlier events of other files are known by then.
	stackComments [][]byte
	stackPending  bool
}

type countingReader struct {
	r io.Reader
	n atomic.Int64 // read by Progress from another goroutine
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Input merges the events of several files in time order. Rotated parts of
// one recording and recordings made at the same time on several hosts are
// both handled: the next event is always the earliest pending one.
type Input struct {
	files      []*fileInput
	queue      fileHeap
	started    bool
	recordings map[string]int
	current    *fileInput
	stacks     stackTable
	ifNames    ifNames
	carry      byteCarry // the last bytes of ids of --bytes changed recordings
	err        error     // sticky
	// shareMeta makes decode leave the metadata of comments that repeat
	// shared (Event.meta) instead of copying it into Meta: Process's
	// reading stage, whose hops keep a pointer to it.
	shareMeta bool
	// Strict makes a pathcap comment that does not parse an error; by
	// default such an event is kept without metadata.
	Strict bool
	// BadComments counts pathcap comments that did not parse.
	BadComments int
	// LostEvents sums epb_dropcount over every event read: events the
	// recorder lost because its ring buffer was full. SkippedEvents sums
	// the skipped= key: hits the in-kernel rate limit (record --max-rate)
	// left out. Both count the whole input, whatever is selected.
	LostEvents    uint64
	SkippedEvents uint64
	// Truncated lists the files that end inside a block; their complete
	// blocks were read.
	Truncated []error
	// NotClosed lists the recordings of record (other files are not
	// checked) that end without the interface statistics record writes
	// when it stops: the recorder was killed, or its output failed (each
	// an *InputError wrapping ErrNotClosed). Every event in them was read.
	// A truncated file is in Truncated only.
	NotClosed []error
}

// ErrNotClosed means a recording ends without its closing interface
// statistics blocks: it did not end cleanly.
var ErrNotClosed = errors.New("no closing interface statistics blocks (the recorder was killed or could not finish the file)")

// recordPrefix starts the shb_userappl of record's files.
const recordPrefix = "pathcap record"

// Open opens the named files. "-" reads standard input.
func Open(names []string) (*Input, error) {
	if len(names) == 0 {
		return nil, errors.New("no input files")
	}
	in := &Input{recordings: make(map[string]int)}
	parser := kmeta.NewParser()
	for i, name := range names {
		fi := &fileInput{name: name, index: i, parser: parser}
		fi.ev = &fi.own
		var src io.Reader
		if name == "-" {
			src = os.Stdin
		} else {
			f, err := os.Open(name)
			if err != nil {
				in.Close()
				return nil, fmt.Errorf("open input: %w", err)
			}
			fi.f = f
			if st, err := f.Stat(); err == nil {
				fi.size = st.Size()
			}
			src = f
		}
		// No bufio.Reader: the pcapng reader reads in large blocks into
		// its own buffer, and another buffer would copy every byte once
		// more.
		fi.count = &countingReader{r: src}
		r, err := pcapng.NewReader(fi.count)
		if err != nil {
			if errors.Is(err, pcapng.ErrNotPcapng) && fi.f != nil && isClassicPcap(fi.f) {
				err = fmt.Errorf("%w (it is a classic pcap file; convert it with: editcap -F pcapng IN OUT)", err)
			}
			in.Close()
			return nil, &InputError{File: name, Err: err}
		}
		fi.r = r
		in.files = append(in.files, fi)
	}
	return in, nil
}

// isClassicPcap reports whether f starts with a pcap (not pcap-ng) magic
// number, in either byte order, with micro- or nanosecond timestamps.
func isClassicPcap(f *os.File) bool {
	var b [4]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return false
	}
	switch binary.LittleEndian.Uint32(b[:]) {
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1:
		return true
	}
	return false
}

// Close closes the files.
func (in *Input) Close() error {
	var first error
	for _, f := range in.files {
		if f.f != nil {
			if err := f.f.Close(); err != nil && first == nil {
				first = err
			}
			f.f = nil
		}
	}
	return first
}

// Progress returns the bytes read so far and the total size of the inputs
// (0 when a size is unknown, e.g. standard input). It may be called from
// another goroutine.
func (in *Input) Progress() (read, total int64) {
	unknown := false
	for _, f := range in.files {
		read += f.count.n.Load()
		unknown = unknown || f.size == 0
		total += f.size
	}
	if unknown {
		total = 0
	}
	return read, total
}

// advance reads the next packet of f into *f.ev; it sets f.done at the end.
func (in *Input) advance(f *fileInput) error {
	for {
		typ, err := f.r.Next()
		if err == io.EOF {
			f.done = true
			in.endSection(f)
			return nil
		}
		if err != nil {
			f.done = true
			if errors.Is(err, pcapng.ErrTruncated) {
				// A recording cut short (the recorder was killed):
				// everything before the cut is good.
				in.Truncated = append(in.Truncated, &InputError{File: f.name, Err: err})
				return nil
			}
			return &InputError{File: f.name, Err: err}
		}
		if typ == pcapng.BlockSectionHeader {
			in.endSection(f)
		}
		f.last = typ
		switch {
		case typ == pcapng.BlockSectionHeader:
			s := f.r.Section()
			key := recordingKey(s)
			id, ok := in.recordings[key]
			if !ok {
				id = len(in.recordings)
				in.recordings[key] = id
			}
			f.recording = id
			f.carry = bytesChanged(s)
			f.byRecord = strings.HasPrefix(s.UserApplication, recordPrefix)
			f.ifaces = false
		case typ == pcapng.BlockInterfaceDescription:
			f.ifaces = true
		case typ.IsPacket():
			f.frame++
			if err := in.decode(f, f.r.Packet()); err != nil {
				return err
			}
			return nil
		}
	}
}

// bytesChanged reports whether s is a section of a recording made with
// record --bytes changed (its file comment has bytes=changed).
func bytesChanged(s *pcapng.Section) bool {
	var fc kmeta.FileComment
	for _, c := range s.Comments {
		if kmeta.ParseFileComment([]byte(c), &fc) == nil {
			return fc.BytesChanged
		}
	}
	return false
}

// recordingKey returns what the section headers of one recording's files
// share: with a kmeta.FileComment its recording, else the whole header.
func recordingKey(s *pcapng.Section) string {
	key := s.Hardware + "\x00" + s.OS + "\x00" + s.UserApplication + "\x00"
	var fc kmeta.FileComment
	for _, c := range s.Comments {
		if kmeta.ParseFileComment([]byte(c), &fc) == nil {
			return key + "\x00file\x00" + fc.Recording
		}
	}
	return key + strings.Join(s.Comments, "\x00")
}

// endSection notes a section of f that ended without its closing
// statistics (at most once per file).
func (in *Input) endSection(f *fileInput) {
	if !f.byRecord || !f.ifaces || f.last == pcapng.BlockInterfaceStatistics {
		return
	}
	f.byRecord = false
	for _, e := range in.NotClosed {
		if e.(*InputError).File == f.name {
			return
		}
	}
	in.NotClosed = append(in.NotClosed, &InputError{File: f.name, Err: ErrNotClosed})
}

func (in *Input) decode(f *fileInput, p *pcapng.Packet) error {
	ev := f.ev
	ev.File = f.index
	ev.Recording = f.recording
	ev.Frame = f.frame
	ev.Time = p.Timestamp.UnixNano()
	ev.Interface = p.Interface
	ev.IfName, ev.NSName = "", ""
	var place kmeta.Place
	if p.Interface != nil {
		ev.IfName = p.Interface.Name
		ev.NSName, place = in.ifNames.name(p.Interface)
	}
	f.parser.SetPlace(place)
	ev.Data = p.Data
	ev.OrigLen = p.OriginalLength
	ev.ID, ev.HasID = p.Options.PacketID, p.Options.HasPacketID
	ev.Lost = p.Options.DropCount
	in.LostEvents += ev.Lost
	ev.HasMeta = false
	ev.meta = nil
	ev.Stack = nil
	f.carryPending = f.carry && ev.HasID
	f.stackComments, f.stackPending = nil, false
	for i, c := range p.Options.Comments {
		if !kmeta.IsMetadata(c) {
			continue
		}
		var err error
		if in.shareMeta {
			var m *kmeta.Event
			if m, err = f.parser.ParseShared(c, &ev.Meta); m != &ev.Meta {
				ev.meta = m
			}
		} else {
			err = f.parser.Parse(c, &ev.Meta)
		}
		if err == nil {
			ev.HasMeta = true
			if ev.metadata().Stack != 0 {
				f.stackComments, f.stackPending = p.Options.Comments[i+1:], true
			}
			break
		}
		if errors.Is(err, kmeta.ErrNotMetadata) {
			continue
		}
		in.BadComments++
		if in.Strict {
			return &InputError{File: f.name, Err: fmt.Errorf("frame %d: %w", f.frame, err)}
		}
	}
	if !ev.HasMeta {
		// Neither the previous event's metadata nor a half-parsed
		// comment's may show through.
		ev.Meta = kmeta.Event{}
	}
	in.SkippedEvents += ev.metadata().Skipped
	return nil
}

// resolveStack finds the stack of f's pending event from its stack comment
// and the stacks read before.
func (in *Input) resolveStack(f *fileInput) error {
	ev := f.ev
	s, err := in.stacks.stackFor(ev.Recording, ev.metadata().Stack, f.stackComments)
	f.stackComments, f.stackPending = nil, false
	if err != nil {
		in.BadComments++
		if in.Strict {
			in.err = &InputError{File: f.name, Err: fmt.Errorf("frame %d: %w", f.frame, err)}
			return in.err
		}
	}
	ev.Stack = s
	return nil
}

// Next returns the earliest pending event of all inputs, or io.EOF. The
// event is valid until the next call.
func (in *Input) Next() (*Event, error) {
	if err := in.prepare(); err != nil {
		return nil, err
	}
	if len(in.queue) == 0 {
		return nil, io.EOF
	}
	f := in.queue[0]
	in.current = f
	if f.stackPending {
		if err := in.resolveStack(f); err != nil {
			return nil, err
		}
	}
	if f.carryPending {
		f.carryPending = false
		in.carry.apply(f.ev)
	}
	return f.ev, nil
}

// nextInto is Next for Process's reading stage: with a single input file,
// the event is decoded straight into *dst (whatever dst held is
// overwritten), which saves copying it there; otherwise, or for the first
// event, the returned event is elsewhere. Either way it stays valid until
// the next call.
func (in *Input) nextInto(dst *Event) (*Event, error) {
	if len(in.files) == 1 && in.started && in.current != nil {
		// The file moves on in this call (prepare): its next event is
		// decoded into dst.
		in.current.ev = dst
	}
	return in.Next()
}

// Peek returns the event the next call to Next will return, without
// consuming it, or io.EOF. The event is valid until that call.
func (in *Input) Peek() (*Event, error) {
	if err := in.prepare(); err != nil {
		return nil, err
	}
	if len(in.queue) == 0 {
		return nil, io.EOF
	}
	f := in.queue[0]
	if f.stackPending {
		if err := in.resolveStack(f); err != nil {
			return nil, err
		}
	}
	if f.carryPending {
		f.carryPending = false
		in.carry.apply(f.ev)
	}
	return f.ev, nil
}

// prepare puts the earliest pending event at the head of the queue: it
// reads every file's first event the first time, and otherwise moves on
// the file of the event Next returned last.
func (in *Input) prepare() error {
	if in.err != nil {
		return in.err
	}
	if err := in.prepare1(); err != nil {
		in.err = err
		return err
	}
	return nil
}

func (in *Input) prepare1() error {
	if !in.started {
		in.started = true
		for _, f := range in.files {
			if err := in.advance(f); err != nil {
				return err
			}
			if !f.done {
				in.queue = append(in.queue, f)
			}
		}
		heap.Init(&in.queue)
	} else if in.current != nil {
		// The previous event's file moves on only now, so that its event
		// stayed valid until this call.
		f := in.current
		if err := in.advance(f); err != nil {
			return err
		}
		in.current = nil
		if f.done {
			heap.Pop(&in.queue)
		} else {
			heap.Fix(&in.queue, 0)
		}
	}
	return nil
}

// fileHeap orders files by the time of their pending event.
type fileHeap []*fileInput

func (h fileHeap) Len() int { return len(h) }
func (h fileHeap) Less(i, j int) bool {
	if h[i].ev.Time != h[j].ev.Time {
		return h[i].ev.Time < h[j].ev.Time
	}
	return h[i].index < h[j].index
}
func (h fileHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *fileHeap) Push(x any)   { *h = append(*h, x.(*fileInput)) }
func (h *fileHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// ifNames remembers the namespace name and the place (kmeta.PlaceOf) of
// each interface the input has seen, from its name and description. The
// reader reuses an Interface for the next section's, so the name and
// description are checked too.
type ifNames struct {
	last               *pcapng.Interface
	lastName, lastDesc string
	lastNS             string
	lastPlace          kmeta.Place
	byIfc              map[*pcapng.Interface]ifName
}

type ifName struct {
	name, desc, ns string
	place          kmeta.Place
}

// name returns the namespace name of ifc's description and the place of
// ifc.
func (m *ifNames) name(ifc *pcapng.Interface) (string, kmeta.Place) {
	if ifc == m.last && ifc.Description == m.lastDesc && ifc.Name == m.lastName {
		// Consecutive events are mostly on one interface.
		return m.lastNS, m.lastPlace
	}
	n, ok := m.byIfc[ifc]
	if !ok || n.desc != ifc.Description || n.name != ifc.Name {
		d, _ := kmeta.ParseInterfaceDescription(ifc.Description)
		n = ifName{ifc.Name, ifc.Description, d.NSName, kmeta.PlaceOf(ifc.Name, ifc.Description)}
		if m.byIfc == nil || len(m.byIfc) >= 1<<12 {
			// The reader's interfaces are reallocated when a file
			// has very many: forget the old ones.
			m.byIfc = make(map[*pcapng.Interface]ifName)
		}
		m.byIfc[ifc] = n
	}
	m.last, m.lastName, m.lastDesc, m.lastNS, m.lastPlace = ifc, n.name, n.desc, n.ns, n.place
	return n.ns, n.place
}
