package kmeta

import (
	"encoding/binary"
	"math/bits"
)

// The fast path of Parse. A recording holds millions of comments, nearly
// all of them made of the same dozen keys, in the recorder's order, with
// plain values, so Parse first tries each key=value pair here: the key is
// recognized from one 8-byte load (compared first with the key that
// follows the previous one), numbers are converted while they are scanned
// (8 digits at a time when there are that many), and string values are
// matched against a cache of the values met before by their first 16
// bytes, or else scanned 8 bytes at a time. Anything unusual (a quoted
// value, an unknown or long key, a number that does not fit, a bad byte)
// is left to the general scanner in Parse, which also makes every error
// message: the fast path only ever accepts what the general scanner
// accepts, with the same result (FuzzFastPath compares the two).

// Known keys as little-endian integers of their bytes (at most 8 bytes, so
// that a masked load of the comment compares with them).
const (
	keyDev    = 0x766564           // "dev"
	keyLen    = 0x6e656c           // "len"
	keyCPU    = 0x757063           // "cpu"
	keyPID    = 0x646970           // "pid"
	keyTID    = 0x646974           // "tid"
	keySKB    = 0x626b73           // "skb"
	keyLoc    = 0x636f6c           // "loc"
	keyHdr    = 0x726468           // "hdr"
	keyHook   = 0x6b6f6f68         // "hook"
	keyComm   = 0x6d6d6f63         // "comm"
	keyMark   = 0x6b72616d         // "mark"
	keyNetNS  = 0x736e74656e       // "netns"
	keyProto  = 0x6f746f7270       // "proto"
	keyBytes  = 0x7365747962       // "bytes"
	keyStack  = 0x6b63617473       // "stack"
	keyReason = 0x6e6f73616572     // "reason"
	keyParent = 0x746e65726170     // "parent"
	keyIfidx  = 0x7865646e696669   // "ifindex"
	keyDLen   = 0x6e656c5f61746164 // "data_len" (followed by '=' in the 9th byte)
)

const (
	bareCacheBits = 9
	swarOnes      = 0x0101010101010101
	swarHighs     = 0x8080808080808080
)

// load8 returns the 8 bytes of b at i as a little-endian integer; past the
// end of b the bytes are 0.
func load8(b []byte, i int) uint64 {
	if i+8 <= len(b) {
		return binary.LittleEndian.Uint64(b[i:])
	}
	var t [8]byte
	if i < len(b) {
		copy(t[:], b[i:])
	}
	return binary.LittleEndian.Uint64(t[:])
}

// bareEntry is a bare value met before: the string, its first 16 bytes as
// two integers (zero past its end), and for hook= its two halves.
type bareEntry struct {
	val, kind, name string
	w0, w1          uint64
}

// bareLookup returns the entry of the value cache for a value of key that
// starts at comment[vs], and whether it holds that value. Entries are found
// by the first 16 bytes from the value's start (whatever follows a shorter
// value counts too: it is mostly the same from event to event).
func (p *Parser) bareLookup(key uint64, comment []byte, vs int) (*bareEntry, bool) {
	w0, w1 := load8(comment, vs), load8(comment, vs+8)
	e := &p.bare[((w0*0x9e3779b97f4a7c15^w1*0xc2b2ae3d27d4eb4f^key)*0x165667b19e3779f9)>>(64-bareCacheBits)]
	n := len(e.val)
	if n == 0 || w0&lowBytes(n) != e.w0 || w1&lowBytes(n-8) != e.w1 {
		return e, false
	}
	end := vs + n
	if end > len(comment) || end < len(comment) && comment[end] != ' ' {
		return e, false
	}
	return e, n <= 16 || string(comment[vs+16:end]) == e.val[16:]
}

// set makes e hold val, a bare value, with the halves of a hook.
func (e *bareEntry) set(val, kind, name string) {
	*e = bareEntry{val: val, kind: kind, name: name}
	var b [16]byte
	copy(b[:], val)
	e.w0 = binary.LittleEndian.Uint64(b[:]) & lowBytes(len(val))
	e.w1 = binary.LittleEndian.Uint64(b[8:]) & lowBytes(len(val)-8)
}

// lowBytes is a mask of the n low bytes of an integer (all of them from 8,
// none below 1).
func lowBytes(n int) uint64 {
	switch {
	case n >= 8:
		return ^uint64(0)
	case n <= 0:
		return 0
	}
	return 1<<(8*n) - 1
}

// eqMask has the high bit set in the lowest byte of w equal to c (and
// possibly in higher bytes: only the lowest set bit is exact).
func eqMask(w uint64, c byte) uint64 {
	x := w ^ (swarOnes * uint64(c))
	return (x - swarOnes) &^ x & swarHighs
}

// bareEnd returns the index of the first byte at or after i that may not
// be in a bare value (a space, '"', 0x7f or a control byte), or len(b).
func bareEnd(b []byte, i int) int {
	for i+8 <= len(b) {
		w := binary.LittleEndian.Uint64(b[i:])
		// Bytes below 0x21 (space and control bytes); bytes with the
		// high bit set are excluded by &^ w.
		m := (w - swarOnes*0x21) &^ w & swarHighs
		m |= eqMask(w, '"') | eqMask(w, 0x7f)
		if m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
		i += 8
	}
	for i < len(b) && byteClass[b[i]]&classBare != 0 {
		i++
	}
	return i
}

// hexVal maps hex digits to their value and every other byte to 0xff.
var hexVal = func() (t [256]uint8) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = uint8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = uint8(c - 'a' + 10)
	}
	for c := 'A'; c <= 'F'; c++ {
		t[c] = uint8(c - 'A' + 10)
	}
	return t
}()

// nonDigits has the high bit set in every byte of w that is not a decimal
// digit.
func nonDigits(w uint64) uint64 {
	// A byte b below 0x80 is at least lo when b + 0x80 - lo has its
	// high bit set (no carry out of the byte).
	ge30 := w + swarOnes*(0x80-'0')
	ge3a := w + swarOnes*(0x80-'9'-1)
	return (w | ^(ge30 &^ ge3a)) & swarHighs
}

// digits8 reports whether the 8 bytes of w are all decimal digits.
func digits8(w uint64) bool { return nonDigits(w) == 0 }

// dec8 converts 8 decimal digits (digits8(w)), first digit in the low byte.
func dec8(w uint64) uint64 {
	w -= swarOnes * '0'
	w = (w*10 + w>>8) & 0x00ff00ff00ff00ff
	w = (w*100 + w>>16) & 0x0000ffff0000ffff
	return (w*10000 + w>>32) & 0xffffffff
}

// hex8 converts 8 hex digits, first digit in the low byte; ok is false
// when one of the bytes is not a hex digit.
func hex8(w uint64) (v uint64, ok bool) {
	if w&swarHighs != 0 {
		return 0, false
	}
	digit := (w + swarOnes*(0x80-'0')) &^ (w + swarOnes*(0x80-'9'-1))
	l := w | swarOnes*0x20 // lower case
	letter := (l + swarOnes*(0x80-'a')) &^ (l + swarOnes*(0x80-'f'-1))
	if (digit|letter)&swarHighs != swarHighs {
		return 0, false
	}
	// '0'-'9' are 0x3N, 'a'-'f' and 'A'-'F' 0x4N and 0x6N with N from 1.
	w = w&(swarOnes*0x0f) + (w>>6&swarOnes)*9
	w = (w<<4 | w>>8) & 0x00ff00ff00ff00ff
	w = (w<<8 | w>>16) & 0x0000ffff0000ffff
	return (w<<16 | w>>32) & 0xffffffff, true
}

// fastDec reads the decimal number at b[i:] that ends the value (at a space
// or the end of b). ok is false when there is none, it has more than 19
// digits, or the value goes on with another byte.
func fastDec(b []byte, i int) (v uint64, end int, ok bool) {
	j := i
	if i+8 <= len(b) && b[i+7]-'0' <= 9 {
		// Perhaps a long number: its first 8 digits at once.
		if w := binary.LittleEndian.Uint64(b[i:]); digits8(w) {
			v, j = dec8(w), i+8
		}
	}
	for j < len(b) {
		d := b[j] - '0'
		if d > 9 {
			break
		}
		v = v*10 + uint64(d)
		j++
	}
	if j == i || j-i > 19 || j < len(b) && b[j] != ' ' {
		return 0, 0, false
	}
	return v, j, true
}

// fastHex reads "0x" and up to 16 hex digits at b[i:] that end the value.
func fastHex(b []byte, i int) (v uint64, end int, ok bool) {
	if i+2 >= len(b) || b[i] != '0' || b[i+1] != 'x' {
		return 0, 0, false
	}
	j := i + 2
	if j+16 <= len(b) && (j+16 == len(b) || b[j+16] == ' ') {
		// Exactly 16 digits, as in every skb address.
		hi, ok1 := hex8(binary.LittleEndian.Uint64(b[j:]))
		lo, ok2 := hex8(binary.LittleEndian.Uint64(b[j+8:]))
		if ok1 && ok2 {
			return hi<<32 | lo, j + 16, true
		}
	}
	for j < len(b) {
		d := hexVal[b[j]]
		if d == 0xff {
			break
		}
		v = v<<4 | uint64(d)
		j++
	}
	if j == i+2 || j-i-2 > 16 || j < len(b) && b[j] != ' ' {
		return 0, 0, false
	}
	return v, j, true
}

// fastBare returns the end of the bare value at b[i:], which must not be
// empty, start with '"' or hold a byte a bare value may not.
func fastBare(b []byte, i int) (end int, ok bool) {
	j := bareEnd(b, i)
	if j == i || j < len(b) && b[j] != ' ' {
		// Empty, quoted, or a byte that is an error: the general
		// scanner says which.
		return 0, false
	}
	return j, true
}

// Keys of the fast path, in the order the recorder writes them.
const (
	kHook = iota
	kDev
	kNetNS
	kIfindex
	kSKB
	kLen
	kDataLen
	kProto
	kMark
	kHdr
	kBytes
	kParent
	kCPU
	kPID
	kTID
	kComm
	kReason
	kLoc
	kStack
	nFastKeys
)

// keyID returns the fast path's id of the key whose '=' is at byte klen
// of w, the key's bytes in the low bytes; nFastKeys when it has none.
func keyID(w uint64, klen int) int {
	switch w & (1<<(8*klen) - 1) {
	case keyHook:
		return kHook
	case keyDev:
		return kDev
	case keyNetNS:
		return kNetNS
	case keyIfidx:
		return kIfindex
	case keySKB:
		return kSKB
	case keyLen:
		return kLen
	case keyProto:
		return kProto
	case keyMark:
		return kMark
	case keyHdr:
		return kHdr
	case keyBytes:
		return kBytes
	case keyParent:
		return kParent
	case keyCPU:
		return kCPU
	case keyPID:
		return kPID
	case keyTID:
		return kTID
	case keyComm:
		return kComm
	case keyReason:
		return kReason
	case keyLoc:
		return kLoc
	case keyStack:
		return kStack
	}
	return nFastKeys
}

// fastKey is a key of the fast path with its '=': the bytes as an integer
// (the first 8 for data_len), a mask for them, and the length.
type fastKey struct {
	word, mask uint64
	len        int
}

var fastKeys = func() (t [nFastKeys]fastKey) {
	for id, k := range [nFastKeys]string{"hook=", "dev=", "netns=", "ifindex=", "skb=", "len=", "data_len=",
		"proto=", "mark=", "hdr=", "bytes=", "parent=", "cpu=", "pid=", "tid=", "comm=", "reason=", "loc=", "stack="} {
		var b [8]byte
		n := copy(b[:], k)
		t[id] = fastKey{binary.LittleEndian.Uint64(b[:]), 1<<(8*n) - 1, len(k)}
		if n == 8 {
			t[id].mask = ^uint64(0)
		}
	}
	return t
}()

// fastPair decodes the key=value pair that starts at comment[i] into e, if
// it can: it returns the index after the value (0 when the pair is left to
// the general scanner, e untouched) and whether the key was hook. The key
// is first taken to be the one that follows the previous pair's in the
// recorder's order (p.next), which it nearly always is.
func (p *Parser) fastPair(comment []byte, i int, e *Event) (end int, hook bool) {
	w := load8(comment, i)
	id := int(p.next)
	if id >= nFastKeys || w&fastKeys[id].mask != fastKeys[id].word ||
		id == kDataLen && (i+8 >= len(comment) || comment[i+8] != '=') {
		m := eqMask(w, '=')
		if m == 0 {
			if w != keyDLen || i+8 >= len(comment) || comment[i+8] != '=' {
				return 0, false
			}
			id = kDataLen
		} else {
			klen := bits.TrailingZeros64(m) / 8
			if klen == 0 {
				return 0, false
			}
			// The length too: a NUL in the key reads like the zero
			// padding of a shorter key ("dev\x00=" is not "dev=").
			if id = keyID(w, klen); id == nFastKeys || fastKeys[id].len != klen+1 {
				return 0, false
			}
		}
	}
	p.next = uint8(id + 1)
	switch id {
	case kHook:
		// Version 2 has no netns and ifindex, and dev only where the
		// interface's name does not say it.
		p.next = kSKB
	case kPID:
		// and tid only where it is not the pid.
		p.next = kComm
	}
	vs := i + fastKeys[id].len // the value's start
	switch id {
	case kHook:
		c, ok := p.bareLookup(keyHook, comment, vs)
		if ok && c.name != "" {
			e.Kind, e.Hook = c.kind, c.name
			return vs + len(c.val), true
		}
		j, ok := fastBare(comment, vs)
		if !ok {
			return 0, false
		}
		val := comment[vs:j]
		colon := -1
		for k, b := range val {
			if b == ':' {
				colon = k
				break
			}
		}
		if colon <= 0 || colon == len(val)-1 {
			return 0, false
		}
		e.Kind, e.Hook = p.intern(val[:colon]), p.intern(val[colon+1:])
		c.set(p.intern(val), e.Kind, e.Hook)
		return j, true
	case kDev, kComm, kLoc, kReason:
		var s string
		j := 0
		if c, ok := p.bareLookup(fastKeys[id].word, comment, vs); ok {
			s, j = c.val, vs+len(c.val)
		} else {
			var ok bool
			j, ok = fastBare(comment, vs)
			if !ok {
				return 0, false
			}
			s = p.intern(comment[vs:j])
			c.set(s, "", "")
		}
		switch id {
		case kDev:
			e.Dev = s
		case kComm:
			e.Comm = s
		case kLoc:
			e.Location = s
		default:
			e.Reason, e.HasDrop = s, true
		}
		return j, false
	case kNetNS, kIfindex, kLen, kDataLen, kCPU, kPID, kTID:
		v, j, ok := fastDec(comment, vs)
		if !ok || v > 0xffffffff {
			return 0, false
		}
		switch id {
		case kNetNS:
			e.NetNS = uint32(v)
		case kIfindex:
			e.Ifindex = uint32(v)
		case kLen:
			e.Len = uint32(v)
		case kDataLen:
			e.DataLen = uint32(v)
		case kCPU:
			e.CPU = uint32(v)
		case kPID:
			e.PID = uint32(v)
		default:
			e.TID = uint32(v)
			p.sawTID = true
		}
		return j, false
	case kSKB:
		v, j, ok := fastHex(comment, vs)
		if !ok {
			return 0, false
		}
		e.SKB = v
		return j, false
	case kProto:
		v, j, ok := fastHex(comment, vs)
		if !ok || v > 0xffff {
			return 0, false
		}
		e.Proto = uint16(v)
		return j, false
	case kMark:
		v, j, ok := fastHex(comment, vs)
		if !ok || v > 0xffffffff {
			return 0, false
		}
		e.Mark = uint32(v)
		return j, false
	case kParent:
		v, j, ok := fastDec(comment, vs)
		if !ok {
			return 0, false
		}
		e.Parent = v
		return j, false
	case kStack:
		if vs+4 <= len(comment) && string(comment[vs:vs+4]) == "lost" && (vs+4 == len(comment) || comment[vs+4] == ' ') {
			e.Stack, e.StackLost = 0, true
			return vs + 4, false
		}
		v, j, ok := fastDec(comment, vs)
		if !ok || v == 0 {
			return 0, false
		}
		e.Stack, e.StackLost = v, false
		return j, false
	case kHdr:
		j, ok := fastBare(comment, vs)
		if !ok {
			return 0, false
		}
		switch string(comment[vs:j]) {
		case "mac":
			e.Header = HeaderMAC
		case "net":
			e.Header = HeaderNetwork
		case "data":
			e.Header = HeaderData
		default:
			return 0, false
		}
		return j, false
	case kBytes:
		if vs+4 <= len(comment) && string(comment[vs:vs+4]) == "same" && (vs+4 == len(comment) || comment[vs+4] == ' ') {
			e.BytesSame = true
			return vs + 4, false
		}
		return 0, false
	}
	return 0, false
}
