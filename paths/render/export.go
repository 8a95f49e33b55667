package render

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/paths"
)

// Row is one event of a recording as exported for analytical databases
// (schema in docs/FORMAT.md, "analyze export").
type Row struct {
	File     int32  `parquet:"file" json:"file"`
	Frame    int64  `parquet:"frame" json:"frame"`
	ID       uint64 `parquet:"id" json:"id"`
	TS       int64  `parquet:"ts,timestamp(nanosecond)" json:"ts"`
	Kind     string `parquet:"kind,dict" json:"kind"`
	Hook     string `parquet:"hook,dict" json:"hook"`
	Dev      string `parquet:"dev,dict" json:"dev"`
	NetNS    uint32 `parquet:"netns" json:"netns"`
	Ifindex  uint32 `parquet:"ifindex" json:"ifindex"`
	Len      uint32 `parquet:"len" json:"len"`
	CapLen   uint32 `parquet:"caplen" json:"caplen"`
	SKB      uint64 `parquet:"skb" json:"skb"`
	CPU      uint32 `parquet:"cpu" json:"cpu"`
	PID      uint32 `parquet:"pid" json:"pid"`
	TID      uint32 `parquet:"tid" json:"tid"`
	Comm     string `parquet:"comm,dict" json:"comm"`
	Mark     uint32 `parquet:"mark" json:"mark"`
	Proto    uint16 `parquet:"proto" json:"proto"`
	Reason   string `parquet:"reason,dict" json:"reason"`
	Location string `parquet:"location,dict" json:"location"`
	Src      string `parquet:"src" json:"src"`
	Dst      string `parquet:"dst" json:"dst"`
	L4Proto  uint8  `parquet:"l4proto" json:"l4proto"`
	SrcPort  uint16 `parquet:"sport" json:"sport"`
	DstPort  uint16 `parquet:"dport" json:"dport"`
	Lost     uint64 `parquet:"lost_before" json:"lost_before"`
	// Program is the traced BPF program whose entry or exit the event is
	// (record --trace-tc, --trace-xdp); Verdict a verdict by name: the
	// program's at its exit ("TC_ACT_SHOT", "XDP_DROP"), or an nftables
	// base chain's at nft_do_chain's exit ("drop", "accept").
	Program string `parquet:"program,dict" json:"program"`
	Verdict string `parquet:"verdict,dict" json:"verdict"`
	// NFHook is the netfilter hook of a netfilter event ("ip input");
	// NFTChain the nftables base chain at nft_do_chain's exit, "FAMILY
	// TABLE CHAIN" ("inet filter input").
	NFHook   string `parquet:"nf_hook,dict" json:"nf_hook"`
	NFTChain string `parquet:"nft_chain,dict" json:"nft_chain"`
}

// rowOf fills r from an event.
func rowOf(r *Row, ev *paths.Event) {
	m := &ev.Meta
	f := paths.ParseFlow(ev.Data)
	*r = Row{
		File: int32(ev.File), Frame: ev.Frame, ID: ev.ID, TS: ev.Time,
		Kind: m.Kind, Hook: m.Hook, Dev: m.Dev, NetNS: m.NetNS, Ifindex: m.Ifindex,
		Len: m.Len, CapLen: uint32(len(ev.Data)), SKB: m.SKB, CPU: m.CPU, PID: m.PID, TID: m.TID,
		Comm: m.Comm, Mark: m.Mark, Proto: m.Proto, Location: m.Location,
		L4Proto: f.Proto, SrcPort: f.SrcPort, DstPort: f.DstPort, Lost: ev.Lost,
	}
	if !ev.HasMeta {
		r.Kind, r.Hook, r.Len, r.Proto = "", "", ev.OrigLen, f.EtherType
		r.Dev = ev.IfName
	}
	if m.HasDrop && ev.HasMeta {
		r.Reason = m.Reason
	}
	if m.ProgType != "" {
		r.Program = m.Prog
		if m.HasRetVal {
			r.Verdict = kmeta.VerdictName(m.ProgType, m.RetVal)
		}
	}
	if m.NFVerdict != "" {
		r.Verdict = m.NFVerdict
	}
	if m.NFHook != "" {
		r.NFHook = joinNonEmpty(m.NFFamily, m.NFHook)
	}
	if m.NFTChain != "" || m.NFTTable != "" {
		r.NFTChain = joinNonEmpty(m.NFTFamily, m.NFTTable, m.NFTChain)
	}
	if f.Src.IsValid() {
		r.Src, r.Dst = f.Src.String(), f.Dst.String()
	}
}

// appendRowJSON appends r as one JSON line.
func appendRowJSON(b []byte, r *Row) []byte {
	b = append(b, `{"file":`...)
	b = strconv.AppendInt(b, int64(r.File), 10)
	b = append(b, `,"frame":`...)
	b = strconv.AppendInt(b, r.Frame, 10)
	b = append(b, `,"id":`...)
	b = strconv.AppendUint(b, r.ID, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, r.TS, 10)
	for _, kv := range [...]struct{ k, v string }{{"kind", r.Kind}, {"hook", r.Hook}, {"dev", r.Dev}} {
		b = append(b, `,"`...)
		b = append(b, kv.k...)
		b = append(b, `":`...)
		b = appendJSONString(b, kv.v)
	}
	for _, kv := range [...]struct {
		k string
		v uint64
	}{{"netns", uint64(r.NetNS)}, {"ifindex", uint64(r.Ifindex)}, {"len", uint64(r.Len)}, {"caplen", uint64(r.CapLen)},
		{"skb", r.SKB}, {"cpu", uint64(r.CPU)}, {"pid", uint64(r.PID)}, {"tid", uint64(r.TID)}} {
		b = append(b, `,"`...)
		b = append(b, kv.k...)
		b = append(b, `":`...)
		b = strconv.AppendUint(b, kv.v, 10)
	}
	b = append(b, `,"comm":`...)
	b = appendJSONString(b, r.Comm)
	b = append(b, `,"mark":`...)
	b = strconv.AppendUint(b, uint64(r.Mark), 10)
	b = append(b, `,"proto":`...)
	b = strconv.AppendUint(b, uint64(r.Proto), 10)
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, r.Reason)
	b = append(b, `,"location":`...)
	b = appendJSONString(b, r.Location)
	b = append(b, `,"src":`...)
	b = appendJSONString(b, r.Src)
	b = append(b, `,"dst":`...)
	b = appendJSONString(b, r.Dst)
	b = append(b, `,"l4proto":`...)
	b = strconv.AppendUint(b, uint64(r.L4Proto), 10)
	b = append(b, `,"sport":`...)
	b = strconv.AppendUint(b, uint64(r.SrcPort), 10)
	b = append(b, `,"dport":`...)
	b = strconv.AppendUint(b, uint64(r.DstPort), 10)
	b = append(b, `,"lost_before":`...)
	b = strconv.AppendUint(b, r.Lost, 10)
	for _, kv := range [...]struct{ k, v string }{{"program", r.Program}, {"verdict", r.Verdict}, {"nf_hook", r.NFHook}, {"nft_chain", r.NFTChain}} {
		b = append(b, `,"`...)
		b = append(b, kv.k...)
		b = append(b, `":`...)
		b = appendJSONString(b, kv.v)
	}
	return append(b, "}\n"...)
}

// joinNonEmpty joins the non-empty strings of parts with spaces.
func joinNonEmpty(parts ...string) string {
	s := ""
	for _, p := range parts {
		if p == "" {
			continue
		}
		if s != "" {
			s += " "
		}
		s += p
	}
	return s
}

// ExportFormat is an export file format.
type ExportFormat string

// Export formats.
const (
	ExportJSONL   ExportFormat = "jsonl"
	ExportParquet ExportFormat = "parquet"
)

// rowSink writes rows as JSON lines or as a Parquet file.
type rowSink struct {
	w    io.Writer
	line []byte
	pw   *parquet.GenericWriter[Row]
	rows []Row
}

func newRowSink(w io.Writer, format ExportFormat) (*rowSink, error) {
	s := &rowSink{w: w}
	switch format {
	case ExportJSONL:
	case ExportParquet:
		s.pw = parquet.NewGenericWriter[Row](w, parquet.Compression(&zstd.Codec{}))
		s.rows = make([]Row, 0, 1024)
	default:
		return nil, fmt.Errorf("unknown export format %q (want jsonl or parquet)", format)
	}
	return s, nil
}

func (s *rowSink) add(r *Row) error {
	if s.pw == nil {
		s.line = appendRowJSON(s.line[:0], r)
		_, err := s.w.Write(s.line)
		return err
	}
	s.rows = append(s.rows, *r)
	if len(s.rows) == cap(s.rows) {
		return s.flush()
	}
	return nil
}

func (s *rowSink) flush() error {
	if len(s.rows) == 0 {
		return nil
	}
	_, err := s.pw.Write(s.rows)
	s.rows = s.rows[:0]
	if err != nil {
		return fmt.Errorf("write parquet: %w", err)
	}
	return nil
}

func (s *rowSink) close() error {
	if s.pw == nil {
		return nil
	}
	if err := s.flush(); err != nil {
		return err
	}
	if err := s.pw.Close(); err != nil {
		return fmt.Errorf("write parquet: %w", err)
	}
	return nil
}

// Export writes every event of in to w as rows, in file order: JSON lines
// or a Parquet file (zstd-compressed, row groups of 128k rows).
func Export(in *paths.Input, w io.Writer, format ExportFormat) error {
	sink, err := newRowSink(w, format)
	if err != nil {
		return err
	}
	var row Row
	for {
		ev, err := in.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		rowOf(&row, ev)
		if err := sink.add(&row); err != nil {
			return err
		}
	}
	return sink.close()
}

// ExportPackets is Export for the events of the packets sel selects: the
// paths are rebuilt first, so rows come packet by packet, each packet's
// events in time order.
func ExportPackets(in *paths.Input, w io.Writer, format ExportFormat, opts paths.Options, sel *paths.Selector) error {
	sink, err := newRowSink(w, format)
	if err != nil {
		return err
	}
	var row Row
	err = paths.Process(in, opts, sel, func(p *paths.Packet) error {
		for i := range p.Hops {
			rowOfHop(&row, p, &p.Hops[i])
			if err := sink.add(&row); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return sink.close()
}

// rowOfHop fills r from one hop of a packet.
func rowOfHop(r *Row, p *paths.Packet, h *paths.Hop) {
	m := h.Meta
	f := &h.Flow
	*r = Row{
		File: int32(h.File), Frame: h.Frame, ID: p.ID, TS: h.Time,
		Kind: m.Kind, Hook: m.Hook, Dev: m.Dev, NetNS: m.NetNS, Ifindex: m.Ifindex,
		Len: h.Len(), CapLen: h.CapLen, SKB: m.SKB, CPU: m.CPU, PID: m.PID, TID: m.TID,
		Comm: m.Comm, Mark: m.Mark, Proto: m.Proto, Location: m.Location,
		L4Proto: f.Proto, SrcPort: f.SrcPort, DstPort: f.DstPort, Lost: h.Lost,
	}
	if m.Hook == "" {
		r.Proto = f.EtherType
	}
	if m.HasDrop {
		r.Reason = m.Reason
	}
	if f.Src.IsValid() {
		r.Src, r.Dst = f.Src.String(), f.Dst.String()
	}
}
