package kmeta

import (
	"strconv"
	"strings"
)

// Interface description (if_description) of a recording's interfaces:
//
//	netns INODE (NAME) ifindex N    a device
//	netns INODE (NAME) no device    events of sk_buffs without a device
//	no device, no netns             neither known
//
// " (NAME)" is left out when the namespace has no name.

// noDeviceNoNetns is the description of the interface with neither.
const noDeviceNoNetns = "no device, no netns"

// Interface is what an interface description tells.
type Interface struct {
	// NetNS is the network namespace inode (0: none known).
	NetNS uint32
	// NSName is the namespace's name ("" when it has none): its
	// /run/netns name, "init", or "pid N (comm)".
	NSName string
	// Ifindex is the device's index in NetNS (0: no device).
	Ifindex uint32
}

// InterfaceDescription returns the if_description of a device:
// "netns 4026532841 (nsA) ifindex 2", "netns 4026532841 (nsA) no device",
// or "no device, no netns".
func InterfaceDescription(netns uint32, nsName string, ifindex uint32) string {
	if netns == 0 && ifindex == 0 {
		return noDeviceNoNetns
	}
	s := "netns " + strconv.FormatUint(uint64(netns), 10)
	if nsName != "" {
		s += " (" + nsName + ")"
	}
	if ifindex == 0 {
		return s + " no device"
	}
	return s + " ifindex " + strconv.FormatUint(uint64(ifindex), 10)
}

// ParseInterfaceDescription reads an interface description that
// InterfaceDescription wrote; ok is false for any other text.
func ParseInterfaceDescription(desc string) (ifc Interface, ok bool) {
	if desc == noDeviceNoNetns {
		return Interface{}, true
	}
	rest, ok := strings.CutPrefix(desc, "netns ")
	if !ok {
		return Interface{}, false
	}
	if r, found := strings.CutSuffix(rest, " no device"); found {
		rest = r
	} else {
		i := strings.LastIndex(rest, " ifindex ")
		if i < 0 {
			return Interface{}, false
		}
		n, err := strconv.ParseUint(rest[i+len(" ifindex "):], 10, 32)
		if err != nil || n == 0 {
			return Interface{}, false
		}
		ifc.Ifindex, rest = uint32(n), rest[:i]
	}
	num, name, named := strings.Cut(rest, " ")
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil {
		return Interface{}, false
	}
	ifc.NetNS = uint32(n)
	if named {
		inner, ok := strings.CutPrefix(name, "(")
		if !ok || !strings.HasSuffix(inner, ")") || len(inner) < 2 {
			return Interface{}, false
		}
		ifc.NSName = inner[:len(inner)-1]
	}
	return ifc, true
}
