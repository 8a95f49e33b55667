// Package btfscan reads the type table of raw BTF without decoding it, to
// find the few types a caller needs among the kernel's ~100,000 before
// decoding only those (with cilium/ebpf's btf.Spec.TypeByID). Decoding
// every type of vmlinux takes 0.2 s on a fast host and seconds on a slow
// one; the scan takes a few milliseconds.
package btfscan

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Kinds of BTF types (include/uapi/linux/btf.h).
const (
	KindInt       = 1
	KindPtr       = 2
	KindArray     = 3
	KindStruct    = 4
	KindUnion     = 5
	KindEnum      = 6
	KindFwd       = 7
	KindTypedef   = 8
	KindVolatile  = 9
	KindConst     = 10
	KindRestrict  = 11
	KindFunc      = 12
	KindFuncProto = 13
	KindVar       = 14
	KindDatasec   = 15
	KindFloat     = 16
	KindDeclTag   = 17
	KindTypeTag   = 18
	KindEnum64    = 19
)

// ErrBadBTF means the data is not BTF this package can read.
var ErrBadBTF = errors.New("bad BTF")

// Table is the type table of one raw BTF blob (a base blob such as
// /sys/kernel/btf/vmlinux: type IDs start at 1).
type Table struct {
	bo      binary.ByteOrder
	types   []byte   // the type section
	strs    []byte   // the string section
	offsets []uint32 // offsets[id-1]: where type id starts in types
}

// Parse indexes the types of raw BTF. It checks every type's bounds, so
// that later lookups cannot read outside the data.
func Parse(raw []byte) (*Table, error) {
	if len(raw) < 24 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than a header", ErrBadBTF, len(raw))
	}
	var bo binary.ByteOrder
	switch {
	case binary.LittleEndian.Uint16(raw) == 0xeb9f:
		bo = binary.LittleEndian
	case binary.BigEndian.Uint16(raw) == 0xeb9f:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("%w: magic %#x", ErrBadBTF, binary.LittleEndian.Uint16(raw))
	}
	hdrLen := uint64(bo.Uint32(raw[4:]))
	typeOff, typeLen := uint64(bo.Uint32(raw[8:])), uint64(bo.Uint32(raw[12:]))
	strOff, strLen := uint64(bo.Uint32(raw[16:])), uint64(bo.Uint32(raw[20:]))
	size := uint64(len(raw))
	if hdrLen < 24 || hdrLen+typeOff+typeLen > size || hdrLen+strOff+strLen > size {
		return nil, fmt.Errorf("%w: sections outside the %d bytes", ErrBadBTF, size)
	}
	t := &Table{
		bo:    bo,
		types: raw[hdrLen+typeOff : hdrLen+typeOff+typeLen],
		strs:  raw[hdrLen+strOff : hdrLen+strOff+strLen],
	}
	for off := 0; off < len(t.types); {
		if len(t.types)-off < 12 {
			return nil, fmt.Errorf("%w: type %d at byte %d is cut short", ErrBadBTF, len(t.offsets)+1, off)
		}
		info := bo.Uint32(t.types[off+4:])
		vlen, kind := int(info&0xffff), int(info>>24&0x1f)
		var extra int
		switch kind {
		case KindInt, KindVar, KindDeclTag:
			extra = 4
		case KindArray:
			extra = 12
		case KindStruct, KindUnion, KindDatasec, KindEnum64:
			extra = 12 * vlen
		case KindEnum, KindFuncProto:
			extra = 8 * vlen
		case KindPtr, KindFwd, KindTypedef, KindVolatile, KindConst, KindRestrict,
			KindFunc, KindFloat, KindTypeTag:
		default:
			return nil, fmt.Errorf("%w: type %d has unknown kind %d", ErrBadBTF, len(t.offsets)+1, kind)
		}
		if 12+extra > len(t.types)-off {
			return nil, fmt.Errorf("%w: type %d at byte %d is cut short", ErrBadBTF, len(t.offsets)+1, off)
		}
		t.offsets = append(t.offsets, uint32(off))
		off += 12 + extra
	}
	return t, nil
}

// Len returns the number of types; their IDs are 1 to Len.
func (t *Table) Len() int { return len(t.offsets) }

// header returns the name offset, kind, vlen and size-or-type field of
// type id, which must be between 1 and Len.
func (t *Table) header(id uint32) (nameOff uint32, kind, vlen int, sizeType uint32) {
	b := t.types[t.offsets[id-1]:]
	info := t.bo.Uint32(b[4:])
	return t.bo.Uint32(b), int(info >> 24 & 0x1f), int(info & 0xffff), t.bo.Uint32(b[8:])
}

// Kind returns the kind of type id, or 0 for an id outside the table.
func (t *Table) Kind(id uint32) int {
	if id == 0 || int(id) > len(t.offsets) {
		return 0
	}
	_, kind, _, _ := t.header(id)
	return kind
}

// Name returns the name of type id ("" for an anonymous type or an id
// outside the table).
func (t *Table) Name(id uint32) string {
	if id == 0 || int(id) > len(t.offsets) {
		return ""
	}
	off, _, _, _ := t.header(id)
	return t.str(off)
}

func (t *Table) str(off uint32) string { return string(t.strBytes(off)) }

// strBytes returns the string at off in the string section, without its
// terminating zero.
func (t *Table) strBytes(off uint32) []byte {
	if int(off) >= len(t.strs) {
		return nil
	}
	s := t.strs[off:]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// nameBytes returns the name of type id, which must be in the table,
// without copying it.
func (t *Table) nameBytes(id uint32) []byte {
	off, _, _, _ := t.header(id)
	return t.strBytes(off)
}

// HasNamePrefix reports whether the name of type id starts with prefix.
func (t *Table) HasNamePrefix(id uint32, prefix string) bool {
	if id == 0 || int(id) > len(t.offsets) {
		return false
	}
	return bytes.HasPrefix(t.nameBytes(id), []byte(prefix))
}

// Ref returns the type that type id refers to (a pointer's target, a
// typedef's or qualifier's type, a function's prototype), or 0 for other
// kinds and ids outside the table.
func (t *Table) Ref(id uint32) uint32 {
	if id == 0 || int(id) > len(t.offsets) {
		return 0
	}
	_, kind, _, ref := t.header(id)
	switch kind {
	case KindPtr, KindTypedef, KindVolatile, KindConst, KindRestrict, KindTypeTag, KindFunc:
		return ref
	}
	return 0
}

// Params returns the parameter types of the function prototype id (nil
// for other kinds).
func (t *Table) Params(id uint32) []uint32 {
	if t.Kind(id) != KindFuncProto {
		return nil
	}
	_, _, vlen, _ := t.header(id)
	b := t.types[t.offsets[id-1]+12:]
	params := make([]uint32, vlen)
	for i := range params {
		params[i] = t.bo.Uint32(b[8*i+4:])
	}
	return params
}

// Underlying returns id with typedefs and qualifiers (const, volatile,
// restrict, type tags) looked through, following at most 32 of them.
func (t *Table) Underlying(id uint32) uint32 {
	for range 32 {
		switch t.Kind(id) {
		case KindTypedef, KindVolatile, KindConst, KindRestrict, KindTypeTag:
			id = t.Ref(id)
		default:
			return id
		}
	}
	return 0
}

// PointsToStruct reports whether type id is a pointer (through typedefs
// and qualifiers) to a struct called name (the pointer's target also
// through typedefs and qualifiers).
func (t *Table) PointsToStruct(id uint32, name string) bool {
	p := t.Underlying(id)
	if t.Kind(p) != KindPtr {
		return false
	}
	s := t.Underlying(t.Ref(p))
	return t.Kind(s) == KindStruct && string(t.nameBytes(s)) == name
}
