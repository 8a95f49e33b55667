package capture

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/pathcap/pathcap/bpf"
)

func TestRetTypeExtend(t *testing.T) {
	for _, tc := range []struct {
		r    retType
		v    uint64
		want int64
	}{
		{retType{size: 4, signed: true}, 0xdeadbeef_ffffffea, -22},
		{retType{size: 4, signed: true}, 0x00000001_00000001, 1},
		{retType{size: 4}, 0xffffffff_ffffffff, 0xffffffff},
		{retType{size: 1}, 0x1ff, 0xff},
		{retType{size: 8}, 0xffff888000000000, -0x0000778000000000},
		{retType{}, 7, 7},
	} {
		if got := tc.r.extend(tc.v); got != tc.want {
			t.Errorf("%+v.extend(%#x) = %d, want %d", tc.r, tc.v, got, tc.want)
		}
	}
}

func TestCookie(t *testing.T) {
	c := cookie(0x1234, 3, false)
	if uint16(c) != 0x1234 || (c>>16)&0xff != 3 || (c>>24)&1 != 0 {
		t.Errorf("cookie %#x", c)
	}
	if c := cookie(7, 0, true); (c>>24)&1 != 1 || uint16(c) != 7 {
		t.Errorf("freeing cookie %#x", c)
	}
}

// TestRecordLayout checks that the kprobe object's record is the one the
// Go side decodes (both objects include bpf/common.h).
func TestRecordLayout(t *testing.T) {
	if recordSize != 128 {
		t.Errorf("record is %d bytes, want 128", recordSize)
	}
	if off := unsafe.Offsetof(bpf.SkbEvent{}.StackLen); off != 92 {
		t.Errorf("stack_len at %d, want 92", off)
	}
	spec, err := bpf.LoadKprobe()
	if err != nil {
		t.Fatal(err)
	}
	skb, err := bpf.LoadSkb()
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range skb.Maps {
		// .rodata and the other data sections are each object's own.
		if km, ok := spec.Maps[name]; ok && !strings.HasPrefix(name, ".") && (km.KeySize != m.KeySize || km.ValueSize != m.ValueSize || km.Type != m.Type || km.Flags != m.Flags) {
			t.Errorf("map %s differs between the objects: %+v vs %+v", name, km, m)
		}
	}
	for name := range skb.Variables {
		if _, ok := spec.Variables[name]; !ok && name != "unused_event" {
			t.Errorf("knob %s missing from the kprobe object", name)
		}
	}
}

func TestAutoOrder(t *testing.T) {
	all := []Hook{{Name: "ip_rcv"}, {Name: "skb_gso_validate_network_len"}, {Name: "xt_snat_target_v2"}}
	if got := autoOrder(plan{all: all}); !slices.Equal(got, []string{BackendKprobeMulti, BackendFentry, BackendKprobe}) {
		t.Errorf("default set: %v", got)
	}
	if got := autoOrder(plan{all: all, re: regexp.MustCompile("^ip_")}); got[0] != BackendFentry {
		t.Errorf("small set: %v", got)
	}
	if got := autoOrder(plan{all: all, exit: true}); !slices.Equal(got, []string{BackendFentry}) {
		t.Errorf("exits: %v", got)
	}
	var many []Hook
	for i := range AutoFentryMax + 1 {
		many = append(many, Hook{Name: "f" + string(rune('a'+i%26)) + string(rune('a'+i/26))})
	}
	if got := autoOrder(plan{all: many, re: regexp.MustCompile("^f")}); got[0] != BackendKprobeMulti {
		t.Errorf("large set: %v", got)
	}
	p := plan{all: all}
	if got := p.functions(BackendKprobeMulti); len(got) != 3 {
		t.Errorf("kprobe-multi default: %v", got)
	}
	if got := p.functions(BackendFentry); len(got) != 1 || got[0].Name != "ip_rcv" {
		t.Errorf("fentry default: %v", got)
	}
}

func TestListFunctions(t *testing.T) {
	requireBTF(t)
	fns, err := ListFunctions()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Hook{}
	for _, h := range fns {
		byName[h.Name] = h
	}
	for name, arg := range map[string]int{"ip_rcv": 0, "ip_rcv_finish": 2, "skb_clone": 0} {
		h, ok := byName[name]
		if !ok {
			t.Errorf("%s not found among %d functions", name, len(fns))
			continue
		}
		if h.SKBArg != arg {
			t.Errorf("%s: skb at %d, want %d", name, h.SKBArg, arg)
		}
	}
	if h := byName["skb_clone"]; !h.Clone || h.ret.size != 8 {
		t.Errorf("skb_clone: clone %v, return %+v", h.Clone, h.ret)
	}
	if h := byName["ip_rcv"]; h.ret != (retType{size: 4, signed: true}) {
		t.Errorf("ip_rcv returns %+v, want a signed int", h.ret)
	}
	t.Logf("%d functions take an skb", len(fns))
}

func TestStackDecode(t *testing.T) {
	r := &Recorder{}
	var buf []uint64
	var e Event
	area := make([]byte, 32)
	for i := range 3 {
		for j := range 8 {
			area[i*8+j] = byte(i + 1)
		}
	}
	r.decodeStack(&e, area, 24, &buf)
	if len(e.Stack) != 3 || e.Stack[0] != 0x0101010101010101 || e.StackLost {
		t.Errorf("stack %x lost %v", e.Stack, e.StackLost)
	}
	r.decodeStack(&e, area, -14, &buf)
	if e.Stack != nil || !e.StackLost || e.StackErr != 14 {
		t.Errorf("error: stack %x lost %v errno %d", e.Stack, e.StackLost, e.StackErr)
	}
	r.decodeStack(&e, area, 0, &buf)
	if e.Stack != nil || !e.StackLost || e.StackErr != 0 {
		t.Errorf("empty: stack %x lost %v errno %d", e.Stack, e.StackLost, e.StackErr)
	}
	allocs := testing.AllocsPerRun(100, func() { r.decodeStack(&e, area, 24, &buf) })
	if allocs != 0 {
		t.Errorf("decodeStack allocates %v times", allocs)
	}
}
