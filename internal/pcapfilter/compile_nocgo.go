//go:build !cgo || !(linux || darwin)

package pcapfilter

import "golang.org/x/net/bpf"

// Available reports whether this build can compile filter expressions.
func Available() bool { return false }

// Compile returns an error wrapping ErrUnavailable: this build has no
// libpcap.
func Compile(expr string, linkType, snaplen int) ([]bpf.RawInstruction, error) {
	return nil, ErrUnavailable
}

// CompileRaw returns an error wrapping ErrUnavailable: this build has no
// libpcap.
func CompileRaw(expr string, linkType, snaplen int) ([]bpf.RawInstruction, error) {
	return nil, ErrUnavailable
}

// RunLibpcap reports false: this build has no libpcap to run programs with.
func RunLibpcap(prog []bpf.RawInstruction, packet []byte) bool { return false }
