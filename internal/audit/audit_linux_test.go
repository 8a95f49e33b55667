//go:build linux

package audit

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// datagram builds what kauditd sends: a netlink header whose nlmsg_len
// counts only the text, then the text.
func datagram(typ uint16, text string) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN+len(text))
	binary.NativeEndian.PutUint32(b[0:], uint32(len(text)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	copy(b[unix.NLMSG_HDRLEN:], text)
	return b
}

func TestParseRecord(t *testing.T) {
	const text = `audit(1796608343.584:7): avc:  denied  { confidentiality } for  pid=42 comm="x" lockdown_reason="use of bpf to read kernel RAM" scontext=u:r:t tcontext=u:r:t tclass=lockdown permissive=0`
	r, ok := parseRecord(append(datagram(TypeAVC, text+"\n"), 0, 0))
	if !ok || r.Type != TypeAVC || r.Text != text {
		t.Errorf("parseRecord = %+v, %v; want type %d and the text", r, ok, TypeAVC)
	}
	if _, ok := parseRecord(datagram(unix.NLMSG_ERROR, "")); ok {
		t.Error("parseRecord took NLMSG_ERROR for a record")
	}
	if _, ok := parseRecord([]byte{1, 2, 3}); ok {
		t.Error("parseRecord took a short datagram for a record")
	}
}

func TestCount(t *testing.T) {
	l := &Listener{byType: make(map[uint16]int)}
	l.handle(datagram(TypeAVC, `avc:  denied  { confidentiality } lockdown_reason="use of bpf to read kernel RAM"`))
	l.handle(datagram(TypeAVC, `avc:  denied  { integrity } lockdown_reason="unsigned module loading"`))
	l.handle(datagram(1300, `arch=c000003e syscall=321 success=no`))
	if got := l.Count(""); got != 2 {
		t.Errorf(`Count("") = %d, want 2`, got)
	}
	if got := l.Count("confidentiality"); got != 1 {
		t.Errorf(`Count("confidentiality") = %d, want 1`, got)
	}
	if got := l.Count("lockdown_reason="); got != 2 {
		t.Errorf(`Count("lockdown_reason=") = %d, want 2`, got)
	}
	if got, want := l.Total(), 3; got != want {
		t.Errorf("Total() = %d, want %d", got, want)
	}
	if got := l.CountType(1300); got != 1 {
		t.Errorf("CountType(1300) = %d, want 1", got)
	}
	l.Reset()
	if got := l.Count(""); got != 0 {
		t.Errorf("after Reset, Count = %d", got)
	}
}

func TestParseStatus(t *testing.T) {
	b := make([]byte, 10*4)
	for i := range 10 {
		binary.NativeEndian.PutUint32(b[4*i:], uint32(i))
	}
	st, ok := parseStatus(b)
	want := Status{Enabled: 1, Failure: 2, PID: 3, RateLimit: 4, BacklogLimit: 5, Lost: 6, Backlog: 7}
	if !ok || st != want {
		t.Errorf("parseStatus = %+v, %v; want %+v", st, ok, want)
	}
	if _, ok := parseStatus(b[:31]); ok {
		t.Error("parseStatus took 31 bytes")
	}
}
