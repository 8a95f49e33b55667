// Package paths rebuilds each packet's path through the kernel from the
// events of pathcap recordings: it groups events by tracking id, orders
// them in time, says what changed from hop to hop and classifies how the
// packet's journey ended. It streams: memory grows with the number of
// packets in flight within a time window, never with the size of the input.
// Package paths/render writes the results (text, JSON, the Wireshark path
// view, exports).
package paths

import (
	"net/netip"
	"strings"

	"github.com/pathcap/pathcap/kmeta"
)

// OutcomeKind is how a packet's path ended.
type OutcomeKind uint8

// Outcome kinds.
const (
	// Unknown: the packet was still in flight when the recording ended
	// (or went quiet for longer than the analysis window).
	Unknown OutcomeKind = iota
	// Delivered: the packet reached a socket (its data was copied to a
	// process, or it was freed after delivery).
	Delivered
	// Transmitted: the packet left on a device and was not seen again.
	Transmitted
	// Dropped: the kernel freed it with a drop reason (kfree_skb).
	Dropped
	// Consumed: the kernel freed it normally (consume_skb) without it
	// reaching a socket or leaving on a device, e.g. an ICMP echo request
	// answered by the kernel.
	Consumed
)

var outcomeNames = [...]string{"unknown", "delivered", "transmitted", "dropped", "consumed"}

// String returns the outcome's name: "unknown", "delivered",
// "transmitted", "dropped" or "consumed".
func (k OutcomeKind) String() string {
	if int(k) < len(outcomeNames) {
		return outcomeNames[k]
	}
	return "unknown"
}

// ParseOutcome returns the kind named s.
func ParseOutcome(s string) (OutcomeKind, bool) {
	for i, n := range outcomeNames {
		if n == s {
			return OutcomeKind(i), true
		}
	}
	return 0, false
}

// Outcome is how and where a packet's path ended.
type Outcome struct {
	Kind OutcomeKind
	// Reason is the drop reason (Dropped only), e.g. "NO_SOCKET".
	Reason string
	// Location is where the packet was freed, "function+0xoffset", when
	// the recording knows it.
	Location string
	// Hook is the hook of the hop that decided the outcome.
	Hook string
	// Dev and NetNS are where that hop happened.
	Dev   string
	NetNS uint32
	// Stack is that hop's kernel stack (nil when none was recorded);
	// StackLost reports that one was asked for but lost.
	Stack     *Stack
	StackLost bool

	// Socket is the kind of socket a delivered packet reached ("raw",
	// "UDP", "ICMP", "TCP", "packet", "unix"), and Process the name of the
	// task whose read copied it, where the path shows them.
	Socket  string
	Process string
	// Clone is the id of the clone that decided the outcome, 0 when the
	// packet's own skb did: a packet whose own skb was freed (dropped or
	// consumed) while a clone of it reached a socket was delivered, as
	// ping's echo replies reach its raw socket. OwnKind, OwnReason and
	// OwnLocation then say what became of the packet's own skb.
	Clone       uint64
	OwnKind     OutcomeKind
	OwnReason   string
	OwnLocation string
	// Program is the traced BPF program (record --trace-tc) whose verdict
	// decided the outcome, ProgType its kind (kmeta.ProgTC) and Verdict
	// its return value by name: a Dropped packet a tc program shot
	// (TC_ACT_SHOT; the kernel's free says TC_INGRESS or TC_EGRESS), or
	// one it redirected (TC_ACT_REDIRECT). Empty otherwise.
	Program  string
	ProgType string
	Verdict  string
	// NFTFamily, NFTTable and NFTChain name the nftables base chain whose
	// drop verdict came last before a Dropped packet's skb was freed
	// (record with a function backend hooks nft_do_chain's exit): the
	// table's family and name, and the chain. NFFamily and NFHook name the
	// netfilter hook where it dropped ("ip", "input"), also without
	// nftables (nf_hook_slow's events). Empty otherwise. They only say
	// who: the kernel's free of the skb says dropped.
	NFTFamily string
	NFTTable  string
	NFTChain  string
	NFFamily  string
	NFHook    string
	// Why says, for Unknown, why the recording does not show the fate:
	// the recording ended while the packet was in flight, events were
	// lost, or no hook saw it after its last hop.
	Why string
}

// CloneOutcome is the outcome of one of a packet's clones.
type CloneOutcome struct {
	ID      uint64
	Outcome Outcome
}

// decides reports whether a clone's outcome o may be the packet's: any
// but a delivery to a packet socket, which taps a copy.
func (o *Outcome) decides() bool {
	return !(o.Kind == Delivered && o.Socket == "packet")
}

// Function returns the function part of Location ("ping_rcv" of
// "ping_rcv+0xab"), without a module suffix.
func (o *Outcome) Function() string {
	return LocationFunction(o.Location)
}

// LocationFunction returns the function name of a "function+0xoffset
// [module]" location.
func LocationFunction(loc string) string {
	if i := strings.IndexAny(loc, "+ "); i >= 0 {
		return loc[:i]
	}
	return loc
}

// Change is a set of things that changed between two consecutive hops.
type Change uint16

// What can change between hops.
const (
	ChangedDev Change = 1 << iota
	ChangedNetNS
	ChangedLen
	// ChangedAddr: source or destination address differs with the same
	// protocols (network address translation).
	ChangedAddr
	// ChangedPort: a source or destination port differs.
	ChangedPort
	// ChangedProto: the network or transport protocol differs
	// (encapsulation or decapsulation).
	ChangedProto
	ChangedMark
)

var changeNames = [...]string{"dev", "netns", "len", "addr", "port", "proto", "mark"}

// Names returns the names of the changes, e.g. ["dev", "netns"].
func (c Change) Names() []string {
	var out []string
	for i, n := range changeNames {
		if c&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// String returns the names joined by commas.
func (c Change) String() string { return string(c.AppendNames(nil, ",")) }

// AppendNames appends the names of the changes, separated by sep.
func (c Change) AppendNames(b []byte, sep string) []byte {
	first := true
	for i, n := range changeNames {
		if c&(1<<i) != 0 {
			if !first {
				b = append(b, sep...)
			}
			first = false
			b = append(b, n...)
		}
	}
	return b
}

// Flow is the addresses, ports and protocols parsed from a hop's bytes.
type Flow struct {
	EtherType uint16
	Proto     uint8 // IP protocol (after IPv6 extension headers)
	Src, Dst  netip.Addr
	SrcPort   uint16
	DstPort   uint16
	HasPorts  bool
}

// Hop is one event on a packet's path.
type Hop struct {
	// Time is the event's time in nanoseconds since the epoch.
	Time int64
	// Meta is the kernel metadata (Meta.Hook is empty for packets of
	// captures without pathcap metadata). It may be shared with other
	// hops (equal comments give the same Event): read only, never nil in
	// the hops of an Analyzer's packets, and like the Packet it is reused
	// once the Analyzer's callback returns (a copy of a hop kept longer
	// needs a copy of its Meta).
	Meta *kmeta.Event
	// NSName is the network namespace's name as the recording's
	// interface description gives it ("" if unknown).
	NSName string
	// CapLen and OrigLen are the captured and original lengths.
	CapLen  uint32
	OrigLen uint32
	// Flow is parsed from the packet bytes.
	Flow Flow
	// Changed says what differs from the previous hop.
	Changed Change
	// Frame is the event's frame number in its file (from 1), File the
	// index of the file among the inputs.
	Frame int64
	File  int
	// Lost is epb_dropcount: events lost just before this one.
	Lost uint64
	// Stack is the kernel stack recorded with the event, nil when none
	// was (or its frames are not in the input). Meta.Stack is its number,
	// Meta.StackLost says the kernel could not capture it.
	Stack *Stack
}

// Packet is one packet's path.
type Packet struct {
	// ID is the tracking id (epb_packetid), or for captures without ids a
	// number given by the analyzer.
	ID uint64
	// Parent is the id of the packet this one was cloned from (0: none);
	// Children are the ids of clones seen while this packet was open.
	Parent   uint64
	Children []uint64
	// Clones are the outcomes of the clones that completed while this
	// packet was open; Finish lets them decide the packet's outcome when
	// its own skb was not delivered (see Outcome.Clone).
	Clones []CloneOutcome
	// Attached reports a clone of a packet of the same recording that was
	// still open when the clone appeared: its fate is part of that
	// packet's outcome, and statistics count it among clones, not packets.
	Attached bool
	Hops     []Hop
	Outcome  Outcome
	// Data is the packet's bytes as first seen (only kept when
	// Options.KeepData is set).
	Data []byte
	// Truncated reports that the packet hit Options.MaxHops: later hops
	// were counted but not kept.
	Truncated bool
	// Dropped events counts hops beyond MaxHops.
	DroppedHops int
	// HasMeta reports that the packet's events carry pathcap metadata.
	HasMeta bool
	// FilterMatched reports that Options.Filter accepted one of its hops.
	FilterMatched bool
}

// Start returns the time of the first hop (ns since the epoch).
func (p *Packet) Start() int64 {
	if len(p.Hops) == 0 {
		return 0
	}
	return p.Hops[0].Time
}

// Duration returns the time from the first to the last hop in ns.
func (p *Packet) Duration() int64 {
	if len(p.Hops) == 0 {
		return 0
	}
	return p.Hops[len(p.Hops)-1].Time - p.Hops[0].Time
}

// PathString returns the hook names joined by ">".
func (p *Packet) PathString() string {
	return string(p.AppendPath(nil))
}

// AppendPath appends PathString().
func (p *Packet) AppendPath(b []byte) []byte {
	for i := range p.Hops {
		if i > 0 {
			b = append(b, '>')
		}
		b = append(b, p.Hops[i].HookName()...)
	}
	return b
}

// HookName returns the hop's hook name; kmeta.KindCapture for events
// without pathcap metadata.
func (h *Hop) HookName() string {
	if h.Meta.Hook == "" {
		return kmeta.KindCapture
	}
	return h.Meta.Hook
}

// Label returns the hop's hook as "KIND:NAME" (kmeta.HookLabel);
// kmeta.KindCapture for events without pathcap metadata.
func (h *Hop) Label() string { return string(h.AppendLabel(nil)) }

// AppendLabel appends Label().
func (h *Hop) AppendLabel(b []byte) []byte {
	if h.Meta.Hook == "" {
		return append(b, kmeta.KindCapture...)
	}
	return kmeta.AppendHookLabel(b, h.Meta.Kind, h.Meta.Hook)
}

// Len returns the packet's length at the hop: skb->len from the metadata,
// or the original length of a frame without metadata.
func (h *Hop) Len() uint32 {
	if h.Meta.Hook == "" {
		return h.OrigLen
	}
	return h.Meta.Len
}
