package render

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/paths"
	"github.com/pathcap/pathcap/pcapng"
)

// ViewWriter writes the "path view": a pcap-ng file with one frame per
// packet (its bytes as first seen) whose comments tell its whole path: one
// "pathcap-path/1" summary comment, then one "pathcap-hop/1" comment per hop
// (docs/FORMAT.md). The packet's tracking id is kept in epb_packetid.
// Packets need Options.KeepData.
type ViewWriter struct {
	w      *pcapng.Writer
	ifaces map[ifaceKey]uint32
	pkt    pcapng.Packet
	bufs   [][]byte
}

type ifaceKey struct {
	dev   string
	netns uint32
}

// NewViewWriter writes the section header and returns a ViewWriter.
func NewViewWriter(w io.Writer, application string) (*ViewWriter, error) {
	pw, err := pcapng.NewWriterSize(w, &pcapng.Section{
		UserApplication: application,
		Comments:        []string{"pathcap path view: one frame per packet, its path in the comments"},
	}, 256<<10)
	if err != nil {
		return nil, err
	}
	return &ViewWriter{w: pw, ifaces: make(map[ifaceKey]uint32)}, nil
}

// Write writes one packet.
func (v *ViewWriter) Write(p *paths.Packet) error {
	if len(p.Hops) == 0 {
		return nil
	}
	first := &p.Hops[0]
	key := ifaceKey{first.Meta.Dev, first.Meta.NetNS}
	id, ok := v.ifaces[key]
	if !ok {
		name := key.dev
		if name == "" {
			name = "nodev"
		}
		desc := "netns " + strconv.FormatUint(uint64(key.netns), 10)
		if first.NSName != "" {
			desc += " (" + first.NSName + ")"
		}
		var err error
		id, err = v.w.AddInterface(&pcapng.Interface{
			LinkType:     pcapng.LinkTypeEthernet,
			SnapLen:      0,
			Name:         name,
			Description:  desc + " (where the packet was first seen)",
			TSResolution: pcapng.Nanoseconds,
		})
		if err != nil {
			return err
		}
		v.ifaces[key] = id
	}
	v.bufs = v.bufs[:0]
	v.bufs = append(v.bufs, appendPathComment(nil, p))
	t0 := first.Time
	for i := range p.Hops {
		v.bufs = append(v.bufs, appendHopComment(nil, p, i, t0))
	}
	data := p.Data
	if len(data) > pcapng.MaxCaptureLength {
		data = data[:pcapng.MaxCaptureLength]
	}
	orig := first.OrigLen
	if orig < uint32(len(data)) {
		orig = uint32(len(data))
	}
	v.pkt = pcapng.Packet{
		InterfaceID:    id,
		Timestamp:      time.Unix(0, t0),
		Data:           data,
		OriginalLength: orig,
		Options: pcapng.PacketOptions{
			Comments:    v.bufs,
			PacketID:    p.ID,
			HasPacketID: true,
		},
	}
	if err := v.w.WritePacket(&v.pkt); err != nil {
		return fmt.Errorf("write packet %d: %w", p.ID, err)
	}
	return nil
}

// Close flushes the file (it does not close the underlying writer).
func (v *ViewWriter) Close() error { return v.w.Flush() }

func appendKV(b []byte, key, val string) []byte { return kmeta.AppendPair(b, key, val) }

func appendPathComment(b []byte, p *paths.Packet) []byte {
	b = append(b, kmeta.PathPrefix...)
	b = appendKV(b, "id", strconv.FormatUint(p.ID, 10))
	b = appendKV(b, "outcome", p.Outcome.Kind.String())
	if p.Outcome.Reason != "" {
		b = appendKV(b, "reason", p.Outcome.Reason)
	}
	if p.Outcome.Location != "" {
		b = appendKV(b, "loc", p.Outcome.Location)
	}
	if p.Outcome.Dev != "" {
		b = appendKV(b, "dev", p.Outcome.Dev)
	}
	if p.Outcome.Socket != "" {
		b = appendKV(b, "socket", p.Outcome.Socket)
	}
	if p.Outcome.Process != "" {
		b = appendKV(b, "process", p.Outcome.Process)
	}
	if p.Outcome.Program != "" {
		b = appendKV(b, "program", p.Outcome.Program)
		b = appendKV(b, "program_type", p.Outcome.ProgType)
		b = appendKV(b, "verdict", p.Outcome.Verdict)
	}
	if o := &p.Outcome; o.NFHook != "" {
		b = appendKV(b, "nf_hook", joinNonEmpty(o.NFFamily, o.NFHook))
	}
	if o := &p.Outcome; o.NFTChain != "" || o.NFTTable != "" {
		b = appendKV(b, "nft_chain", joinNonEmpty(o.NFTFamily, o.NFTTable, o.NFTChain))
	}
	if p.Outcome.Clone != 0 {
		b = appendKV(b, "via_clone", strconv.FormatUint(p.Outcome.Clone, 10))
		b = appendKV(b, "own", p.Outcome.OwnKind.String())
		if p.Outcome.OwnReason != "" {
			b = appendKV(b, "own_reason", p.Outcome.OwnReason)
		}
	}
	b = appendKV(b, "hops", strconv.Itoa(len(p.Hops)+p.DroppedHops))
	b = appendKV(b, "duration_ns", strconv.FormatInt(p.Duration(), 10))
	if p.Parent != 0 {
		b = appendKV(b, "parent", strconv.FormatUint(p.Parent, 10))
	}
	return appendKV(b, "path", p.PathString())
}

func appendHopComment(b []byte, p *paths.Packet, i int, t0 int64) []byte {
	h := &p.Hops[i]
	b = append(b, kmeta.HopPrefix...)
	b = appendKV(b, "n", strconv.Itoa(i+1))
	b = appendKV(b, "dt_ns", strconv.FormatInt(h.Time-t0, 10))
	b = appendKV(b, "hook", h.Label())
	if h.Meta.Dev != "" {
		b = appendKV(b, "dev", h.Meta.Dev)
	}
	b = appendKV(b, "netns", strconv.FormatUint(uint64(h.Meta.NetNS), 10))
	b = appendKV(b, "ifindex", strconv.FormatUint(uint64(h.Meta.Ifindex), 10))
	b = appendKV(b, "len", strconv.FormatUint(uint64(h.Len()), 10))
	if h.Meta.HasDrop {
		b = appendKV(b, "reason", h.Meta.Reason)
	}
	if h.Meta.Location != "" {
		b = appendKV(b, "loc", h.Meta.Location)
	}
	if h.Meta.ProgType != "" {
		b = appendKV(b, "program", h.Meta.Prog)
		if h.Meta.HasRetVal {
			b = appendKV(b, "verdict", kmeta.VerdictName(h.Meta.ProgType, h.Meta.RetVal))
		}
	}
	if m := h.Meta; m.NFHook != "" {
		b = appendKV(b, "nf_hook", joinNonEmpty(m.NFFamily, m.NFHook))
	}
	if m := h.Meta; m.NFTChain != "" || m.NFTTable != "" {
		b = appendKV(b, "nft_chain", joinNonEmpty(m.NFTFamily, m.NFTTable, m.NFTChain))
	}
	if h.Meta.NFVerdict != "" {
		b = appendKV(b, "verdict", h.Meta.NFVerdict)
	}
	if h.Meta.Comm != "" {
		b = appendKV(b, "comm", h.Meta.Comm)
	}
	if h.Changed != 0 {
		b = appendKV(b, "changed", h.Changed.String())
		if h.Changed&(paths.ChangedAddr|paths.ChangedPort|paths.ChangedProto) != 0 {
			b = appendKV(b, "flow", FlowText(&h.Flow))
		}
	}
	switch {
	case h.Meta.StackLost:
		b = appendKV(b, "stack", "lost")
		if h.Meta.StackErr != 0 {
			b = appendKV(b, "stack_err", strconv.Itoa(int(h.Meta.StackErr)))
		}
	case h.Meta.Stack != 0:
		b = appendKV(b, "stack", strconv.FormatUint(h.Meta.Stack, 10))
	}
	if h.Stack != nil {
		b = appendKV(b, "frames", h.Stack.Text())
		if d := p.Derived(i); len(d) > 0 {
			b = appendKV(b, "derived", strings.Join(d, ">"))
		}
	}
	return b
}
