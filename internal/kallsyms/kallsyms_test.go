package kallsyms

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// crafted is deliberately unsorted and contains duplicates, aliases, data
// symbols, zero addresses, module symbols and section markers.
const crafted = `ffffffff81000200 T second
ffffffff81000100 t first_local
ffffffff81000100 T first
0000000000000000 A fixed_percpu_data
0000000000000000 T zero_text
ffffffff81000200 T second
ffffffff81000300 D some_data
ffffffff81000280 W weak_fn
ffffffff81000400 T _etext
ffffffff81100000 T _sinittext
ffffffff81100080 T _einittext
ffffffffc0001000 t veth_xmit	[veth]
ffffffffc0001000 t veth_xmit	[veth]
ffffffffc0001400 t veth_open	[veth]
ffffffffc0002000 T cleanup	[other]
ffffffff81000380 t cleanup
ffffffffc0002000 d other_data	[other]
ffffffffc0001800 b veth_bss	[veth]
`

func mustParse(t *testing.T, in string) *Table {
	t.Helper()
	tab, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tab
}

func TestParseAndResolve(t *testing.T) {
	tab := mustParse(t, crafted)
	tests := []struct {
		addr uint64
		want string // "" means no resolution
	}{
		{0, ""},
		{0xffffffff810000ff, ""},
		{0xffffffff81000100, "first+0x0"},
		{0xffffffff810001ff, "first+0xff"},
		{0xffffffff81000200, "second+0x0"},
		{0xffffffff8100027f, "second+0x7f"},
		{0xffffffff81000280, "weak_fn+0x0"},
		{0xffffffff810002ff, "weak_fn+0x7f"},
		// weak_fn ends at the data symbol some_data.
		{0xffffffff81000300, ""},
		{0xffffffff81000390, "cleanup+0x10"},
		// Past _etext nothing resolves, not even inside the marker's gap.
		{0xffffffff81000400, ""},
		{0xffffffff81000500, ""},
		{0xffffffff81100010, "_sinittext+0x10"},
		{0xffffffff81100080, ""},
		{0xffffffffc0001000, "veth_xmit+0x0 [veth]"},
		{0xffffffffc00013ff, "veth_xmit+0x3ff [veth]"},
		{0xffffffffc0001404, "veth_open+0x4 [veth]"},
		// veth_open ends at the bss symbol of the same module.
		{0xffffffffc0001800, ""},
		{0xffffffffc0002000, "cleanup+0x0 [other]"},
		// The last symbol is bounded by the tail size.
		{0xffffffffc0002000 + tailSize - 1, "cleanup+0xffff [other]"},
		{0xffffffffc0002000 + tailSize, ""},
		{0xffffffffffffffff, ""},
	}
	for _, tc := range tests {
		sym, ok := tab.Resolve(tc.addr)
		got := ""
		if ok {
			got = sym.String()
		}
		if got != tc.want {
			t.Errorf("Resolve(%#x) = %q, %v; want %q", tc.addr, got, ok, tc.want)
		}
	}
}

func TestResolveFields(t *testing.T) {
	tab := mustParse(t, crafted)
	sym, ok := tab.Resolve(0xffffffffc0001010)
	want := Symbol{Name: "veth_xmit", Module: "veth", Addr: 0xffffffffc0001000, Offset: 0x10, Type: 't'}
	if !ok || sym != want {
		t.Fatalf("Resolve = %+v, %v; want %+v", sym, ok, want)
	}
}

func TestDuplicatesAndAliases(t *testing.T) {
	tab := mustParse(t, crafted)
	// 13 text lines with non-zero addresses, minus two exact duplicates.
	if got, want := tab.Len(), 11; got != want {
		t.Errorf("Len = %d, want %d", got, want)
	}
	// The global alias wins over the local one at the same address,
	// regardless of input order.
	if sym, _ := tab.Resolve(0xffffffff81000100); sym.Name != "first" {
		t.Errorf("alias resolution picked %q, want first", sym.Name)
	}
	if sym, ok := tab.Lookup("first_local"); !ok || sym.Addr != 0xffffffff81000100 || sym.Type != 't' {
		t.Errorf("Lookup(first_local) = %+v, %v", sym, ok)
	}
}

func TestAliasInputOrder(t *testing.T) {
	tab := mustParse(t, "1000 T b\n1000 T a\n1000 t c\n2000 T end_of_all\n")
	if sym, _ := tab.Resolve(0x1000); sym.Name != "b" {
		t.Errorf("Resolve picked %q, want the first global in input order, b", sym.Name)
	}
	tab = mustParse(t, "1000 T _stext\n1000 T __entry_text_start\n1000 t real_fn\n2000 T other\n")
	if sym, _ := tab.Resolve(0x1000); sym.Name != "real_fn" {
		t.Errorf("Resolve picked %q, want the function rather than a section label", sym.Name)
	}
}

func TestLookup(t *testing.T) {
	tab := mustParse(t, crafted)
	sym, ok := tab.Lookup("second")
	if !ok || sym.Addr != 0xffffffff81000200 || sym.Offset != 0 || sym.Module != "" {
		t.Errorf("Lookup(second) = %+v, %v", sym, ok)
	}
	if _, ok := tab.Lookup("some_data"); ok {
		t.Error("Lookup found a data symbol")
	}
	if _, ok := tab.Lookup("zero_text"); ok {
		t.Error("Lookup found a symbol with a zero address")
	}
	if _, ok := tab.Lookup("missing"); ok {
		t.Error("Lookup found a missing symbol")
	}
	// A marker is found by name even though it never resolves.
	if sym, ok := tab.Lookup("_etext"); !ok || sym.Addr != 0xffffffff81000400 {
		t.Errorf("Lookup(_etext) = %+v, %v", sym, ok)
	}

	// The core kernel copy is preferred over the module copy.
	sym, ok = tab.Lookup("cleanup")
	if !ok || sym.Module != "" || sym.Addr != 0xffffffff81000380 {
		t.Errorf("Lookup(cleanup) = %+v, %v", sym, ok)
	}
	all := tab.LookupAll("cleanup")
	if len(all) != 2 || all[0].Module != "" || all[1].Module != "other" {
		t.Errorf("LookupAll(cleanup) = %+v", all)
	}
	sym, ok = tab.LookupModule("cleanup", "other")
	if !ok || sym.Addr != 0xffffffffc0002000 {
		t.Errorf("LookupModule(cleanup, other) = %+v, %v", sym, ok)
	}
	if _, ok := tab.LookupModule("cleanup", "veth"); ok {
		t.Error("LookupModule found cleanup in veth")
	}
	if got := tab.LookupAll("missing"); got != nil {
		t.Errorf("LookupAll(missing) = %+v", got)
	}
}

func TestTailCap(t *testing.T) {
	tab := mustParse(t, "ffffffffc0000000 t last_fn\t[mod]\n")
	if _, ok := tab.Resolve(0xffffffffc0000000 + tailSize - 1); !ok {
		t.Error("address inside the tail did not resolve")
	}
	if _, ok := tab.Resolve(0xffffffffc0000000 + tailSize); ok {
		t.Error("address past the tail resolved")
	}
	// A symbol followed by one of another module is capped as well.
	tab = mustParse(t, "ffffffffc0000000 t a\t[m1]\nffffffffc0100000 t b\t[m2]\nffffffffc0200000 t c\t[m2]\n")
	if _, ok := tab.Resolve(0xffffffffc0000000 + tailSize); ok {
		t.Error("address past the tail of a module resolved")
	}
	if sym, ok := tab.Resolve(0xffffffffc01fffff); !ok || sym.Name != "b" {
		t.Errorf("Resolve inside a module = %+v, %v; want b", sym, ok)
	}
	// No symbol extends past maxSize.
	tab = mustParse(t, "ffffffff81000000 T huge\nffffffff82000000 T next\n")
	if _, ok := tab.Resolve(0xffffffff81000000 + maxSize); ok {
		t.Error("address past maxSize resolved")
	}
	tab = mustParse(t, "fffffffffffffff0 T top\n")
	if sym, ok := tab.Resolve(0xfffffffffffffffe); !ok || sym.Offset != 0xe {
		t.Errorf("Resolve at the top of the address space = %+v, %v", sym, ok)
	}
}

func TestRestricted(t *testing.T) {
	in := "0000000000000000 T _text\n0000000000000000 t foo\n0000000000000000 t veth_xmit\t[veth]\n"
	_, err := Parse(strings.NewReader(in))
	if !errors.Is(err, ErrRestricted) {
		t.Fatalf("Parse = %v, want ErrRestricted", err)
	}
}

func TestNoSymbols(t *testing.T) {
	for _, in := range []string{"", "\n \n", "ffffffff81000000 D data\n"} {
		if _, err := Parse(strings.NewReader(in)); !errors.Is(err, ErrNoSymbols) {
			t.Errorf("Parse(%q) = %v, want ErrNoSymbols", in, err)
		}
	}
}

func TestMalformed(t *testing.T) {
	for _, in := range []string{
		"xyz T foo\n",
		"1000 T\n",
		"1000 TT foo\n",
		"1000 T foo bar baz\n",
		"1000 T foo veth\n",
		"11112222333344445 T foo\n",
	} {
		if _, err := Parse(strings.NewReader(in)); err == nil || errors.Is(err, ErrNoSymbols) {
			t.Errorf("Parse(%q) = %v, want a syntax error", in, err)
		}
	}
	// A final line without a newline and blank lines are accepted.
	tab := mustParse(t, "\n1000 T foo\n\n2000 T bar")
	if _, ok := tab.Lookup("bar"); !ok {
		t.Error("last line without newline was lost")
	}
}

func TestSymbolString(t *testing.T) {
	s := Symbol{Name: "veth_xmit", Module: "veth", Offset: 0x1a4}
	if got, want := s.String(), "veth_xmit+0x1a4 [veth]"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	s = Symbol{Name: "__udp4_lib_rcv"}
	if got, want := s.String(), "__udp4_lib_rcv+0x0"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = s.AppendTo(buf[:0]) }); n != 0 {
		t.Errorf("AppendTo allocates %v times", n)
	}
}

func TestZeroTable(t *testing.T) {
	var tab Table
	if _, ok := tab.Resolve(0x1000); ok {
		t.Error("empty table resolved an address")
	}
	if _, ok := tab.Lookup("x"); ok {
		t.Error("empty table found a name")
	}
}

func loadReal(t testing.TB) *Table {
	t.Helper()
	tab, err := Load()
	switch {
	case errors.Is(err, ErrRestricted):
		t.Skipf("skipping: %v (run as root)", err)
	case errors.Is(err, os.ErrNotExist):
		t.Skipf("skipping: %v", err)
	case err != nil:
		t.Fatalf("Load: %v", err)
	}
	return tab
}

func TestRealKallsyms(t *testing.T) {
	tab := loadReal(t)
	t.Logf("loaded %d text symbols", tab.Len())
	const name = "__udp4_lib_rcv"
	sym, ok := tab.Lookup(name)
	if !ok {
		t.Fatalf("Lookup(%s) failed", name)
	}
	got, ok := tab.Resolve(sym.Addr)
	if !ok || got.String() != name+"+0x0" {
		t.Fatalf("Resolve(%#x) = %q, %v; want %s+0x0", sym.Addr, got, ok, name)
	}
	got, ok = tab.Resolve(sym.Addr + 0x10)
	if !ok || got.String() != name+"+0x10" {
		t.Errorf("Resolve(%#x) = %q, %v; want %s+0x10", sym.Addr+0x10, got, ok, name)
	}
	if etext, ok := tab.Lookup("_etext"); ok {
		if s, ok := tab.Resolve(etext.Addr + 0x100); ok {
			t.Errorf("address past _etext resolved to %s", s)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { tab.Resolve(sym.Addr + 4) }); n != 0 {
		t.Errorf("Resolve allocates %v times", n)
	}
	// Every module symbol must resolve back to its own module.
	for _, s := range tab.LookupAll("ftrace_trampoline") {
		r, ok := tab.Resolve(s.Addr)
		if !ok || r.Module != s.Module {
			t.Errorf("Resolve(%#x) = %+v, %v; want module %q", s.Addr, r, ok, s.Module)
		}
	}
}

func BenchmarkResolve(b *testing.B) {
	tab := loadReal(b)
	addrs := make([]uint64, 0, 1024)
	for i := 0; i < len(tab.entries) && len(addrs) < cap(addrs); i += len(tab.entries)/cap(addrs) + 1 {
		if tab.entries[i].size > 2 {
			addrs = append(addrs, tab.entries[i].addr+2)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, ok := tab.Resolve(addrs[i%len(addrs)]); !ok {
			b.Fatal("resolve failed")
		}
	}
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile(DefaultPath)
	if err != nil {
		b.Skipf("skipping: %v", err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(strings.NewReader(string(data))); err != nil {
			b.Skipf("skipping: %v", err)
		}
	}
}
