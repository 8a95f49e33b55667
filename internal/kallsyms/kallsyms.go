// Package kallsyms resolves kernel code addresses to symbol names using the
// table the kernel exports in /proc/kallsyms.
//
// A Table holds only text symbols (types t, T, w and W), sorted by address,
// with all names packed into a single string so that lookups do not allocate.
// A Table is immutable once built and safe for concurrent use.
//
// kallsyms does not record symbol sizes. The end of a symbol is taken to be
// the address of the next symbol of any type in the input, but no symbol is
// assumed to be larger than 1 MiB, and the last symbol of the kernel image or
// of a module (whose successor may lie in an unrelated mapping) no larger
// than 64 KiB. Section end markers such as _etext, _einittext and
// __entry_text_end are found by name but never returned by Resolve, so that
// addresses in the gap that follows them do not resolve.
package kallsyms

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// DefaultPath is the location of the kernel symbol table.
const DefaultPath = "/proc/kallsyms"

const (
	// maxSize bounds the extent assumed for any symbol.
	maxSize = 1 << 20
	// tailSize bounds the extent assumed for a symbol that is the last one
	// of the kernel image or of its module.
	tailSize = 64 << 10
	// startRank is the rank of section start markers, which are returned
	// by Resolve only when no function shares their address.
	startRank = 5
	// markerRank is the rank of section end markers, which never resolve.
	markerRank = 6
)

// ErrRestricted is returned when every address in the input is zero, which
// is how the kernel hides addresses from readers lacking CAP_SYSLOG or when
// kernel.kptr_restrict forbids exposing them.
var ErrRestricted = errors.New("kallsyms addresses are hidden (kptr_restrict or missing CAP_SYSLOG)")

// ErrNoSymbols is returned when the input holds no text symbol with a
// non-zero address.
var ErrNoSymbols = errors.New("no text symbols")

// Symbol describes a kernel text symbol, optionally with the offset of an
// address inside it.
type Symbol struct {
	// Name is the symbol name, e.g. "__udp4_lib_rcv".
	Name string
	// Module is the module the symbol belongs to, without brackets, or ""
	// for the core kernel image. Pseudo-modules such as "bpf" or
	// "__builtin__ftrace" appear here as well.
	Module string
	// Addr is the start address of the symbol.
	Addr uint64
	// Offset is the distance of the resolved address from Addr. It is zero
	// for symbols returned by name lookups.
	Offset uint64
	// Type is the kallsyms type letter: 't', 'T', 'w' or 'W'.
	Type byte
}

// String formats the symbol as "name+0x1a4", followed by " [module]" for
// module symbols.
func (s Symbol) String() string {
	return string(s.AppendTo(make([]byte, 0, len(s.Name)+len(s.Module)+24)))
}

// AppendTo appends the String form of s to dst and returns the extended
// buffer. It does not allocate when dst has enough capacity.
func (s Symbol) AppendTo(dst []byte) []byte {
	dst = append(dst, s.Name...)
	dst = append(dst, "+0x"...)
	dst = strconv.AppendUint(dst, s.Offset, 16)
	if s.Module != "" {
		dst = append(dst, " ["...)
		dst = append(dst, s.Module...)
		dst = append(dst, ']')
	}
	return dst
}

// entry is the packed form of a Symbol; 24 bytes per symbol.
type entry struct {
	addr    uint64
	size    uint32 // extent in bytes; addr+size is the first address past the symbol
	nameOff uint32 // offset of the name in Table.names
	nameLen uint16
	module  uint16 // index into Table.modules; 0 is the core kernel
	typ     byte
	rank    byte // preference among symbols sharing an address; lower wins
}

// Table is a sorted table of kernel text symbols. The zero value is an empty
// table that resolves nothing.
type Table struct {
	// entries is sorted by address ascending and, for equal addresses, by
	// preference descending, so that the preferred alias of an address is
	// the last entry with that address.
	entries []entry
	// byName holds indices into entries sorted by name, then preference.
	byName  []uint32
	names   string
	modules []string
}

// Load reads and parses DefaultPath.
func Load() (*Table, error) {
	return LoadFile(DefaultPath)
}

// LoadFile reads and parses a file in /proc/kallsyms format.
func LoadFile(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open kallsyms: %w", err)
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return t, nil
}

// Parse reads lines of the form "addr type name [module]" from r and builds
// a Table of its text symbols. The input need not be sorted. Entries that
// repeat the same address, name and module are kept once; distinct names at
// one address are all kept for name lookups, while Resolve prefers, in
// order, a global (T), weak global (W), local (t) and weak local (w) symbol
// over a section start label such as _stext, and then the one that came
// first in the input.
//
// Parse returns ErrRestricted if every address in the input is zero and
// ErrNoSymbols if no text symbol has a non-zero address.
func Parse(r io.Reader) (*Table, error) {
	var (
		t        = &Table{modules: []string{""}}
		modIndex = map[string]uint16{"": 0}
		names    []byte
		bounds   []bound // every non-zero address, text or not
		lines    int     // lines read, for error messages
		parsed   int     // non-blank lines
		nonZero  bool
	)
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("parse line %d: line too long", lines+1)
		}
		if len(line) > 0 {
			lines++
		}
		if !isBlank(line) {
			parsed++
			f, ok := splitLine(line)
			if !ok {
				return nil, fmt.Errorf("parse line %d: malformed entry %q", lines, strings.TrimSpace(string(line)))
			}
			if f.addr != 0 {
				nonZero = true
			}
			mod := uint16(0)
			if len(f.module) > 0 {
				m, ok := modIndex[string(f.module)]
				if !ok {
					if len(t.modules) > math.MaxUint16 {
						return nil, fmt.Errorf("parse line %d: too many modules", lines)
					}
					m = uint16(len(t.modules))
					name := string(f.module)
					t.modules = append(t.modules, name)
					modIndex[name] = m
				}
				mod = m
			}
			if f.addr != 0 {
				bounds = append(bounds, bound{addr: f.addr, module: mod})
			}
			if rank := textRank(f.typ); rank != 0 && f.addr != 0 {
				if len(f.name) > math.MaxUint16 {
					return nil, fmt.Errorf("parse line %d: symbol name too long", lines)
				}
				if len(names)+len(f.name) > math.MaxUint32 {
					return nil, fmt.Errorf("parse line %d: symbol names exceed 4 GiB", lines)
				}
				t.entries = append(t.entries, entry{
					addr:    f.addr,
					nameOff: uint32(len(names)),
					nameLen: uint16(len(f.name)),
					module:  mod,
					typ:     f.typ,
					rank:    rank,
				})
				switch {
				case isEndMarker(f.name):
					t.entries[len(t.entries)-1].rank = markerRank
				case isStartMarker(f.name):
					t.entries[len(t.entries)-1].rank = startRank
				}
				names = append(names, f.name...)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read kallsyms: %w", err)
		}
	}
	if parsed > 0 && !nonZero {
		return nil, ErrRestricted
	}
	if len(t.entries) == 0 {
		return nil, ErrNoSymbols
	}
	t.names = string(names)
	t.build(bounds)
	return t, nil
}

// bound is an address of any symbol, used to delimit text symbols.
type bound struct {
	addr   uint64
	module uint16
}

// build sorts the entries, removes exact duplicates, computes symbol sizes
// from the following bounds and creates the name index.
func (t *Table) build(bounds []bound) {
	// Sort by address and, within an address, by preference with input
	// order breaking ties, then drop exact duplicates keeping the preferred
	// copy, and finally reverse each address group so that the preferred
	// alias is the last entry of its address.
	slices.SortStableFunc(t.entries, func(a, b entry) int {
		switch {
		case a.addr < b.addr:
			return -1
		case a.addr > b.addr:
			return 1
		}
		return int(a.rank) - int(b.rank)
	})
	t.entries = t.dedup(t.entries)
	for i := 0; i < len(t.entries); {
		j := i + 1
		for j < len(t.entries) && t.entries[j].addr == t.entries[i].addr {
			j++
		}
		slices.Reverse(t.entries[i:j])
		i = j
	}

	slices.SortFunc(bounds, func(a, b bound) int {
		switch {
		case a.addr < b.addr:
			return -1
		case a.addr > b.addr:
			return 1
		}
		return 0
	})
	bi := 0
	for i := range t.entries {
		e := &t.entries[i]
		for bi < len(bounds) && bounds[bi].addr <= e.addr {
			bi++
		}
		end := uint64(math.MaxUint64)
		if bi < len(bounds) {
			end = bounds[bi].addr
		}
		if bi == len(bounds) || bounds[bi].module != e.module {
			end = min(end, satAdd(e.addr, tailSize))
		}
		e.size = uint32(min(end-e.addr, maxSize))
		if e.rank == markerRank {
			e.size = 0
		}
	}

	t.byName = make([]uint32, len(t.entries))
	for i := range t.byName {
		t.byName[i] = uint32(i)
	}
	slices.SortStableFunc(t.byName, func(a, b uint32) int {
		if c := strings.Compare(t.name(a), t.name(b)); c != 0 {
			return c
		}
		return t.prefer(a, b)
	})
}

// dedup removes entries equal in address, name and module, keeping the
// first. Entries must be sorted by address.
func (t *Table) dedup(es []entry) []entry {
	out := es[:0]
	for i := 0; i < len(es); {
		j := i + 1
		for j < len(es) && es[j].addr == es[i].addr {
			j++
		}
		start := len(out)
		for _, e := range es[i:j] {
			dup := false
			for _, o := range out[start:] {
				if o.module == e.module && t.names[o.nameOff:o.nameOff+uint32(o.nameLen)] == t.names[e.nameOff:e.nameOff+uint32(e.nameLen)] {
					dup = true
					break
				}
			}
			if !dup {
				out = append(out, e)
			}
		}
		i = j
	}
	return out
}

// prefer orders two entries with the same name for name lookups: core
// kernel before modules, then by type preference, then by address.
func (t *Table) prefer(a, b uint32) int {
	ea, eb := &t.entries[a], &t.entries[b]
	if (ea.module == 0) != (eb.module == 0) {
		if ea.module == 0 {
			return -1
		}
		return 1
	}
	if ea.rank != eb.rank {
		return int(ea.rank) - int(eb.rank)
	}
	switch {
	case ea.addr < eb.addr:
		return -1
	case ea.addr > eb.addr:
		return 1
	}
	return 0
}

// isEndMarker reports whether name is a linker-generated label for the end
// of a text section rather than a function.
func isEndMarker(name []byte) bool {
	switch string(name) {
	case "_etext", "_einittext", "_end":
		return true
	}
	return len(name) > 2 && name[0] == '_' && name[1] == '_' && strings.HasSuffix(string(name), "_text_end")
}

// isStartMarker reports whether name is a linker-generated label for the
// start of a text section, which usually shares its address with a function.
func isStartMarker(name []byte) bool {
	switch string(name) {
	case "_text", "_stext", "_sinittext":
		return true
	}
	return len(name) > 2 && name[0] == '_' && name[1] == '_' && strings.HasSuffix(string(name), "_text_start")
}

func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

// textRank returns the resolution preference of a symbol type, or 0 if the
// type does not denote text.
func textRank(typ byte) byte {
	switch typ {
	case 'T':
		return 1
	case 'W':
		return 2
	case 't':
		return 3
	case 'w':
		return 4
	}
	return 0
}

// fields holds the parts of one kallsyms line; the slices alias the line.
type fields struct {
	addr   uint64
	typ    byte
	name   []byte
	module []byte
}

// splitLine parses "addr type name [module]" with fields separated by
// spaces or tabs.
func splitLine(line []byte) (fields, bool) {
	var f fields
	next := func() []byte {
		for len(line) > 0 && isSpace(line[0]) {
			line = line[1:]
		}
		i := 0
		for i < len(line) && !isSpace(line[i]) {
			i++
		}
		tok := line[:i]
		line = line[i:]
		return tok
	}
	addr, typ, name, mod := next(), next(), next(), next()
	if len(addr) == 0 || len(addr) > 16 || len(typ) != 1 || len(name) == 0 || len(next()) != 0 {
		return f, false
	}
	for _, c := range addr {
		d, ok := hexDigit(c)
		if !ok {
			return f, false
		}
		f.addr = f.addr<<4 | uint64(d)
	}
	if len(mod) > 0 {
		if len(mod) < 3 || mod[0] != '[' || mod[len(mod)-1] != ']' {
			return f, false
		}
		f.module = mod[1 : len(mod)-1]
	}
	f.typ = typ[0]
	f.name = name
	return f, true
}

func isBlank(line []byte) bool {
	for _, c := range line {
		if !isSpace(c) {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func (t *Table) name(i uint32) string {
	e := &t.entries[i]
	return t.names[e.nameOff : e.nameOff+uint32(e.nameLen)]
}

func (t *Table) symbol(i int, offset uint64) Symbol {
	e := &t.entries[i]
	return Symbol{
		Name:   t.names[e.nameOff : e.nameOff+uint32(e.nameLen)],
		Module: t.modules[e.module],
		Addr:   e.addr,
		Offset: offset,
		Type:   e.typ,
	}
}

// Len returns the number of symbols in the table, counting every name of
// an address with several names.
func (t *Table) Len() int {
	return len(t.entries)
}

// Resolve returns the symbol containing addr and the offset of addr inside
// it. It reports false if addr lies below the first symbol, past the end of
// the symbol preceding it, or if the table is empty. Resolve does not
// allocate.
func (t *Table) Resolve(addr uint64) (Symbol, bool) {
	es := t.entries
	lo, hi := 0, len(es)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if es[m].addr <= addr {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return Symbol{}, false
	}
	i := lo - 1
	off := addr - es[i].addr
	if off >= uint64(es[i].size) {
		return Symbol{}, false
	}
	return t.symbol(i, off), true
}

// Lookup returns the symbol with the given name. If several symbols share
// the name (static functions in different files or modules), a core kernel
// symbol is preferred over a module symbol, a global over a local one, and
// then the lowest address; LookupAll returns every match.
func (t *Table) Lookup(name string) (Symbol, bool) {
	i, ok := t.firstByName(name)
	if !ok {
		return Symbol{}, false
	}
	return t.symbol(int(t.byName[i]), 0), true
}

// LookupAll returns all symbols with the given name in the order of
// preference described for Lookup, or nil if there is none.
func (t *Table) LookupAll(name string) []Symbol {
	i, ok := t.firstByName(name)
	if !ok {
		return nil
	}
	var out []Symbol
	for ; i < len(t.byName) && t.name(t.byName[i]) == name; i++ {
		out = append(out, t.symbol(int(t.byName[i]), 0))
	}
	return out
}

// LookupModule returns the symbol with the given name in the given module,
// using "" for the core kernel.
func (t *Table) LookupModule(name, module string) (Symbol, bool) {
	i, ok := t.firstByName(name)
	if !ok {
		return Symbol{}, false
	}
	for ; i < len(t.byName) && t.name(t.byName[i]) == name; i++ {
		j := t.byName[i]
		if t.modules[t.entries[j].module] == module {
			return t.symbol(int(j), 0), true
		}
	}
	return Symbol{}, false
}

func (t *Table) firstByName(name string) (int, bool) {
	i, found := slices.BinarySearchFunc(t.byName, name, func(idx uint32, target string) int {
		return strings.Compare(t.name(idx), target)
	})
	return i, found
}
