package pcapng

import (
	"encoding/binary"
	"time"
)

// The fast path.
//
// Nearly every block of a capture file is an enhanced packet block (EPB)
// that is already in the read buffer, in a little-endian section, refers
// to an interface the section has described and carries a few well-formed
// options of fixed meaning (comments, epb_flags, epb_packetid, ...).
// next1 and its decoders handle every block, byte order and error, and
// pay for that on every packet: calls from stage to stage, a byte-order
// test on every integer, a reset of all the options, the generic option
// loop. readEnhancedFast decodes just the common case in one function,
// and gives up on anything else (another block type, a big-endian
// section, a block not wholly buffered, a hash, verdict, custom or unknown
// option, anything malformed) before it has moved the Reader, so that
// next1 then reads the same block as if the fast path did not exist, with
// the same result or error.
//
// Both paths must decode a block into exactly the same Packet:
// TestFastPathMatchesGeneral and FuzzFastPath compare them, with the fast
// path turned off by Reader.noFastPath.

// optionFields is a set of fields of PacketOptions, one bit per field or
// group of fields.
type optionFields uint8

const (
	optComments optionFields = 1 << iota
	optFlags
	optDropCount
	optPacketID
	optQueue
	optProcessID
	optOther // Hashes, Verdicts, Custom, Unknown: the general path's alone

	optAll = optComments | optFlags | optDropCount | optPacketID | optQueue | optProcessID | optOther
)

// clear empties the fields of o in set, except Comments, which the fast
// path empties before it decodes the options.
func (o *PacketOptions) clear(set optionFields) {
	if set&optFlags != 0 {
		o.Flags, o.HasFlags = 0, false
	}
	if set&optDropCount != 0 {
		o.DropCount, o.HasDropCount = 0, false
	}
	if set&optPacketID != 0 {
		o.PacketID, o.HasPacketID = 0, false
	}
	if set&optQueue != 0 {
		o.Queue, o.HasQueue = 0, false
	}
	if set&optProcessID != 0 {
		o.ProcessID, o.ThreadID, o.HasProcessID = 0, 0, false
	}
	if set&optOther != 0 {
		o.Hashes = o.Hashes[:0]
		o.Verdicts = o.Verdicts[:0]
		o.Custom = o.Custom[:0]
		o.Unknown = o.Unknown[:0]
	}
}

// readEnhancedFast decodes the next block if it is a common enhanced
// packet block, and reports whether it did. When it returns false the
// Reader has not moved. r.packet may then hold part of the block, which
// no caller sees: next1 reads the same block next, and either decodes
// it, overwriting all of r.packet, or fails, after which Packet returns
// nil.
func (r *Reader) readEnhancedFast() bool {
	if r.e.big || !r.ready || r.noFastPath {
		return false
	}
	le := binary.LittleEndian

	// The block: the checks of next1, in the order that lets the
	// compiler drop the bounds checks of what follows.
	buf := r.buf[r.start:r.end]
	if len(buf) < blockOverhead+20 || BlockType(le.Uint32(buf)) != BlockEnhancedPacket {
		return false
	}
	length := le.Uint32(buf[4:])
	// A multiple of 4, no larger than the limit and wholly buffered;
	// shorter than an EPB is left to next1 to report.
	if length%4 != 0 || length < blockOverhead+20 || uint64(length) > uint64(len(buf)) || length > r.maxBlock {
		return false
	}
	n := int(length)
	block := buf[:n]
	b := block[8 : n-4] // the body

	// The fixed part, as decodeEnhancedPacket reads it, straight into
	// r.packet: should the block turn out to be one for the general
	// path, that path overwrites all of it.
	id := le.Uint32(b)
	if uint64(id) >= uint64(len(r.interfaces)) {
		return false
	}
	caplen := le.Uint32(b[12:])
	if uint64(caplen) > uint64(len(b)-20) {
		return false
	}
	optStart := 20 + int((caplen+3)&^3)
	if optStart > len(b) {
		return false
	}
	ifc := &r.interfaces[id]
	p := &r.packet
	p.Type = BlockEnhancedPacket
	p.InterfaceID = id
	p.Interface = ifc
	raw := uint64(le.Uint32(b[4:]))<<32 | uint64(le.Uint32(b[8:]))
	p.TimestampRaw = raw
	if res := ifc.TSResolution; res.Exp == 9 && !res.Base2 {
		p.Timestamp = time.Unix(int64(raw/1e9)+ifc.TSOffset, int64(raw%1e9))
	} else {
		p.Timestamp = res.toTime(raw, ifc.TSOffset)
	}
	p.OriginalLength = le.Uint32(b[16:])
	p.Data = b[20 : 20+caplen]

	// The options, in one loop, straight into r.packet.Options. Rather
	// than resetting every field first, remember which ones this packet
	// sets (seen) and clear afterwards those the previous packet set and
	// this one did not.
	o := &p.Options
	o.Comments = o.Comments[:0]
	var seen optionFields
	opts := b[optStart:]
	for len(opts) > 0 {
		if len(opts) < 4 {
			// Stray bytes after the last option.
			return r.fastGiveUp()
		}
		h := le.Uint32(opts)
		code, vlen := uint16(h), int(h>>16)
		if code == OptEndOfOpt {
			break
		}
		if 4+vlen > len(opts) {
			return r.fastGiveUp()
		}
		val := opts[4 : 4+vlen]
		switch {
		case code == OptComment:
			o.Comments = append(o.Comments, val)
			seen |= optComments
		case code == OptEPBPacketID && vlen == 8:
			o.PacketID, o.HasPacketID = le.Uint64(val), true
			seen |= optPacketID
		case code == OptEPBFlags && vlen == 4:
			o.Flags, o.HasFlags = le.Uint32(val), true
			seen |= optFlags
		case code == OptEPBDropCount && vlen == 8:
			o.DropCount, o.HasDropCount = le.Uint64(val), true
			seen |= optDropCount
		case code == OptEPBQueue && vlen == 4:
			o.Queue, o.HasQueue = le.Uint32(val), true
			seen |= optQueue
		case code == OptEPBProcessIDThreadID && vlen == 8:
			o.ProcessID, o.ThreadID, o.HasProcessID = le.Uint32(val), le.Uint32(val[4:]), true
			seen |= optProcessID
		default:
			// An option of the wrong length, or one the fast path
			// does not decode.
			return r.fastGiveUp()
		}
		// The next option. Padding cut short by the end of the block
		// ends the options, as in the general path.
		opts = opts[min(4+(vlen+3)&^3, len(opts)):]
	}

	// The trailing length, checked last: by now the options have
	// brought its part of the block into the cache.
	if le.Uint32(block[n-4:]) != length {
		return r.fastGiveUp()
	}
	if stale := r.optionsSet &^ seen; stale != 0 {
		o.clear(stale)
	}
	r.optionsSet = seen

	// The Reader's position.
	r.typ = BlockEnhancedPacket
	r.offset = r.next
	r.next += int64(n)
	r.start += n
	r.body = b
	return true
}

// fastGiveUp is readEnhancedFast's way out once it has written to
// r.packet.Options: it returns false and records that the options may
// hold anything, so that the general path resets them all.
func (r *Reader) fastGiveUp() bool {
	r.optionsSet = optAll
	return false
}
