// Package kmeta encodes and decodes the kernel metadata that pathcap stores
// with each recorded packet: the contract between the recorder and the
// analyzer.
//
// Every event of a recording is one enhanced packet block. Its interface
// block names the device and its namespace, its packet id option carries
// the packet's tracking id, its flags option the direction where the hook
// implies one, its process option the pid and tid; the rest of the
// metadata is one comment that starts with "pathcap/2":
//
//	pathcap/2 hook=tp:kfree_skb skb=0xffff8e2b45a3c400 len=42 proto=0x0800 cpu=1 pid=0 comm=swapper/1 reason=NO_SOCKET loc=__udp4_lib_rcv+0x4bc
//
// The grammar (docs/FORMAT.md has the full description):
//
//	comment = "pathcap/" version *( " " key "=" value )
//	key     = lower-case letters, digits and "_", starting with a letter
//	value   = bare / quoted
//	bare    = one or more bytes other than space, '"' and control bytes,
//	          not starting with '"'
//	quoted  = a Go double-quoted string literal (strconv.Quote)
//
// Version 2 leaves out what the block says elsewhere: the namespace and
// the ifindex (the interface's description), the device's name unless it
// differs from the interface's, and the thread id when it is the process
// id. Version 1 comments, which have them all, are read too; a Parser
// takes the interface's values from SetPlace.
//
// An event recorded with its kernel stack has stack=N, and a second
// comment, "pathcap-stack/1", with the stack's frames (StackComment).
//
// Readers ignore keys they do not know, so new keys can be added without
// changing the version; the version changes only when the meaning of an
// existing key does.
package kmeta

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Version is the version of the comment grammar this package writes.
const Version = 2

// Prefix starts every comment this package writes.
const Prefix = "pathcap/2"

// ErrNotMetadata means a comment is not pathcap metadata (it does not start
// with "pathcap/").
var ErrNotMetadata = errors.New("not pathcap metadata")

// HeaderStart tells where the packet bytes of an event start.
type HeaderStart uint8

// Where packet bytes start.
const (
	// HeaderMAC: the bytes are the packet from its MAC (Ethernet) header,
	// as the kernel held it.
	HeaderMAC HeaderStart = iota
	// HeaderNetwork: the kernel had no usable MAC header; the bytes start
	// with a synthesized Ethernet header (zero addresses, the skb's
	// protocol as EtherType) followed by the packet from its network
	// header.
	HeaderNetwork
	// HeaderData: neither header was set; the bytes start with a
	// synthesized Ethernet header followed by the packet from skb->data.
	HeaderData
)

var headerNames = [...]string{"mac", "net", "data"}

// String returns the name used in comments: "mac", "net" or "data".
func (h HeaderStart) String() string {
	if int(h) < len(headerNames) {
		return headerNames[h]
	}
	return strconv.Itoa(int(h))
}

// Event is the kernel metadata of one recorded event.
type Event struct {
	// Kind is the kind of hook: "tp" (tracepoint), "kprobe", "fentry",
	// "fexit".
	Kind string
	// Hook is the tracepoint or kernel function name.
	Hook string
	// Dev is the device name ("" when the skb had no device).
	Dev string
	// NetNS is the inode of the device's (or socket's) network namespace;
	// 0 when unknown.
	NetNS   uint32
	Ifindex uint32
	// SKB is the address of the struct sk_buff.
	SKB uint64
	// Len and DataLen are skb->len and skb->data_len (the non-linear part).
	Len     uint32
	DataLen uint32
	// Proto is skb->protocol as an EtherType in host byte order.
	Proto uint16
	// PktType is skb->pkt_type (PACKET_HOST, ...).
	PktType uint8
	Mark    uint32
	Header  HeaderStart
	CPU     uint32
	PID     uint32
	TID     uint32
	Comm    string
	// HasDrop says the event is a drop; Reason is the drop reason's name
	// without its SKB_DROP_REASON_ prefix, Location where it happened as
	// "function+0xoffset".
	HasDrop  bool
	Reason   string
	Location string
	// Parent is the tracking id of the packet this one was cloned or
	// copied from (0: none).
	Parent uint64
	// RetVal is a function's return value (fexit hooks); HasRetVal says
	// it is set.
	RetVal    int64
	HasRetVal bool
	// ProgType, Prog, ProgID and ProgTag describe the BPF program whose
	// entry or exit the hook is (record --trace-tc, --trace-xdp): its kind
	// (ProgTC or ProgXDP; "" for kernel hooks), its function's name from
	// its BTF, its id and its tag (16 hex digits) as bpftool shows them.
	ProgType string
	Prog     string
	ProgID   uint32
	ProgTag  string
	// NFHook and NFFamily name the netfilter hook whose place the event
	// is (nf_hook_slow, nft_do_chain's exit): the hook ("input",
	// "prerouting", ...; NFHookName) and the protocol family ("ip",
	// "ip6", ...; NFFamilyName). Empty elsewhere, or "" when the kernel
	// did not say.
	NFHook   string
	NFFamily string
	// NFTFamily, NFTTable and NFTChain name the nftables base chain that
	// ran at nft_do_chain's exit: its table's family and name, and its
	// name; NFVerdict is the chain's verdict (NFDrop, NFAccept, ...;
	// NFVerdictName). Empty elsewhere; the names are empty where record
	// could not read them (audit-safe mode).
	NFTFamily string
	NFTTable  string
	NFTChain  string
	NFVerdict string
	// StackLost reports that a stack was asked for but the kernel could
	// not capture it (stack=lost); StackErr is the kernel's error number
	// (stack_err, negative errno; 0 when not known).
	StackLost bool
	StackErr  int32
	// Stack is the number of the event's kernel stack in its recording
	// (key stack=N; 0: no stack recorded). The frames are in the event's
	// "pathcap-stack/1" comment (see ParseStackComment).
	Stack uint64
	// Skipped is the number of hits the recording CPU did not record since
	// its previous event because the in-kernel rate limit (record
	// --max-rate) was reached (key skipped=N; 0: none).
	Skipped uint64
	// BytesSame says the event carries no packet bytes because they are
	// the bytes of the previous event of the same tracking id that carried
	// any (key bytes=same, written after hdr; record --bytes changed).
	// Readers carry those forward (docs/FORMAT.md).
	BytesSame bool
}

// pktTypeNames names skb->pkt_type values (include/uapi/linux/if_packet.h).
var pktTypeNames = [...]string{"host", "broadcast", "multicast", "otherhost", "outgoing", "loopback", "user", "kernel"}

// PktTypeName returns the name of a pkt_type value as written in comments.
func PktTypeName(t uint8) string {
	if int(t) < len(pktTypeNames) {
		return pktTypeNames[t]
	}
	return strconv.Itoa(int(t))
}

// AppendComment appends the comment for e to dst and returns the result.
// Zero values of optional keys (dev, mark, data_len, the mac header start,
// bytes, parent, drop fields, stack fields) are left out, and so is a tid
// equal to the pid; StackLost wins over Stack. NetNS and Ifindex are not
// written: the block's interface says them. Dev is written when set: the
// caller leaves it empty where the interface's name says it (DevFor).
func AppendComment(dst []byte, e *Event) []byte {
	dst = appendHead(dst, e)
	dst = appendPacket(dst, e)
	dst = appendTask(dst, e)
	return appendTail(dst, e)
}

// AppendText appends e as the keys of its comment with the netns and
// ifindex keys after the hook and dev, without the version prefix: the
// line a terminal shows for an event.
func AppendText(dst []byte, e *Event) []byte {
	n := len(dst)
	dst = appendPlace(dst, e, true)
	dst = append(dst[:n], dst[n+1:]...) // the space before hook=
	dst = appendPacket(dst, e)
	dst = appendTask(dst, e)
	return appendTail(dst, e)
}

// The parts of a comment, in order. appendHead and appendTask write what
// often repeats from event to event (CommentCache remembers their text);
// appendPacket and appendTail the rest.

// appendHead appends the prefix, the hook key, the dev key (when Dev is
// set) and the skb key's name, up to its value.
func appendHead(dst []byte, e *Event) []byte {
	dst = append(dst, Prefix...)
	return appendPlace(dst, e, false)
}

// appendPlace appends the hook key, the dev key (when Dev is set), with
// netns the netns and ifindex keys, and the skb key's name.
func appendPlace(dst []byte, e *Event, netns bool) []byte {
	dst = append(dst, " hook="...)
	dst = appendValue(dst, e.Kind+":"+e.Hook)
	if e.Dev != "" {
		dst = append(dst, " dev="...)
		dst = appendValue(dst, e.Dev)
	}
	if netns {
		dst = append(dst, " netns="...)
		dst = strconv.AppendUint(dst, uint64(e.NetNS), 10)
		dst = append(dst, " ifindex="...)
		dst = strconv.AppendUint(dst, uint64(e.Ifindex), 10)
	}
	return append(dst, " skb=0x"...)
}

// appendPacket appends the skb key's value and the keys from len to
// parent.
func appendPacket(dst []byte, e *Event) []byte {
	dst = appendHex(dst, e.SKB)
	dst = append(dst, " len="...)
	dst = strconv.AppendUint(dst, uint64(e.Len), 10)
	if e.DataLen != 0 {
		dst = append(dst, " data_len="...)
		dst = strconv.AppendUint(dst, uint64(e.DataLen), 10)
	}
	dst = append(dst, " proto=0x"...)
	dst = appendHex4(dst, e.Proto)
	if e.PktType != 0 {
		dst = append(dst, " pkt_type="...)
		dst = append(dst, PktTypeName(e.PktType)...)
	}
	if e.Mark != 0 {
		dst = append(dst, " mark=0x"...)
		dst = strconv.AppendUint(dst, uint64(e.Mark), 16)
	}
	if e.Header != HeaderMAC {
		dst = append(dst, " hdr="...)
		dst = append(dst, e.Header.String()...)
	}
	if e.BytesSame {
		dst = append(dst, " bytes=same"...)
	}
	if e.ProgType != "" {
		dst = append(dst, " prog_type="...)
		dst = appendValue(dst, e.ProgType)
		dst = append(dst, " prog="...)
		dst = appendValue(dst, e.Prog)
		dst = append(dst, " prog_id="...)
		dst = strconv.AppendUint(dst, uint64(e.ProgID), 10)
		if e.ProgTag != "" {
			dst = append(dst, " prog_tag="...)
			dst = appendValue(dst, e.ProgTag)
		}
	}
	if e.NFHook != "" {
		dst = append(dst, " nf_hook="...)
		dst = appendValue(dst, e.NFHook)
	}
	if e.NFFamily != "" {
		dst = append(dst, " nf_pf="...)
		dst = appendValue(dst, e.NFFamily)
	}
	if e.NFTFamily != "" {
		dst = append(dst, " nft_family="...)
		dst = appendValue(dst, e.NFTFamily)
	}
	if e.NFTTable != "" {
		dst = append(dst, " nft_table="...)
		dst = appendValue(dst, e.NFTTable)
	}
	if e.NFTChain != "" {
		dst = append(dst, " nft_chain="...)
		dst = appendValue(dst, e.NFTChain)
	}
	if e.NFVerdict != "" {
		dst = append(dst, " nf_verdict="...)
		dst = appendValue(dst, e.NFVerdict)
	}
	if e.HasRetVal {
		dst = append(dst, " ret="...)
		dst = strconv.AppendInt(dst, e.RetVal, 10)
	}
	if e.Parent != 0 {
		dst = append(dst, " parent="...)
		dst = strconv.AppendUint(dst, e.Parent, 10)
	}
	return dst
}

// appendTask appends the cpu, pid, tid (when it is not the pid) and comm
// keys.
func appendTask(dst []byte, e *Event) []byte {
	dst = append(dst, " cpu="...)
	dst = strconv.AppendUint(dst, uint64(e.CPU), 10)
	dst = append(dst, " pid="...)
	dst = strconv.AppendUint(dst, uint64(e.PID), 10)
	if e.TID != e.PID {
		dst = append(dst, " tid="...)
		dst = strconv.AppendUint(dst, uint64(e.TID), 10)
	}
	dst = append(dst, " comm="...)
	dst = appendValue(dst, e.Comm)
	return dst
}

// appendTail appends the drop, stack and skipped keys.
func appendTail(dst []byte, e *Event) []byte {
	if e.HasDrop {
		dst = append(dst, " reason="...)
		dst = appendValue(dst, e.Reason)
	}
	if e.Location != "" {
		dst = append(dst, " loc="...)
		dst = appendValue(dst, e.Location)
	}
	switch {
	case e.StackLost:
		dst = append(dst, " stack=lost"...)
	case e.Stack != 0:
		dst = append(dst, " stack="...)
		dst = strconv.AppendUint(dst, e.Stack, 10)
	}
	if e.StackErr != 0 {
		dst = append(dst, " stack_err="...)
		dst = strconv.AppendInt(dst, int64(e.StackErr), 10)
	}
	if e.Skipped != 0 {
		dst = append(dst, " skipped="...)
		dst = strconv.AppendUint(dst, e.Skipped, 10)
	}
	return dst
}

// appendHex appends v in lower-case hex without leading zeros, as
// strconv.AppendUint(dst, v, 16) does, in fewer steps.
func appendHex(dst []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	n := (bits.Len64(v|1) + 3) / 4
	dst = slices.Grow(dst, n)
	out := dst[len(dst) : len(dst)+n]
	for i := n - 1; i >= 0; i-- {
		out[i] = digits[v&0xf]
		v >>= 4
	}
	return dst[:len(dst)+n]
}

func appendHex4(dst []byte, v uint16) []byte {
	const digits = "0123456789abcdef"
	return append(dst, digits[v>>12], digits[v>>8&0xf], digits[v>>4&0xf], digits[v&0xf])
}

// appendValue appends s bare when it can be, quoted otherwise.
func appendValue(dst []byte, s string) []byte {
	if needsQuote(s) {
		return strconv.AppendQuote(dst, s)
	}
	return append(dst, s...)
}

func needsQuote(s string) bool {
	if s == "" || s[0] == '"' {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == '"' || c == '\\' || c == 0x7f || c >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// IsMetadata reports whether comment starts like pathcap metadata.
func IsMetadata(comment []byte) bool {
	return bytes.HasPrefix(comment, []byte("pathcap/"))
}

// SyntaxError reports a comment that starts like pathcap metadata but does
// not follow the grammar.
type SyntaxError struct {
	Offset int    // byte offset in the comment
	Msg    string // what was wrong
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("pathcap metadata: byte %d: %s", e.Offset, e.Msg)
}

// Parser decodes comments. It keeps the strings it has seen (hook and
// device names, process names, drop reasons) so that decoding the events
// of a recording allocates only for new values. A Parser is not safe for
// concurrent use.
type Parser struct {
	strings map[string]string
	// recent is a small direct-mapped cache in front of strings: most
	// values repeat from event to event, and comparing one string is
	// cheaper than hashing for the map.
	recent [256]string
	// bare is the fast path's cache of bare values (fast.go).
	bare [1 << bareCacheBits]bareEntry
	// next is the fast path's guess of the next key (fast.go).
	next uint8
	// generic turns the fast path and the memo off (tests compare).
	generic bool
	// memo remembers recent comments and their events (memo.go).
	memo *commentMemo
	// place is where the events' interface puts them (SetPlace), for
	// version 2 comments.
	place Place
	// sawTID: the comment being parsed has a tid key.
	sawTID bool
}

// Place is where the interface block of an event puts it: what a version 2
// comment leaves to the interface (docs/FORMAT.md).
type Place struct {
	// Dev is the device's name ("" for none, or when it could not be
	// resolved), NetNS its network namespace and Ifindex its index there.
	Dev     string
	NetNS   uint32
	Ifindex uint32
}

// UnresolvedName is the if_name of an interface whose device's name could
// not be resolved: "if" and its ifindex.
func UnresolvedName(ifindex uint32) string { return "if" + strconv.FormatUint(uint64(ifindex), 10) }

// NoDeviceName is the if_name of the interface of events without a device.
const NoDeviceName = "nodev"

// PlaceOf returns the place of an interface from its if_name and
// if_description (InterfaceDescription); the zero Place when the
// description is not one.
func PlaceOf(name, description string) Place {
	ifc, ok := ParseInterfaceDescription(description)
	if !ok {
		return Place{}
	}
	return Place{Dev: placeDev(name, ifc.Ifindex), NetNS: ifc.NetNS, Ifindex: ifc.Ifindex}
}

// placeDev returns the device name an interface named name with device
// index ifindex gives the events without a dev key.
func placeDev(name string, ifindex uint32) string {
	if ifindex == 0 || name == UnresolvedName(ifindex) {
		return ""
	}
	return name
}

// DevFor returns what the dev key of a version 2 comment holds for a
// device named dev ("" when unknown) on the interface named ifName with
// device index ifindex: "" where the interface's name says it (PlaceOf),
// else dev. An unknown name is left out too: the reader then has the
// interface's, which is the best known.
func DevFor(dev, ifName string, ifindex uint32) string {
	if dev == "" || dev == placeDev(ifName, ifindex) {
		return ""
	}
	return dev
}

// SetPlace sets where the interface of the comments parsed next puts
// their events: version 2 comments take their namespace, ifindex and
// (without a dev key) device from it. Version 1 comments say all three.
func (p *Parser) SetPlace(pl Place) { p.place = pl }

// NewParser returns a Parser.
func NewParser() *Parser {
	return &Parser{strings: make(map[string]string)}
}

// intern returns b as a string, shared with earlier equal values.
func (p *Parser) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	slot := &p.recent[(len(b)*31+int(b[0])*7+int(b[len(b)-1])+int(b[len(b)/2])*13)&0xff]
	if *slot == string(b) {
		return *slot
	}
	s, ok := p.strings[string(b)]
	if !ok {
		s = string(b)
		if len(p.strings) < 1<<16 {
			p.strings[s] = s
		}
	}
	*slot = s
	return s
}

// Parse decodes comment into e (which is reset first). It returns an error
// wrapping ErrNotMetadata for a comment that is not pathcap metadata, and a
// *SyntaxError for one that is but is malformed. Keys it does not know are
// ignored.
func (p *Parser) Parse(comment []byte, e *Event) error {
	if p.generic || len(comment) == 0 {
		return p.parse(comment, e)
	}
	if p.memo == nil {
		p.memo = newCommentMemo()
	}
	slot, hit := p.memo.find(comment, &p.place)
	if hit {
		*e = slot.ev
		return nil
	}
	err := p.parse(comment, e)
	if err == nil && slot != nil {
		slot.keep(comment, &p.place, e)
	}
	return err
}

// ParseShared is Parse for callers that keep many events: for a comment
// seen shortly before (one that repeats: most of a real recording's) it
// returns an Event shared with the other calls that parse that comment,
// which the caller must not change and may keep as long as it likes,
// without copying it into e; otherwise it decodes comment into e, as Parse
// does, and returns e. The result is e or shared, and nil on an error.
func (p *Parser) ParseShared(comment []byte, e *Event) (*Event, error) {
	var slot *memoSlot
	if !p.generic && len(comment) > 0 {
		if p.memo == nil {
			p.memo = newCommentMemo()
		}
		var hit bool
		if slot, hit = p.memo.find(comment, &p.place); hit {
			if slot.shared == nil {
				c := slot.ev
				slot.shared = &c
			}
			return slot.shared, nil
		}
	}
	if err := p.parse(comment, e); err != nil {
		return nil, err
	}
	if slot != nil {
		slot.keep(comment, &p.place, e)
	}
	return e, nil
}

// parse is Parse without the memo (memo.go).
func (p *Parser) parse(comment []byte, e *Event) error {
	*e = Event{}
	const prefix = "pathcap/"
	if len(comment) < len(prefix) || string(comment[:len(prefix)]) != prefix {
		return ErrNotMetadata
	}
	i := len(prefix)
	for i < len(comment) && comment[i] >= '0' && comment[i] <= '9' {
		i++
	}
	if i == len(prefix) {
		return &SyntaxError{Offset: len(prefix), Msg: "no version number"}
	}
	v2 := false
	switch string(comment[len(prefix):i]) {
	case "1":
	case "2":
		v2 = true
	default:
		return &SyntaxError{Offset: len(prefix), Msg: fmt.Sprintf("unsupported version %q (this reader knows 1 and %d)", comment[len(prefix):i], Version)}
	}
	var sawHook bool
	p.sawTID = false
	var scratch []byte
	p.next = kHook
	n := len(comment)
	for i < n {
		if comment[i] != ' ' {
			return &SyntaxError{Offset: i, Msg: "expected a space before the next key"}
		}
		i++
		if !p.generic {
			if end, hook := p.fastPair(comment, i, e); end > 0 {
				i = end
				sawHook = sawHook || hook
				continue
			}
		}
		// The key: lower-case letters, digits and '_', up to '='.
		keyStart := i
		for i < n && byteClass[comment[i]]&classKey != 0 {
			i++
		}
		if i == n || comment[i] != '=' {
			if i < n && comment[i] != ' ' || i == keyStart {
				// Something that is not a key character.
				end := bytes.IndexByte(comment[keyStart:], '=')
				if end <= 0 {
					return &SyntaxError{Offset: keyStart, Msg: "expected key=value"}
				}
				return &SyntaxError{Offset: keyStart, Msg: fmt.Sprintf("invalid key %q", comment[keyStart:keyStart+end])}
			}
			return &SyntaxError{Offset: keyStart, Msg: "expected key=value"}
		}
		key := comment[keyStart:i]
		if len(key) == 0 {
			return &SyntaxError{Offset: keyStart, Msg: "expected key=value"}
		}
		if key[0] < 'a' || key[0] > 'z' {
			return &SyntaxError{Offset: keyStart, Msg: fmt.Sprintf("invalid key %q", key)}
		}
		i++ // '='
		valStart := i
		var val []byte
		if i < n && comment[i] == '"' {
			q, err := quotedLen(comment[i:])
			if err != nil {
				return &SyntaxError{Offset: i, Msg: err.Error()}
			}
			s, err := strconv.Unquote(string(comment[i : i+q]))
			if err != nil {
				return &SyntaxError{Offset: i, Msg: fmt.Sprintf("bad quoted value for %s: %v", key, err)}
			}
			scratch = append(scratch[:0], s...)
			val = scratch
			i += q
		} else {
			for i < n && byteClass[comment[i]]&classBare != 0 {
				i++
			}
			if i < n && comment[i] != ' ' {
				return &SyntaxError{Offset: valStart, Msg: fmt.Sprintf("bad byte 0x%02x in value of %s", comment[i], key)}
			}
			if i == valStart {
				return &SyntaxError{Offset: valStart, Msg: fmt.Sprintf("empty value for %s", key)}
			}
			val = comment[valStart:i]
		}
		if err := p.set(e, key, val); err != nil {
			return &SyntaxError{Offset: valStart, Msg: err.Error()}
		}
		if len(key) == 4 && string(key) == "hook" {
			sawHook = true
		}
	}
	if !sawHook {
		return &SyntaxError{Offset: len(comment), Msg: "no hook key"}
	}
	if !p.sawTID {
		e.TID = e.PID
	}
	if v2 {
		// The block's interface says where.
		e.NetNS, e.Ifindex = p.place.NetNS, p.place.Ifindex
		if e.Dev == "" {
			e.Dev = p.place.Dev
		}
	}
	return nil
}

// Byte classes for the scanner.
const (
	classKey  = 1 << iota // may appear in a key
	classBare             // may appear in a bare value
)

var byteClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' {
			t[c] |= classKey
		}
		if c > ' ' && c != '"' && c != 0x7f {
			t[c] |= classBare
		}
	}
	return t
}()

// quotedLen returns the length of the Go string literal at the start of b.
func quotedLen(b []byte) (int, error) {
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, errors.New("unterminated quoted value")
}

func (p *Parser) set(e *Event, key, val []byte) error {
	var err error
	switch string(key) {
	case "hook":
		kind, name, ok := bytes.Cut(val, []byte(":"))
		if !ok || len(kind) == 0 || len(name) == 0 {
			return fmt.Errorf("hook %q is not kind:name", val)
		}
		e.Kind, e.Hook = p.intern(kind), p.intern(name)
	case "dev":
		e.Dev = p.intern(val)
	case "netns":
		e.NetNS, err = parseU32(val)
	case "ifindex":
		e.Ifindex, err = parseU32(val)
	case "skb":
		e.SKB, err = parseHex64(val)
	case "len":
		e.Len, err = parseU32(val)
	case "data_len":
		e.DataLen, err = parseU32(val)
	case "proto":
		var v uint64
		v, err = parseHex64(val)
		if err == nil && v > 0xffff {
			err = fmt.Errorf("proto %s does not fit 16 bits", val)
		}
		e.Proto = uint16(v)
	case "pkt_type":
		e.PktType, err = parsePktType(val)
	case "mark":
		var v uint64
		v, err = parseHex64(val)
		if err == nil && v > 0xffffffff {
			err = fmt.Errorf("mark %s does not fit 32 bits", val)
		}
		e.Mark = uint32(v)
	case "hdr":
		switch string(val) {
		case "mac":
			e.Header = HeaderMAC
		case "net":
			e.Header = HeaderNetwork
		case "data":
			e.Header = HeaderData
		default:
			err = fmt.Errorf("unknown hdr %q", val)
		}
	case "bytes":
		if string(val) != "same" {
			err = fmt.Errorf("unknown bytes %q", val)
		}
		e.BytesSame = err == nil
	case "ret":
		e.RetVal, err = strconv.ParseInt(string(val), 10, 64)
		e.HasRetVal = err == nil
	case "parent":
		e.Parent, err = parseDec64(val)
	case "prog_type":
		e.ProgType = p.intern(val)
	case "prog":
		e.Prog = p.intern(val)
	case "prog_id":
		e.ProgID, err = parseU32(val)
	case "prog_tag":
		e.ProgTag = p.intern(val)
	case "nf_hook":
		e.NFHook = p.intern(val)
	case "nf_pf":
		e.NFFamily = p.intern(val)
	case "nft_family":
		e.NFTFamily = p.intern(val)
	case "nft_table":
		e.NFTTable = p.intern(val)
	case "nft_chain":
		e.NFTChain = p.intern(val)
	case "nf_verdict":
		e.NFVerdict = p.intern(val)
	case "cpu":
		e.CPU, err = parseU32(val)
	case "pid":
		e.PID, err = parseU32(val)
	case "tid":
		e.TID, err = parseU32(val)
		p.sawTID = true
	case "comm":
		e.Comm = p.intern(val)
	case "reason":
		e.Reason, e.HasDrop = p.intern(val), true
	case "loc":
		e.Location = p.intern(val)
	case "stack":
		if string(val) == "lost" {
			e.Stack, e.StackLost = 0, true
			break
		}
		e.Stack, err = parseDec64(val)
		if err == nil && e.Stack == 0 {
			err = errors.New("stack numbers start at 1")
		}
		e.StackLost = false
	case "stack_err":
		var v int64
		v, err = strconv.ParseInt(string(val), 10, 32)
		e.StackErr = int32(v)
	case "skipped":
		e.Skipped, err = parseDec64(val)
	}
	if err != nil {
		return fmt.Errorf("bad value for %s: %w", key, err)
	}
	return nil
}

// parseU32 parses a decimal number that fits 32 bits, without allocating.
func parseU32(b []byte) (uint32, error) {
	v, err := parseDec64(b)
	if err == nil && v > 0xffffffff {
		err = fmt.Errorf("%s does not fit 32 bits", b)
	}
	return uint32(v), err
}

// parseDec64 parses a decimal uint64 without allocating.
func parseDec64(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 20 {
		return 0, fmt.Errorf("%q is not a decimal number", b)
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a decimal number", b)
		}
		n := v*10 + uint64(c-'0')
		if v > (1<<64-1)/10 || n < v*10 {
			return 0, fmt.Errorf("%s overflows 64 bits", b)
		}
		v = n
	}
	return v, nil
}

// parseHex64 parses "0x" followed by up to 16 hex digits without allocating.
func parseHex64(b []byte) (uint64, error) {
	h, ok := bytes.CutPrefix(b, []byte("0x"))
	if !ok || len(h) == 0 || len(h) > 16 {
		return 0, fmt.Errorf("%q is not a 0x-prefixed hex number of at most 64 bits", b)
	}
	var v uint64
	for _, c := range h {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, fmt.Errorf("%q is not a hex number", b)
		}
		v = v<<4 | uint64(d)
	}
	return v, nil
}

func parsePktType(b []byte) (uint8, error) {
	for i, n := range pktTypeNames {
		if string(b) == n {
			return uint8(i), nil
		}
	}
	v, err := strconv.ParseUint(string(b), 10, 8)
	return uint8(v), err
}
