package btfscan

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// marshal returns the raw BTF of types, written by cilium/ebpf.
func marshal(t testing.TB, types ...btf.Type) []byte {
	t.Helper()
	b, err := btf.NewBuilder(types, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// sample is a small type graph with every kind the scanner reads through:
// a function taking const skb_t * (a typedef of struct sk_buff *'s
// target), a tracepoint typedef, a volatile, a union, enums and an array.
func sample() []btf.Type {
	u32 := &btf.Int{Name: "u32", Size: 4}
	skb := &btf.Struct{Name: "sk_buff", Size: 8, Members: []btf.Member{{Name: "len", Type: u32}}}
	skbT := &btf.Typedef{Name: "skb_t", Type: skb}
	dev := &btf.Struct{Name: "net_device", Size: 4}
	proto := &btf.FuncProto{Return: u32, Params: []btf.FuncParam{
		{Name: "dev", Type: &btf.Pointer{Target: dev}},
		{Name: "skb", Type: &btf.Pointer{Target: &btf.Const{Type: skbT}}},
	}}
	tp := &btf.FuncProto{Return: &btf.Void{}, Params: []btf.FuncParam{
		{Type: &btf.Pointer{Target: &btf.Void{}}},
		{Type: &btf.Volatile{Type: &btf.Pointer{Target: skb}}},
	}}
	return []btf.Type{
		&btf.Func{Name: "ip_rcv", Type: proto, Linkage: btf.GlobalFunc},
		&btf.Func{Name: "other", Type: &btf.FuncProto{Return: u32, Params: []btf.FuncParam{{Name: "x", Type: u32}}}, Linkage: btf.GlobalFunc},
		&btf.Typedef{Name: "btf_trace_net_dev_queue", Type: &btf.Pointer{Target: tp}},
		&btf.Union{Name: "u", Size: 4, Members: []btf.Member{{Name: "a", Type: u32}}},
		&btf.Enum{Name: "e", Size: 4, Values: []btf.EnumValue{{Name: "A", Value: 1}}},
		&btf.Enum{Name: "e64", Size: 8, Values: []btf.EnumValue{{Name: "B", Value: 1 << 40}}},
		&btf.Array{Index: u32, Type: u32, Nelems: 3},
		&btf.Fwd{Name: "f"},
		&btf.Float{Name: "double", Size: 8},
	}
}

// TestScanAgainstDecoder checks every type of raw BTF written by
// cilium/ebpf against what its decoder makes of the same bytes: kind,
// name, the type a reference points to, a prototype's parameters, and
// which parameters point to struct sk_buff.
func TestScanAgainstDecoder(t *testing.T) {
	raw := marshal(t, sample()...)
	tab, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstDecoder(t, raw, tab, 0)
}

// TestScanKernel is TestScanAgainstDecoder on this host's kernel BTF, a
// type in every 97 (all of them with -short off would take seconds).
func TestScanKernel(t *testing.T) {
	raw, err := os.ReadFile("/sys/kernel/btf/vmlinux")
	if err != nil {
		t.Skipf("no kernel BTF here: %v", err)
	}
	tab, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d types", tab.Len())
	checkAgainstDecoder(t, raw, tab, 97)
}

func checkAgainstDecoder(t *testing.T, raw []byte, tab *Table, every int) {
	t.Helper()
	spec, err := btf.LoadSpecFromReader(bytesReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for id := uint32(1); ; id++ {
		typ, err := spec.TypeByID(btf.TypeID(id))
		if errors.Is(err, btf.ErrNotFound) {
			if int(id-1) != tab.Len() {
				t.Fatalf("decoder has %d types, scanner %d", id-1, tab.Len())
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if every > 0 && id%uint32(every) != 0 && tab.Kind(id) != KindFunc {
			continue
		}
		if kindOf(typ) == -1 && tab.Kind(id) == KindDeclTag {
			continue // the decoder attaches decl tags to what they tag
		}
		n++
		if got, want := tab.Name(id), typ.TypeName(); got != want {
			t.Errorf("type %d: name %q, want %q", id, got, want)
		}
		if kind := tab.Kind(id); kind != kindOf(typ) && !(kindOf(typ) == -KindEnum && (kind == KindEnum || kind == KindEnum64)) {
			t.Errorf("type %d (%s): kind %d, want %d", id, typ, kind, kindOf(typ))
		}
		var target btf.Type
		switch v := typ.(type) {
		case *btf.Pointer:
			target = v.Target
		case *btf.Typedef:
			target = v.Type
		case *btf.Const:
			target = v.Type
		case *btf.Volatile:
			target = v.Type
		case *btf.Restrict:
			target = v.Type
		case *btf.Func:
			target = v.Type
		}
		if target != nil {
			want, err := spec.TypeID(target)
			if err != nil {
				t.Fatal(err)
			}
			if got := tab.Ref(id); got != uint32(want) {
				t.Errorf("type %d (%s): refers to %d, want %d", id, typ, got, want)
			}
		}
		if fn, ok := typ.(*btf.Func); ok {
			proto := fn.Type.(*btf.FuncProto)
			params := tab.Params(tab.Ref(id))
			if len(params) != len(proto.Params) {
				t.Fatalf("%s: %d parameters, want %d", fn.Name, len(params), len(proto.Params))
			}
			for i, p := range proto.Params {
				if got, want := tab.PointsToStruct(params[i], "sk_buff"), pointsToSKB(p.Type); got != want {
					t.Errorf("%s parameter %d (%s): points to sk_buff %v, want %v", fn.Name, i, p.Type, got, want)
				}
			}
		}
	}
	t.Logf("%d types compared", n)
}

// pointsToSKB is the decoder's view of PointsToStruct(id, "sk_buff").
func pointsToSKB(t btf.Type) bool {
	p, ok := btf.UnderlyingType(t).(*btf.Pointer)
	if !ok {
		return false
	}
	s, ok := btf.UnderlyingType(p.Target).(*btf.Struct)
	return ok && s.Name == "sk_buff"
}

func kindOf(t btf.Type) int {
	switch t.(type) {
	case *btf.Int:
		return KindInt
	case *btf.Pointer:
		return KindPtr
	case *btf.Array:
		return KindArray
	case *btf.Struct:
		return KindStruct
	case *btf.Union:
		return KindUnion
	case *btf.Enum:
		// ENUM or ENUM64: the decoder makes both an Enum.
		return -KindEnum
	case *btf.Fwd:
		return KindFwd
	case *btf.Typedef:
		return KindTypedef
	case *btf.Volatile:
		return KindVolatile
	case *btf.Const:
		return KindConst
	case *btf.Restrict:
		return KindRestrict
	case *btf.Func:
		return KindFunc
	case *btf.FuncProto:
		return KindFuncProto
	case *btf.Var:
		return KindVar
	case *btf.Datasec:
		return KindDatasec
	case *btf.Float:
		return KindFloat
	case *btf.TypeTag:
		return KindTypeTag
	}
	return -1
}

// TestHostileBTF: cut and corrupted blobs give ErrBadBTF, and lookups with
// ids outside the table give zero values, never a panic.
func TestHostileBTF(t *testing.T) {
	raw := marshal(t, sample()...)
	for n := 0; n < len(raw); n++ {
		tab, err := Parse(raw[:n])
		if err == nil {
			// A cut string section still parses; lookups stay in bounds.
			for id := uint32(0); id <= uint32(tab.Len())+1; id++ {
				tab.Name(id)
				tab.Params(tab.Ref(id))
				tab.PointsToStruct(id, "sk_buff")
			}
			continue
		}
		if !errors.Is(err, ErrBadBTF) {
			t.Fatalf("%d bytes: %v, want ErrBadBTF", n, err)
		}
	}
	tab, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint32{0, uint32(tab.Len()) + 1, 1 << 31} {
		if tab.Kind(id) != 0 || tab.Name(id) != "" || tab.Ref(id) != 0 || tab.Params(id) != nil || tab.PointsToStruct(id, "sk_buff") {
			t.Errorf("id %d outside the table answers something", id)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(marshal(f, sample()...))
	f.Fuzz(func(t *testing.T, raw []byte) {
		tab, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrBadBTF) {
				t.Fatalf("%v, want ErrBadBTF", err)
			}
			return
		}
		for id := uint32(0); id <= uint32(tab.Len())+1; id++ {
			tab.Name(id)
			tab.HasNamePrefix(id, "btf_trace_")
			tab.Params(tab.Ref(id))
			tab.PointsToStruct(id, "sk_buff")
		}
	})
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
