// Package pcapfilter compiles tcpdump filter expressions with libpcap and
// runs the resulting classic BPF programs in Go.
//
// Compiling needs cgo and libpcap; where they are missing, Compile returns
// an error wrapping ErrUnavailable. On Linux, libpcap is linked statically:
// distributions name its shared library differently (libpcap.so.0.8 on
// Debian, libpcap.so.1 on Fedora), and a recorder must start on any of them.
package pcapfilter

import (
	"errors"
	"fmt"

	"golang.org/x/net/bpf"
)

// ErrUnavailable means this build cannot compile filter expressions.
var ErrUnavailable = errors.New("filter expressions need libpcap, and this build has none (built without cgo)")

// Link types the filters are compiled for (LINKTYPE_* values).
const (
	LinkTypeEthernet = 1
	LinkTypeRaw      = 101 // packets that start at the IPv4 or IPv6 header
)

// Error is a filter expression libpcap could not compile.
type Error struct {
	Expr string
	Msg  string // libpcap's message
}

func (e *Error) Error() string {
	return fmt.Sprintf("bad filter expression %q: %s", e.Expr, e.Msg)
}

// Matcher runs a compiled filter on packets in Go.
type Matcher struct {
	vm *bpf.VM
}

// NewMatcher returns a Matcher for a compiled program.
func NewMatcher(prog []bpf.RawInstruction) (*Matcher, error) {
	insns, ok := bpf.Disassemble(prog)
	if !ok {
		return nil, errors.New("filter program has instructions the Go BPF machine cannot run")
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		return nil, fmt.Errorf("load filter program: %w", err)
	}
	return &Matcher{vm: vm}, nil
}

// Match reports whether the filter accepts the packet.
func (m *Matcher) Match(packet []byte) bool {
	n, err := m.vm.Run(packet)
	return err == nil && n > 0
}
