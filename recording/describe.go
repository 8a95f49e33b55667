package recording

import (
	"encoding/binary"
	"strconv"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/kmeta"
)

// Describer turns capture events into their kernel metadata: the one
// place where the fields of a capture.Event become the keys of the
// metadata comment (docs/FORMAT.md), for the file Writer and for record's
// line printer alike. It remembers the strings it made (process names,
// free locations), so that most events allocate nothing. It is not safe
// for concurrent use.
type Describer struct {
	names   DeviceNamer
	symbols Symbolizer

	comms     map[[16]byte]string
	recent    [16]recentComm // a direct-mapped cache of comms
	locations map[uint64]string
	loc       []byte
}

// recentComm is a slot of Describer.recent.
type recentComm struct {
	comm [16]byte
	s    string
	ok   bool
}

// cacheLimit bounds the string caches.
const cacheLimit = 1 << 14

// NewDescriber returns a Describer that names devices with names and free
// locations with symbols; either may be nil (no device names; locations
// in hex).
func NewDescriber(names DeviceNamer, symbols Symbolizer) *Describer {
	return &Describer{
		names:     names,
		symbols:   symbols,
		comms:     make(map[[16]byte]string),
		locations: make(map[uint64]string),
	}
}

// Describe fills m with the metadata of ev. The stack keys (stack,
// stack_err) are left zero: they depend on the stacks a recording has
// written before (Writer.WriteEvent sets them).
func (d *Describer) Describe(ev *capture.Event, m *kmeta.Event) {
	*m = kmeta.Event{
		Kind:    KindName(ev.Hook.Kind),
		Hook:    ev.Hook.Name,
		NetNS:   ev.NetNS,
		Ifindex: ev.Ifindex,
		SKB:     ev.SKB,
		Len:     ev.Len,
		DataLen: ev.DataLen,
		Proto:   ev.Protocol,
		PktType: ev.PktType,
		Mark:    ev.Mark,
		Header:  kmeta.HeaderStart(ev.Header),
		CPU:     ev.CPU,
		PID:     ev.PID,
		TID:     ev.TID,
		Comm:    d.comm(&ev.Comm),

		BytesSame: ev.BytesSame,
		Parent:    ev.Parent,
		RetVal:    ev.RetVal,
		HasRetVal: ev.HasRetVal,
		Skipped:   ev.SkippedBefore,
	}
	if p := ev.Hook.Prog; p != nil {
		m.ProgType, m.Prog, m.ProgID, m.ProgTag = p.Type, p.Name, p.ID, p.Tag
	}
	if ev.NF {
		describeNF(ev, m)
	}
	if ev.Ifindex != 0 && d.names != nil {
		if name, ok := d.names.DeviceName(ev.NetNS, ev.Ifindex); ok {
			m.Dev = name
		}
	}
	if ev.HasDrop {
		m.HasDrop = true
		m.Reason = ev.DropReasonName()
	}
	if ev.DropLocation != 0 {
		m.Location = d.location(ev.DropLocation)
	}
}

// comm returns the NUL-terminated task name in c.
func (d *Describer) comm(c *[16]byte) string {
	lo, hi := binary.LittleEndian.Uint64(c[:8]), binary.LittleEndian.Uint64(c[8:])
	slot := &d.recent[((lo^hi)*0x9e3779b97f4a7c15)>>(64-4)]
	if slot.ok && slot.comm == *c {
		return slot.s
	}
	if s, ok := d.comms[*c]; ok {
		slot.comm, slot.s, slot.ok = *c, s, true
		return s
	}
	n := 0
	for n < len(c) && c[n] != 0 {
		n++
	}
	s := string(c[:n])
	if len(d.comms) < cacheLimit {
		d.comms[*c] = s
	}
	return s
}

// location returns "function+0xoffset" for a code address, or the address
// in hex when it cannot be resolved.
func (d *Describer) location(addr uint64) string {
	if s, ok := d.locations[addr]; ok {
		return s
	}
	d.loc = d.loc[:0]
	ok := false
	if d.symbols != nil {
		d.loc, ok = d.symbols.AppendSymbol(d.loc, addr)
	}
	if !ok {
		d.loc = append(d.loc[:0], "0x"...)
		d.loc = strconv.AppendUint(d.loc, addr, 16)
	}
	s := string(d.loc)
	if len(d.locations) < cacheLimit {
		d.locations[addr] = s
	}
	return s
}

// describeNF fills m's netfilter keys from ev, an event at a netfilter
// hook: the hook and family where the kernel said, and at nft_do_chain's
// exit the base chain and its verdict.
func describeNF(ev *capture.Event, m *kmeta.Event) {
	const unknown = 0xff
	if ev.NFProto != unknown {
		m.NFFamily = kmeta.NFFamilyName(ev.NFProto)
		if ev.NFHook != unknown {
			m.NFHook = kmeta.NFHookName(ev.NFProto, ev.NFHook)
		}
	}
	if !ev.Hook.NFTChain {
		return
	}
	if ev.NFTFamily != 0 {
		m.NFTFamily = kmeta.NFFamilyName(ev.NFTFamily)
	}
	m.NFTTable, m.NFTChain = ev.NFTTable, ev.NFTChain
	if ev.HasRetVal {
		m.NFVerdict = kmeta.NFVerdictName(uint32(ev.RetVal))
	}
}
