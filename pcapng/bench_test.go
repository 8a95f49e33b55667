package pcapng_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/pathcap/pathcap/pcapng"
)

// benchCase is one kind of packet the benchmarks read and write.
type benchCase struct {
	size     int
	withOpts bool // two comments and a packet id
}

func (c benchCase) String() string {
	if c.withOpts {
		return fmt.Sprintf("%dB/opts", c.size)
	}
	return fmt.Sprintf("%dB/plain", c.size)
}

var benchCases = []benchCase{{128, false}, {128, true}, {1500, false}, {1500, true}}

var benchComments = [][]byte{[]byte("flow 10.0.0.1:443 -> 10.0.0.2:50000"), []byte("sampled by pathcap")}

func (c benchCase) packet() *pcapng.Packet {
	p := &pcapng.Packet{Timestamp: baseTime, Data: frameOfSize(c.size)}
	if c.withOpts {
		p.Options.Comments = benchComments
		p.Options.PacketID, p.Options.HasPacketID = 123456789, true
	}
	return p
}

func (c benchCase) pcapgoOptions() pcapgo.NgPacketOptions {
	var o pcapgo.NgPacketOptions
	if c.withOpts {
		for _, cm := range benchComments {
			o.Comments = append(o.Comments, string(cm))
		}
		id := uint64(123456789)
		o.PacketID = &id
	}
	return o
}

var benchInterface = &pcapng.Interface{LinkType: pcapng.LinkTypeEthernet, Name: "eth0", TSResolution: pcapng.Nanoseconds}

// stream returns the head of a file (section header and interface) and
// one enhanced packet block, both written by our Writer.
func (c benchCase) stream(tb testing.TB) (head, block []byte) {
	var buf bytes.Buffer
	w, err := pcapng.NewWriter(&buf, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.AddInterface(benchInterface); err != nil {
		tb.Fatal(err)
	}
	head = bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := w.WritePacket(c.packet()); err != nil {
		tb.Fatal(err)
	}
	return head, bytes.Clone(buf.Bytes())
}

// endless serves head once, then block over and over, without allocating.
type endless struct {
	head  []byte
	block []byte // the block repeated to about 64 KiB, so copies are long
	pos   int
}

func newEndless(head, block []byte) *endless {
	return &endless{head: head, block: bytes.Repeat(block, (64<<10)/len(block)+1)}
}

func (e *endless) Read(p []byte) (int, error) {
	n := 0
	if len(e.head) > 0 {
		n = copy(p, e.head)
		e.head = e.head[n:]
	}
	for n < len(p) {
		k := copy(p[n:], e.block[e.pos:])
		n += k
		e.pos += k
		if e.pos == len(e.block) {
			e.pos = 0
		}
	}
	return n, nil
}

func BenchmarkRead(b *testing.B) {
	for _, c := range benchCases {
		head, block := c.stream(b)
		want := frameOfSize(c.size)
		b.Run(c.String()+"/pcapng", func(b *testing.B) {
			r, err := pcapng.NewReader(newEndless(head, block))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(block)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				p, err := r.ReadPacket()
				if err != nil || len(p.Data) != len(want) {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.String()+"/pcapgo-ReadPacketData", func(b *testing.B) {
			r, err := pcapgo.NewNgReader(newEndless(head, block), pcapgo.DefaultNgReaderOptions)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(block)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				data, _, err := r.ReadPacketData()
				if err != nil || len(data) != len(want) {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.String()+"/pcapgo-ZeroCopyReadPacketData", func(b *testing.B) {
			r, err := pcapgo.NewNgReader(newEndless(head, block), pcapgo.DefaultNgReaderOptions)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(block)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				data, _, err := r.ZeroCopyReadPacketData()
				if err != nil || len(data) != len(want) {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkWrite(b *testing.B) {
	for _, c := range benchCases {
		_, block := c.stream(b)
		b.Run(c.String()+"/pcapng", func(b *testing.B) {
			w, err := pcapng.NewWriterSize(io.Discard, nil, 64<<10)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := w.AddInterface(benchInterface); err != nil {
				b.Fatal(err)
			}
			p := c.packet()
			b.SetBytes(int64(len(block)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := w.WritePacket(p); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
		})
		name := "/pcapgo-WritePacket"
		if c.withOpts {
			name = "/pcapgo-WritePacketWithOptions"
		}
		b.Run(c.String()+name, func(b *testing.B) {
			w, err := pcapgo.NewNgWriter(io.Discard, layers.LinkTypeEthernet)
			if err != nil {
				b.Fatal(err)
			}
			data := frameOfSize(c.size)
			ci := gopacket.CaptureInfo{Timestamp: baseTime, CaptureLength: len(data), Length: len(data)}
			opts := c.pcapgoOptions()
			b.SetBytes(int64(len(block)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				var err error
				if c.withOpts {
					err = w.WritePacketWithOptions(ci, data, opts)
				} else {
					err = w.WritePacket(ci, data)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// The file benchmarks write and read a file of a million 128-byte frames,
// each with a comment of about 100 bytes and a packet id.
const filePackets = 1_000_000

var fileComment = []byte(strings.Repeat("flow 192.0.2.1:40000 > 198.51.100.7:9 ", 3)[:100])

func filePacket() *pcapng.Packet {
	return &pcapng.Packet{Timestamp: baseTime, Data: frameOfSize(128),
		Options: pcapng.PacketOptions{Comments: [][]byte{fileComment}, HasPacketID: true}}
}

func writeFileOurs(path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w, err := pcapng.NewWriterSize(f, nil, 256<<10)
	if err != nil {
		return 0, err
	}
	if _, err := w.AddInterface(benchInterface); err != nil {
		return 0, err
	}
	p := filePacket()
	for i := range filePackets {
		p.Timestamp = baseTime.Add(time.Duration(i) * time.Microsecond)
		p.Options.PacketID = uint64(i)
		if err := w.WritePacket(p); err != nil {
			return 0, err
		}
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), f.Close()
}

func BenchmarkFile1M(b *testing.B) {
	b.Run("write/pcapng", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "1m.pcapng")
		b.ReportAllocs()
		var size int64
		for range b.N {
			var err error
			if size, err = writeFileOurs(path); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(size)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/filePackets, "ns/packet")
	})
	b.Run("write/pcapgo-WritePacketWithOptions", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "1m.pcapng")
		data := frameOfSize(128)
		b.ReportAllocs()
		var size int64
		for range b.N {
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			w, err := pcapgo.NewNgWriter(f, layers.LinkTypeEthernet)
			if err != nil {
				b.Fatal(err)
			}
			opts := pcapgo.NgPacketOptions{Comments: []string{string(fileComment)}}
			for i := range filePackets {
				id := uint64(i)
				opts.PacketID = &id
				ci := gopacket.CaptureInfo{Timestamp: baseTime.Add(time.Duration(i) * time.Microsecond), CaptureLength: len(data), Length: len(data)}
				if err := w.WritePacketWithOptions(ci, data, opts); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			st, _ := f.Stat()
			size = st.Size()
			f.Close()
		}
		b.SetBytes(size)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/filePackets, "ns/packet")
	})

	path := filepath.Join(b.TempDir(), "1m.pcapng")
	size, err := writeFileOurs(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("read/pcapng", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for range b.N {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			r, err := pcapng.NewReader(f)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for {
				p, err := r.ReadPacket()
				if err == io.EOF {
					break
				}
				if err != nil || len(p.Options.Comments) != 1 || p.Options.PacketID != uint64(n) {
					b.Fatalf("packet %d: %v", n, err)
				}
				n++
			}
			f.Close()
			if n != filePackets {
				b.Fatalf("read %d packets", n)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/filePackets, "ns/packet")
	})
	type readFunc func(*pcapgo.NgReader) ([]byte, gopacket.CaptureInfo, pcapgo.NgPacketOptions, error)
	for _, c := range []struct {
		name string
		read readFunc
	}{
		{"ZeroCopyReadPacketDataWithOptions", (*pcapgo.NgReader).ZeroCopyReadPacketDataWithOptions},
		{"ReadPacketDataWithOptions", (*pcapgo.NgReader).ReadPacketDataWithOptions},
	} {
		b.Run("read/pcapgo-"+c.name, func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			for range b.N {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				r, err := pcapgo.NewNgReader(bufio.NewReaderSize(f, 256<<10), pcapgo.DefaultNgReaderOptions)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for {
					_, _, opts, err := c.read(r)
					if err == io.EOF {
						break
					}
					if err != nil || len(opts.Comments) != 1 || *opts.PacketID != uint64(n) {
						b.Fatalf("packet %d: %v", n, err)
					}
					n++
				}
				f.Close()
				if n != filePackets {
					b.Fatalf("read %d packets", n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/filePackets, "ns/packet")
		})
	}
}

// TestReadPacketDoesNotAllocate checks the zero-allocation promise of the
// read path that the benchmarks measure.
func TestReadPacketDoesNotAllocate(t *testing.T) {
	for _, c := range benchCases {
		head, block := c.stream(t)
		r, err := pcapng.NewReader(newEndless(head, block))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadPacket(); err != nil { // the section and interface
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(1000, func() {
			p, err := r.ReadPacket()
			if err != nil || len(p.Data) != c.size || len(p.Options.Comments) != 2*btoi(c.withOpts) {
				t.Fatalf("%v: %v", c, err)
			}
		})
		if allocs != 0 {
			t.Errorf("%v: %.1f allocations per packet read", c, allocs)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// BenchmarkReadBytes1M reads the File1M file from memory (NewReaderBytes):
// the decoder's own cost per packet, without the read system calls.
func BenchmarkReadBytes1M(b *testing.B) {
	path := filepath.Join(b.TempDir(), "1m.pcapng")
	if _, err := writeFileOurs(path); err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r, err := pcapng.NewReaderBytes(data)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			p, err := r.ReadPacket()
			if err == io.EOF {
				break
			}
			if err != nil || len(p.Options.Comments) != 1 || p.Options.PacketID != uint64(n) {
				b.Fatalf("packet %d: %v", n, err)
			}
			n++
		}
		if n != filePackets {
			b.Fatalf("read %d packets", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/filePackets, "ns/packet")
}
