package capture

import (
	"bytes"
	"fmt"
	"math/bits"
	"time"
	"unsafe"

	"github.com/pathcap/pathcap/bpf"
)

// Header says where in the packet an [Event]'s bytes start.
type Header uint8

const (
	// HeaderMAC means the bytes start at the Ethernet header.
	HeaderMAC Header = iota
	// HeaderNetwork means the bytes start at the network (IP) header: the
	// skb had no usable link-layer header at this hook.
	HeaderNetwork
	// HeaderData means the bytes start at skb->data, with no header known
	// to be there (e.g. a transport-layer skb being built).
	HeaderData
)

// String returns the header's name.
func (h Header) String() string {
	switch h {
	case HeaderMAC:
		return "mac"
	case HeaderNetwork:
		return "network"
	case HeaderData:
		return "data"
	default:
		return fmt.Sprintf("Header(%d)", uint8(h))
	}
}

// Bits of the record's flags field; they mirror FLAG_* in bpf/skb.c.
const (
	flagHasDrop = 1 << iota
	flagHasDev
	flagHasRet
	flagHasStack
	flagHasNF
	flagBytesSame
)

// recordSize is the size of the fixed part of a ring buffer record; the
// stack (when stacks are recorded) and the packet bytes follow it.
const recordSize = int(unsafe.Sizeof(bpf.SkbEvent{}))

// Event is one hook hit. The [Recorder] reuses one Event for all calls of
// its callback: copy what must outlive the call.
type Event struct {
	// Hook is the hook that fired, an entry of [Recorder.Hooks].
	Hook *Hook
	// Time is when the hook fired, on the wall clock.
	Time time.Time
	// CPU is the CPU the hook ran on.
	CPU uint32
	// PID and TID identify the task that was current when the hook fired:
	// in softirq context that is whichever task was interrupted.
	PID, TID uint32
	// Comm is that task's command name, NUL-padded; see [Event.CommString].
	Comm [16]byte
	// SKB is the address of the struct sk_buff.
	SKB uint64
	// PacketID identifies the packet: the same at every hook that sees
	// the same skb from its first sighting until it is freed.
	PacketID uint64
	// NetNS is the inode number of the device's network namespace (or the
	// socket's, if the skb has no device), 0 if unknown.
	NetNS uint32
	// Ifindex is the device's index in NetNS (skb->skb_iif if the skb has no
	// device), 0 if unknown.
	Ifindex uint32
	// HasDev reports that the skb had a device at this hook.
	HasDev bool
	// Mark is skb->mark.
	Mark uint32
	// Protocol is skb->protocol, an EtherType in host byte order.
	Protocol uint16
	// PktType is skb->pkt_type (PACKET_HOST, PACKET_OUTGOING, ...).
	PktType uint8
	// DevType is the device's ARPHRD_* type, 0 if there is no device.
	DevType uint16
	// Header says where Data starts.
	Header Header
	// Len is skb->len, the packet's length from skb->data.
	Len uint32
	// DataLen is skb->data_len, the part of Len outside the linear area
	// (and so never in Data).
	DataLen uint32
	// HasDrop reports that the hook reports a drop reason.
	HasDrop bool
	// DropReason is the raw enum skb_drop_reason; see
	// [Event.DropReasonName].
	DropReason uint32
	// DropLocation is the kernel code address that freed the skb, 0 if
	// the hook does not say.
	DropLocation uint64
	// Data is up to the snap length of linear packet bytes, starting at
	// Header. It is a copy of the ring buffer record's bytes, in a buffer
	// that the Recorder reuses for the next event: valid only during the
	// callback.
	Data []byte
	// BytesSame reports an event without bytes (Data is empty) because
	// they are those of the previous event of the same PacketID that had
	// any (Config.BytesChanged). Data empty without it means the event
	// has no bytes at all.
	BytesSame bool
	// LostBefore is the number of events lost on this CPU (the ring buffer
	// was full) since the previous event delivered from this CPU.
	LostBefore uint64
	// SkippedBefore is the number of hits this CPU did not record because
	// Config.MaxRate was reached (the in-kernel budget) since the previous
	// event delivered from this CPU.
	SkippedBefore uint64
	// Stack is the kernel call chain at the hook when Config.Stack is set:
	// return addresses, innermost first, starting at the function that
	// fired the hook (the frames of the BPF program and of the tracing
	// glue that called it are left out). It aliases Recorder state and is
	// valid only during the callback. Nil when stacks are not recorded or
	// this one was lost.
	Stack []uint64
	// StackLost reports that a stack was asked for but could not be
	// captured for this event; StackErr is then the kernel's error number
	// (a positive errno, e.g. 14 for EFAULT), or 0 if the kernel returned
	// an empty stack.
	StackLost bool
	StackErr  int32
	// Parent is the packet id of the packet this one is a clone or copy
	// of (skb_clone, skb_copy, pskb_copy, skb_copy_expand), 0 if none.
	// Only events at the exit of those functions carry it; the clone's
	// later events carry its own PacketID.
	Parent uint64
	// RetVal is the function's return value at a function exit hook
	// (fexit, and the return probes of clone functions), sign-extended
	// from the function's return type; HasRetVal reports that it is set.
	RetVal    int64
	HasRetVal bool
	// NF reports an event at a netfilter hook (Hook.NFState,
	// Hook.NFTChain): NFHook is the hook's number (enum nf_inet_hooks
	// and the like, see kmeta.NFHookName) and NFProto its protocol family
	// (NFPROTO_*), each 0xff where the kernel did not say.
	NF      bool
	NFHook  uint8
	NFProto uint8
	// NFTFamily, NFTTable and NFTChain name the nftables base chain at
	// nft_do_chain's exit (Hook.NFTChain; its verdict is RetVal): the
	// table's family (NFPROTO_*) and name, and the chain's name. Empty
	// where record could not read them (audit-safe mode).
	NFTFamily uint8
	NFTTable  string
	NFTChain  string

	reasons *DropReasons
	// nftChain and nftHandle are the base chain's address and handle
	// (low bits) at nft_do_chain's exit, for the Recorder to name it.
	nftChain  uint64
	nftHandle uint32
}

// CommString returns Comm up to its first NUL byte.
func (e *Event) CommString() string {
	n := bytes.IndexByte(e.Comm[:], 0)
	if n < 0 {
		n = len(e.Comm)
	}
	return string(e.Comm[:n])
}

// DropReasonName returns the name of DropReason without the
// SKB_DROP_REASON_ prefix, e.g. "NO_SOCKET", or "" if the event has no
// drop reason.
func (e *Event) DropReasonName() string {
	if !e.HasDrop {
		return ""
	}
	return e.reasons.Name(e.DropReason)
}

// errShortRecord reports a ring buffer record too short for its contents.
type errShortRecord struct{ got, want int }

func (e errShortRecord) Error() string {
	return fmt.Sprintf("short record: %d bytes, want %d", e.got, e.want)
}

// decode fills e from raw, a copy of a ring buffer record whose stack area
// is stackBytes long. e.Data aliases raw. Fields that need recorder state
// (Hook, Time, LostBefore, Stack, RetVal) are left to the caller.
func (e *Event) decode(raw []byte, rec *bpf.SkbEvent, stackBytes int) error {
	if len(raw) < recordSize {
		return errShortRecord{len(raw), recordSize}
	}
	// The record is the C struct event, in host byte order; copy it out
	// rather than alias it, so alignment of raw does not matter.
	*rec = *(*bpf.SkbEvent)(unsafe.Pointer(unsafe.SliceData(raw)))
	start := recordSize + stackBytes
	end := start + int(rec.Caplen)
	if len(raw) < end {
		return errShortRecord{len(raw), end}
	}
	e.CPU = rec.Cpu
	e.PID = rec.Pid
	e.TID = rec.Tid
	for i, c := range rec.Comm {
		e.Comm[i] = byte(c)
	}
	e.SKB = rec.Skb
	e.PacketID = rec.PacketId
	e.NetNS = rec.Netns
	e.Ifindex = rec.Ifindex
	e.HasDev = rec.Flags&flagHasDev != 0
	e.Mark = rec.Mark
	e.Protocol = bits.ReverseBytes16(rec.Protocol)
	e.PktType = rec.PktType
	e.DevType = rec.DevType
	e.Header = Header(rec.Header)
	e.Len = rec.Len
	e.DataLen = rec.DataLen
	e.HasDrop = rec.Flags&flagHasDrop != 0
	e.DropReason = rec.DropReason
	e.DropLocation = rec.DropLocation
	e.Parent = rec.Parent
	e.HasRetVal = rec.Flags&flagHasRet != 0
	e.NF, e.NFHook, e.NFProto = false, 0, 0
	e.NFTFamily, e.NFTTable, e.NFTChain = 0, "", ""
	e.nftChain, e.nftHandle = 0, 0
	if rec.Flags&flagHasNF != 0 {
		// The drop fields carry the base chain at netfilter hooks.
		e.NF, e.NFHook, e.NFProto = true, rec.NfHook, rec.NfPf
		e.nftChain, e.nftHandle = rec.DropLocation, rec.DropReason
		e.DropLocation, e.DropReason, e.HasDrop = 0, 0, false
	}
	e.BytesSame = rec.Flags&flagBytesSame != 0
	e.Data = raw[start:end:end]
	return nil
}
