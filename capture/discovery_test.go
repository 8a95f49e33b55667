package capture

import (
	"reflect"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
)

// TestDiscoveryFastPath: the tracepoints and functions found through the
// raw type table (kernelTable: only the matching types decoded) are those
// found by decoding every type, on this host's kernel.
func TestDiscoveryFastPath(t *testing.T) {
	requireBTF(t)
	testDiscoveryFastPath(t)
}

// TestInVMDiscoveryFastPath is TestDiscoveryFastPath on the VM's kernel.
func TestInVMDiscoveryFastPath(t *testing.T) {
	requireVM(t)
	testDiscoveryFastPath(t)
}

func testDiscoveryFastPath(t *testing.T) {
	traceable := traceableFunctions(nil)
	fresh := func() *btf.Spec {
		spec, err := btf.LoadKernelSpec()
		if err != nil {
			t.Fatal(err)
		}
		// LoadKernelSpec hands out copies of one cached spec: a copy
		// decodes its types anew.
		return spec.Copy()
	}
	slow := fresh()
	start := time.Now()
	hooksAll, err := discoverHooks(slow, nil)
	if err != nil {
		t.Fatal(err)
	}
	fnsAll, err := discoverFunctions(slow, nil, traceable)
	if err != nil {
		t.Fatal(err)
	}
	slowTime := time.Since(start)

	fast := fresh()
	start = time.Now()
	tab := kernelTable(fast)
	if tab == nil {
		t.Fatal("no raw type table for the kernel's BTF")
	}
	hooks, err := discoverHooks(fast, tab)
	if err != nil {
		t.Fatal(err)
	}
	// The fast path also keeps only the traceable functions that take an
	// skb while reading the list.
	fns, err := discoverFunctions(fast, tab, traceableFunctions(tab))
	if err != nil {
		t.Fatal(err)
	}
	fastTime := time.Since(start)
	t.Logf("%d tracepoints, %d functions: %v decoding every type, %v through the raw table", len(hooks), len(fns), slowTime.Round(time.Millisecond), fastTime.Round(time.Millisecond))
	if !reflect.DeepEqual(hooks, hooksAll) {
		t.Errorf("tracepoints differ:\nraw table %v\nall types %v", hooks, hooksAll)
	}
	if !reflect.DeepEqual(fns, fnsAll) {
		t.Errorf("functions differ: %d through the raw table, %d decoding every type", len(fns), len(fnsAll))
	}
}
