// Package testrec is for tests: it names the committed test recordings and
// reads pcap-ng files block by block, the one helper every package's tests
// use to look inside a recording or a path view.
//
// The committed recordings are under one root, testdata/ at the top of the
// module, one directory per kind:
//
//	testdata/recordings/  recorded by record on real and VM kernels, with
//	                      the golden outputs of analyze (cmd/analyze)
//	testdata/crafted/     made by the paths tests' helpers and kept current
//	                      by paths.TestTestdata
//
// Fuzz corpora stay in each package's testdata/fuzz, where go test looks
// for them.
package testrec

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/pcapng"
)

// Recording returns the path of testdata/recordings/NAME.
func Recording(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(testenv.ModuleRoot(t), "testdata", "recordings", name)
}

// Crafted returns the path of testdata/crafted/NAME.
func Crafted(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(testenv.ModuleRoot(t), "testdata", "crafted", name)
}

// Packet is one packet block of a file, copied out of the reader.
type Packet struct {
	pcapng.Packet
	// Interface is a copy of the block's interface description
	// (Packet.Interface, the reader's, is nil).
	Interface pcapng.Interface
	// Comments are the block's comments as strings (also in
	// Packet.Options.Comments).
	Comments []string
	// Meta is the pathcap metadata of the first comment; HasMeta says it
	// parsed, MetaErr why not (nil when there is no comment).
	Meta    kmeta.Event
	HasMeta bool
	MetaErr error
}

// File is what a pcap-ng file holds: its packet blocks in order, and its
// interface statistics.
type File struct {
	Packets []Packet
	Stats   []pcapng.InterfaceStatistics
	// Section is the (last) section header; Interfaces counts the
	// interface descriptions; Last is the type of the last block.
	Section    pcapng.Section
	Interfaces int
	Last       pcapng.BlockType
}

// Comments returns every packet's comments.
func (f *File) Comments() [][]string {
	out := make([][]string, len(f.Packets))
	for i := range f.Packets {
		out[i] = f.Packets[i].Comments
	}
	return out
}

// Read reads the named file; a read error fails the test.
func Read(t testing.TB, name string) *File {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return ReadBytes(t, data)
}

// ReadBytes reads a file held in memory; a read error fails the test.
func ReadBytes(t testing.TB, data []byte) *File {
	t.Helper()
	r, err := pcapng.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	parser := kmeta.NewParser()
	f := &File{}
	for {
		typ, err := r.Next()
		if err == io.EOF {
			return f
		}
		if err != nil {
			t.Fatalf("read at offset %d: %v", r.Offset(), err)
		}
		f.Last = typ
		switch {
		case typ == pcapng.BlockSectionHeader:
			f.Section = *r.Section()
			f.Section.Comments = slices.Clone(f.Section.Comments)
		case typ == pcapng.BlockInterfaceDescription:
			f.Interfaces++
		case typ.IsPacket():
			p := r.Packet()
			c := Packet{Packet: *p}
			c.Data = slices.Clone(p.Data)
			c.Options.Comments = nil
			for _, cm := range p.Options.Comments {
				c.Options.Comments = append(c.Options.Comments, slices.Clone(cm))
				c.Comments = append(c.Comments, string(cm))
			}
			if p.Interface != nil {
				c.Interface = *p.Interface
			}
			c.Packet.Interface = nil // the reader's, reused: see Interface
			if len(c.Options.Comments) > 0 {
				parser.SetPlace(kmeta.PlaceOf(c.Interface.Name, c.Interface.Description))
				c.MetaErr = parser.Parse(c.Options.Comments[0], &c.Meta)
				c.HasMeta = c.MetaErr == nil
			}
			f.Packets = append(f.Packets, c)
		case typ == pcapng.BlockInterfaceStatistics:
			f.Stats = append(f.Stats, *r.InterfaceStatistics())
		}
	}
}
