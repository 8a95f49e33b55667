package pcapng_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pathcap/pathcap/pcapng"
)

// conformanceDir is the public pcap-ng test corpus, present beside the
// repository in CI and absent from a user's clone.
const conformanceDir = "../../shared/conformance/pcapng-test-generator"

func conformanceFiles(t testing.TB) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(conformanceDir, "output_le", "*", "*.pcapng"))
	if len(files) == 0 {
		t.Skipf("conformance corpus not found at %s (it lives beside the repository in CI)", conformanceDir)
	}
	return files
}

// describe reads a file and returns a byte-order independent description
// of everything decoded, block by block.
func describe(path string) (seq []string, desc []string, packets int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, 0, err
	}
	defer f.Close()
	r, err := pcapng.NewReader(f)
	if err != nil {
		return nil, nil, 0, err
	}
	return describeReader(r)
}

// describeBytes is describe through NewReaderBytes.
func describeBytes(data []byte) (seq []string, desc []string, packets int, err error) {
	r, err := pcapng.NewReaderBytes(data)
	if err != nil {
		return nil, nil, 0, err
	}
	return describeReader(r)
}

func describeReader(r *pcapng.Reader) (seq []string, desc []string, packets int, err error) {
	for {
		t, err := r.Next()
		if err == io.EOF {
			return seq, desc, packets, nil
		}
		if err != nil {
			return seq, desc, packets, err
		}
		seq = append(seq, t.String())
		var d string
		switch t {
		case pcapng.BlockSectionHeader:
			s := *r.Section()
			s.ByteOrder = nil
			s.Custom = customDataOnly(s.Custom)
			d = fmt.Sprintf("%+v", s)
		case pcapng.BlockInterfaceDescription:
			ifc := r.Interfaces()[len(r.Interfaces())-1]
			ifc.Custom = customDataOnly(ifc.Custom)
			d = fmt.Sprintf("%+v", ifc)
		case pcapng.BlockEnhancedPacket, pcapng.BlockSimplePacket, pcapng.BlockPacket:
			packets++
			p := *r.Packet()
			p.Interface = nil
			p.Options.Custom = customDataOnly(p.Options.Custom)
			d = fmt.Sprintf("%+v ts=%d", p, p.Timestamp.UnixNano())
		case pcapng.BlockInterfaceStatistics:
			s := *r.InterfaceStatistics()
			s.Custom = customDataOnly(s.Custom)
			d = fmt.Sprintf("%+v", s)
		case pcapng.BlockNameResolution:
			n := *r.NameResolution()
			n.Custom = customDataOnly(n.Custom)
			d = fmt.Sprintf("%+v", n)
		case pcapng.BlockCustom, pcapng.BlockCustomNoCopy:
			// The data of a custom block, options included, is opaque:
			// only its length is independent of the byte order.
			c := r.CustomBlock()
			d = fmt.Sprintf("%v PEN %d, %d bytes", c.Type, c.PEN, len(c.Data))
		default:
			d = fmt.Sprintf("raw %x", r.RawBody())
		}
		desc = append(desc, d)
	}
}

// expectedSequence reads "Block sequence:" from a corpus description.
func expectedSequence(t *testing.T, txt string) []string {
	f, err := os.Open(txt)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Block sequence:"); ok {
			var seq []string
			for _, s := range strings.Split(rest, ",") {
				seq = append(seq, strings.TrimSpace(s))
			}
			return seq
		}
	}
	t.Fatalf("%s: no block sequence", txt)
	return nil
}

func TestConformanceCorpus(t *testing.T) {
	files := conformanceFiles(t)
	if len(files) != 24 {
		t.Errorf("found %d little-endian files, want 24", len(files))
	}
	for _, le := range files {
		name := strings.TrimPrefix(le, conformanceDir+"/output_le/")
		t.Run(name, func(t *testing.T) {
			want := expectedSequence(t, strings.TrimSuffix(le, ".pcapng")+".txt")
			wantPackets := 0
			for _, s := range want {
				if s == "EPB" || s == "SPB" {
					wantPackets++
				}
			}
			be := strings.Replace(le, "output_le", "output_be", 1)
			seqLE, descLE, nLE, err := describe(le)
			if err != nil {
				t.Fatalf("little-endian: %v", err)
			}
			seqBE, descBE, nBE, err := describe(be)
			if err != nil {
				t.Fatalf("big-endian: %v", err)
			}
			if strings.Join(seqBE, ",") != strings.Join(seqLE, ",") {
				t.Errorf("block sequences differ: LE %v, BE %v", seqLE, seqBE)
			}
			if got := strings.Join(seqLE, ", "); got != strings.Join(want, ", ") {
				t.Errorf("block sequence\n got %s\nwant %s", got, strings.Join(want, ", "))
			}
			if nLE != wantPackets || nBE != wantPackets {
				t.Errorf("packets: LE %d, BE %d, want %d", nLE, nBE, wantPackets)
			}
			if len(descLE) != len(descBE) {
				t.Fatalf("LE has %d blocks, BE %d", len(descLE), len(descBE))
			}
			for i := range descLE {
				if descLE[i] != descBE[i] {
					t.Errorf("block %d (%s) differs between byte orders:\nLE %s\nBE %s", i, seqLE[i], descLE[i], descBE[i])
				}
			}
		})
	}
}

// TestConformanceTruncated cuts every corpus file at every block boundary
// plus a few bytes, and checks that each complete block is still delivered
// before ErrTruncated.
func TestConformanceTruncated(t *testing.T) {
	for _, path := range conformanceFiles(t) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		full, _, _, err := describe(path)
		if err != nil {
			t.Fatal(err)
		}
		for cut := 13; cut < len(data); cut += 7 {
			r, err := pcapng.NewReader(strings.NewReader(string(data[:cut])))
			if err != nil {
				t.Fatalf("%s cut at %d: %v", path, cut, err)
			}
			n := 0
			for {
				_, err = r.Next()
				if err != nil {
					break
				}
				n++
			}
			if err == io.EOF {
				// The cut fell on a block boundary.
				if n >= len(full) {
					t.Errorf("%s cut at %d: read %d blocks of %d and then EOF", path, cut, n, len(full))
				}
				continue
			}
			var fe *pcapng.FormatError
			if !errors.As(err, &fe) || !errors.Is(err, pcapng.ErrTruncated) {
				t.Errorf("%s cut at %d: got %v, want a truncation error", path, cut, err)
				continue
			}
			if fe.Offset >= int64(cut) {
				t.Errorf("%s cut at %d: error offset %d past the cut", path, cut, fe.Offset)
			}
		}
	}
}

// customDataOnly drops the enterprise numbers of custom options: the
// corpus fills custom options with text, so the four bytes read as an
// enterprise number depend on the byte order.
func customDataOnly(opts []pcapng.CustomOption) []pcapng.CustomOption {
	out := make([]pcapng.CustomOption, len(opts))
	for i, o := range opts {
		out[i] = pcapng.CustomOption{Code: o.Code, Data: o.Data}
	}
	return out
}

// TestReaderBytesMatchesStreaming reads every corpus file, whole and cut
// short, from memory and from a stream: the results must be the same, and
// the memory must not be written to.
func TestReaderBytesMatchesStreaming(t *testing.T) {
	for _, le := range conformanceFiles(t) {
		for _, path := range []string{le, strings.Replace(le, "output_le", "output_be", 1)} {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			orig := string(data)
			for _, cut := range []int{len(data), len(data) - 1, len(data) * 2 / 3, 40} {
				if cut < 12 || cut > len(data) {
					continue
				}
				s1, d1, n1, e1 := describeReader(mustReader(t, strings.NewReader(string(data[:cut]))))
				s2, d2, n2, e2 := describeBytes(data[:cut])
				if fmt.Sprint(s1, d1, n1) != fmt.Sprint(s2, d2, n2) || fmt.Sprint(e1) != fmt.Sprint(e2) {
					t.Errorf("%s cut at %d: streaming %v %d %v, bytes %v %d %v", path, cut, s1, n1, e1, s2, n2, e2)
				}
			}
			if string(data) != orig {
				t.Fatalf("%s: NewReaderBytes wrote to its input", path)
			}
		}
	}
}

func mustReader(t *testing.T, r io.Reader) *pcapng.Reader {
	t.Helper()
	rd, err := pcapng.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	return rd
}

// TestReadPacketMatchesNext reads every corpus file, whole and cut short,
// packet by packet with ReadPacket and block by block with Next.
func TestReadPacketMatchesNext(t *testing.T) {
	for _, le := range conformanceFiles(t) {
		for _, path := range []string{le, strings.Replace(le, "output_le", "output_be", 1)} {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for cut := len(data); cut > len(data)/2; cut -= 13 {
				checkReadPacket(t, data[:cut])
			}
		}
	}
}

// TestReaderBufferSizes reads every corpus file through readers that hide
// their size and return a few bytes at a time, so that blocks straddle
// refills of the read buffer, and from readers that report their size,
// which get a smaller buffer: the results must match NewReaderBytes.
func TestReaderBufferSizes(t *testing.T) {
	for _, le := range conformanceFiles(t) {
		for _, path := range []string{le, strings.Replace(le, "output_le", "output_be", 1)} {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, cut := range []int{len(data), len(data) - 3, len(data) / 2} {
				s1, d1, n1, e1 := describeBytes(data[:cut])
				for name, src := range map[string]io.Reader{
					"one byte at a time": iotest.OneByteReader(bytes.NewReader(data[:cut])),
					"half of each read":  iotest.HalfReader(struct{ io.Reader }{bytes.NewReader(data[:cut])}),
					"sized":              bytes.NewReader(data[:cut]),
				} {
					s2, d2, n2, e2 := describeReader(mustReader(t, src))
					if fmt.Sprint(s1, d1, n1, e1) != fmt.Sprint(s2, d2, n2, e2) {
						t.Errorf("%s cut at %d, %s: got %v %d %v, want %v %d %v", path, cut, name, s2, n2, e2, s1, n1, e1)
					}
				}
			}
		}
	}
}
