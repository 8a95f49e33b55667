package kmeta_test

import (
	"testing"

	"github.com/pathcap/pathcap/kmeta"
)

func TestInterfaceDescription(t *testing.T) {
	for _, c := range []struct {
		ifc  kmeta.Interface
		desc string
	}{
		{kmeta.Interface{NetNS: 4026532841, NSName: "nsA", Ifindex: 2}, "netns 4026532841 (nsA) ifindex 2"},
		{kmeta.Interface{NetNS: 4026532841, NSName: "nsA"}, "netns 4026532841 (nsA) no device"},
		{kmeta.Interface{NetNS: 4026531840, Ifindex: 1}, "netns 4026531840 ifindex 1"},
		{kmeta.Interface{NetNS: 7}, "netns 7 no device"},
		{kmeta.Interface{}, "no device, no netns"},
		{kmeta.Interface{NetNS: 9, NSName: "pid 42 (sleep (x))", Ifindex: 3}, "netns 9 (pid 42 (sleep (x))) ifindex 3"},
		{kmeta.Interface{NetNS: 9, NSName: "a ifindex 2", Ifindex: 3}, "netns 9 (a ifindex 2) ifindex 3"},
		{kmeta.Interface{NetNS: 9, NSName: "init", Ifindex: 4294967295}, "netns 9 (init) ifindex 4294967295"},
	} {
		got := kmeta.InterfaceDescription(c.ifc.NetNS, c.ifc.NSName, c.ifc.Ifindex)
		if got != c.desc {
			t.Errorf("InterfaceDescription(%+v) = %q, want %q", c.ifc, got, c.desc)
		}
		back, ok := kmeta.ParseInterfaceDescription(got)
		if !ok || back != c.ifc {
			t.Errorf("ParseInterfaceDescription(%q) = %+v, %v; want %+v", got, back, ok, c.ifc)
		}
	}
	for _, bad := range []string{"", "eth0", "netns", "netns x ifindex 2", "netns 5 ifindex x", "netns 5 ifindex 0",
		"netns 5 (a ifindex 2", "netns 5 nsA ifindex 2", "netns 5 () ifindex 2", "netns 99999999999 no device"} {
		if ifc, ok := kmeta.ParseInterfaceDescription(bad); ok {
			t.Errorf("ParseInterfaceDescription(%q) = %+v, want not ok", bad, ifc)
		}
	}
}

func FuzzInterfaceDescription(f *testing.F) {
	f.Add(uint32(4026532841), "nsA", uint32(2))
	f.Add(uint32(0), "", uint32(0))
	f.Add(uint32(1), "pid 1 (x) ifindex 3", uint32(0))
	f.Fuzz(func(t *testing.T, netns uint32, name string, ifindex uint32) {
		if netns == 0 && ifindex == 0 {
			name = ""
		}
		desc := kmeta.InterfaceDescription(netns, name, ifindex)
		back, ok := kmeta.ParseInterfaceDescription(desc)
		want := kmeta.Interface{NetNS: netns, NSName: name, Ifindex: ifindex}
		if !ok || back != want {
			t.Fatalf("%q read back as %+v, %v; want %+v", desc, back, ok, want)
		}
	})
}
