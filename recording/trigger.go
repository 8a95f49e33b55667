package recording

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/pcapfilter"
)

// Trigger is a condition on events, for a flight recording that ends a
// while after something happens (record --stop-on). Every condition that
// is set must hold.
type Trigger struct {
	// Reason is a drop reason name without its SKB_DROP_REASON_ prefix
	// (NETFILTER_DROP); set, it matches drops only.
	Reason string
	// Hook is a hook or kernel function name (kfree_skb, ip_rcv).
	Hook string
	// Dev is a device name, NetNS a network namespace inode.
	Dev   string
	NetNS uint32
	// Expr is a tcpdump expression the packet's bytes must match, as they
	// are written to the file (Ethernet frames).
	Expr  string
	match *pcapfilter.Matcher
	frame []byte
	// With Expr: the last bytes of each packet id, for the events without
	// bytes of their own (capture.Event.BytesSame), in two generations:
	// an id not seen for two is forgotten.
	last, older map[uint64][]byte
}

// triggerGeneration is how many packet ids a Trigger keeps bytes for
// before it starts a new generation.
const triggerGeneration = 1 << 14

// carry returns the bytes ev stands for: its own, or for an event with
// BytesSame those of the previous event of its packet that had any; it
// remembers them for the next.
func (t *Trigger) carry(ev *capture.Event) []byte {
	id := ev.PacketID
	if ev.BytesSame {
		b, ok := t.last[id]
		if !ok {
			b = t.older[id]
		}
		if ev.Hook != nil && ev.Hook.Frees {
			// The skb is gone: its id is not used again (b stays
			// valid: delete drops the map's reference only).
			delete(t.last, id)
			delete(t.older, id)
		}
		return b
	}
	if len(ev.Data) == 0 {
		return ev.Data
	}
	if t.last == nil || len(t.last) >= triggerGeneration {
		t.older, t.last = t.last, make(map[uint64][]byte)
	}
	b := t.last[id]
	if b == nil {
		b = t.older[id]
		delete(t.older, id)
	}
	b = append(b[:0], ev.Data...)
	if ev.Hook != nil && ev.Hook.Frees {
		// The skb is gone: its id is not used again.
		delete(t.last, id)
		return b
	}
	t.last[id] = b
	return b
}

// ParseTrigger parses a trigger: comma-separated key=value conditions
// with the keys reason, hook, dev and netns, and last, optionally,
// filter=EXPR, a tcpdump expression that takes the rest of the string
// (commas included). Example: "reason=NO_SOCKET,dev=eth0,filter=udp port 53".
func ParseTrigger(s string, snaplen int) (*Trigger, error) {
	t := &Trigger{}
	rest := strings.TrimSpace(s)
	if rest == "" {
		return nil, fmt.Errorf("empty trigger (want key=value conditions: reason, hook, dev, netns, filter)")
	}
	for rest != "" {
		if strings.HasPrefix(rest, "filter=") {
			t.Expr = strings.TrimSpace(strings.TrimPrefix(rest, "filter="))
			if t.Expr == "" {
				return nil, fmt.Errorf("trigger %q: empty filter=", s)
			}
			break
		}
		var cond string
		cond, rest, _ = strings.Cut(rest, ",")
		rest = strings.TrimSpace(rest)
		key, val, ok := strings.Cut(strings.TrimSpace(cond), "=")
		if !ok || val == "" {
			return nil, fmt.Errorf("trigger %q: %q is not key=value", s, cond)
		}
		switch key {
		case "reason":
			t.Reason = strings.TrimPrefix(strings.ToUpper(val), "SKB_DROP_REASON_")
		case "hook":
			t.Hook = strings.TrimPrefix(strings.TrimPrefix(val, "tp:"), "func:")
		case "dev":
			t.Dev = val
		case "netns":
			n, err := strconv.ParseUint(val, 10, 32)
			if err != nil || n == 0 {
				return nil, fmt.Errorf("trigger %q: netns %q is not a namespace inode number", s, val)
			}
			t.NetNS = uint32(n)
		default:
			return nil, fmt.Errorf("trigger %q: unknown key %q (want reason, hook, dev, netns or filter)", s, key)
		}
	}
	if t.Expr != "" {
		prog, err := pcapfilter.Compile(t.Expr, pcapfilter.LinkTypeEthernet, snaplen+ethHeaderLen)
		if err != nil {
			return nil, fmt.Errorf("trigger %q: %w", s, err)
		}
		if t.match, err = pcapfilter.NewMatcher(prog); err != nil {
			return nil, fmt.Errorf("trigger %q: %w", s, err)
		}
	}
	return t, nil
}

// String returns the trigger in ParseTrigger's syntax.
func (t *Trigger) String() string {
	var parts []string
	if t.Reason != "" {
		parts = append(parts, "reason="+t.Reason)
	}
	if t.Hook != "" {
		parts = append(parts, "hook="+t.Hook)
	}
	if t.Dev != "" {
		parts = append(parts, "dev="+t.Dev)
	}
	if t.NetNS != 0 {
		parts = append(parts, "netns="+strconv.FormatUint(uint64(t.NetNS), 10))
	}
	if t.Expr != "" {
		parts = append(parts, "filter="+t.Expr)
	}
	return strings.Join(parts, ",")
}

// Match reports whether ev meets every condition of t; names resolves
// device names (nil: a dev condition never holds). It is not safe for
// concurrent use.
func (t *Trigger) Match(ev *capture.Event, names DeviceNamer) bool {
	var data []byte
	if t.match != nil {
		// Before any condition can return: every event's bytes count.
		data = t.carry(ev)
	}
	if t.Reason != "" && (!ev.HasDrop || ev.DropReasonName() != t.Reason) {
		return false
	}
	if t.Hook != "" && ev.Hook.Name != t.Hook {
		return false
	}
	if t.NetNS != 0 && ev.NetNS != t.NetNS {
		return false
	}
	if t.Dev != "" {
		if names == nil || ev.Ifindex == 0 {
			return false
		}
		name, ok := names.DeviceName(ev.NetNS, ev.Ifindex)
		if !ok || name != t.Dev {
			return false
		}
	}
	if t.match != nil {
		if ev.Header != capture.HeaderMAC {
			// The frame as the file has it: a synthesized Ethernet header.
			t.frame = append(t.frame[:0], make([]byte, 12)...)
			t.frame = binary.BigEndian.AppendUint16(t.frame, ev.Protocol)
			data = append(t.frame, data...)
			t.frame = data
		}
		if !t.match.Match(data) {
			return false
		}
	}
	return true
}
