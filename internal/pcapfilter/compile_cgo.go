//go:build cgo && (linux || darwin)

package pcapfilter

/*
#cgo linux LDFLAGS: -Wl,-Bstatic -lpcap -Wl,-Bdynamic -ldbus-1
#cgo darwin LDFLAGS: -lpcap
#include <stdlib.h>
#include <pcap/pcap.h>
*/
import "C"

import (
	"sync"
	"unsafe"

	"golang.org/x/net/bpf"
)

// compileMu serialises pcap_compile, which is not thread-safe in older
// libpcap versions.
var compileMu sync.Mutex

// Available reports whether this build can compile filter expressions.
func Available() bool { return true }

// Compile compiles a tcpdump filter expression for packets of the given
// link type and snap length. The program it returns jumps only forward
// (see Unroll).
func Compile(expr string, linkType, snaplen int) ([]bpf.RawInstruction, error) {
	prog, err := CompileRaw(expr, linkType, snaplen)
	if err != nil {
		return nil, err
	}
	return Unroll(prog, UnrollDepth)
}

// CompileRaw is Compile without Unroll: libpcap's program as it is, which
// may jump backward.
func CompileRaw(expr string, linkType, snaplen int) ([]bpf.RawInstruction, error) {
	compileMu.Lock()
	defer compileMu.Unlock()
	p := C.pcap_open_dead(dlt(linkType), C.int(snaplen))
	if p == nil {
		return nil, &Error{Expr: expr, Msg: "pcap_open_dead failed"}
	}
	defer C.pcap_close(p)
	cexpr := C.CString(expr)
	defer C.free(unsafe.Pointer(cexpr))
	var prog C.struct_bpf_program
	if C.pcap_compile(p, &prog, cexpr, 1, C.PCAP_NETMASK_UNKNOWN) < 0 {
		return nil, &Error{Expr: expr, Msg: C.GoString(C.pcap_geterr(p))}
	}
	defer C.pcap_freecode(&prog)
	n := int(prog.bf_len)
	insns := unsafe.Slice(prog.bf_insns, n)
	out := make([]bpf.RawInstruction, n)
	for i, in := range insns {
		out[i] = bpf.RawInstruction{Op: uint16(in.code), Jt: uint8(in.jt), Jf: uint8(in.jf), K: uint32(in.k)}
	}
	return out, nil
}

// dlt returns libpcap's DLT_* value for a LINKTYPE_* value: they differ for
// raw IP, whose DLT value also differs between systems.
func dlt(linkType int) C.int {
	if linkType == LinkTypeRaw {
		return C.DLT_RAW
	}
	return C.int(linkType)
}

// RunLibpcap runs a program with libpcap's own interpreter (which allows
// backward jumps): the reference that other runners are checked against.
// It reports whether the packet is accepted.
func RunLibpcap(prog []bpf.RawInstruction, packet []byte) bool {
	if len(prog) == 0 {
		return false
	}
	insns := make([]C.struct_bpf_insn, len(prog))
	for i, in := range prog {
		insns[i] = C.struct_bpf_insn{code: C.u_short(in.Op), jt: C.u_char(in.Jt), jf: C.u_char(in.Jf), k: C.bpf_u_int32(in.K)}
	}
	var p *C.u_char
	if len(packet) > 0 {
		p = (*C.u_char)(unsafe.Pointer(&packet[0]))
	}
	return C.bpf_filter(&insns[0], p, C.u_int(len(packet)), C.u_int(len(packet))) != 0
}
