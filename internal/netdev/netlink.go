package netdev

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// errDumpInterrupted reports that the kernel flagged a dump as inconsistent
// because the link table changed while it was being read.
var errDumpInterrupted = errors.New("link dump interrupted")

// dumpRetries bounds the number of times an interrupted dump is restarted.
const dumpRetries = 5

// dumpSeq is the sequence number of link dump requests; every dump uses a
// fresh socket, so it need not vary.
const dumpSeq = 1

// Sizes of the fixed netlink structures.
const (
	nlmsgHdrLen  = unix.SizeofNlMsghdr  // 16
	ifInfoMsgLen = unix.SizeofIfInfomsg // 16
	rtAttrLen    = unix.SizeofRtAttr    // 4
	// nlaTypeMask strips the NLA_F_NESTED and NLA_F_NET_BYTEORDER flags
	// from an attribute type.
	nlaTypeMask = 0x3fff
)

// dumpLinks lists the network devices of the calling thread's network
// namespace with an RTM_GETLINK dump, returning ifindex → name.
func dumpLinks() (map[uint32]string, error) {
	var err error
	for range dumpRetries {
		var links map[uint32]string
		links, err = dumpLinksOnce()
		if !errors.Is(err, errDumpInterrupted) {
			return links, err
		}
	}
	return nil, err
}

func dumpLinksOnce() (map[uint32]string, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("bind netlink socket: %w", err)
	}
	req := linkDumpRequest(dumpSeq)
	for {
		err = unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("send link dump request: %w", err)
	}

	links := make(map[uint32]string)
	buf := make([]byte, 32<<10)
	for {
		// Peek first so that a datagram larger than buf is not truncated.
		n, err := recvRetry(fd, buf, unix.MSG_PEEK|unix.MSG_TRUNC)
		if err != nil {
			return nil, fmt.Errorf("receive link dump: %w", err)
		}
		if n > len(buf) {
			buf = make([]byte, n)
		}
		n, from, err := recvFromRetry(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("receive link dump: %w", err)
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue // not from the kernel
		}
		done, err := parseLinkDump(buf[:n], dumpSeq, links)
		if err != nil {
			return nil, err
		}
		if done {
			return links, nil
		}
	}
}

func recvRetry(fd int, buf []byte, flags int) (int, error) {
	n, _, err := recvFromRetry(fd, buf, flags)
	return n, err
}

func recvFromRetry(fd int, buf []byte, flags int) (int, unix.Sockaddr, error) {
	for {
		n, from, err := unix.Recvfrom(fd, buf, flags)
		if err != unix.EINTR {
			return n, from, err
		}
	}
}

// linkDumpRequest builds an RTM_GETLINK dump request for all families.
func linkDumpRequest(seq uint32) []byte {
	b := make([]byte, nlmsgHdrLen+ifInfoMsgLen)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:4], uint32(len(b)))
	ne.PutUint16(b[4:6], unix.RTM_GETLINK)
	ne.PutUint16(b[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(b[8:12], seq)
	// Port ID 0 and a zeroed ifinfomsg with family AF_UNSPEC.
	return b
}

// parseLinkDump parses one datagram of an RTM_GETLINK dump with the given
// sequence number, adding ifindex → name entries to links. It reports true
// once the end of the dump has been reached.
func parseLinkDump(b []byte, seq uint32, links map[uint32]string) (bool, error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return false, fmt.Errorf("parse netlink message: short header (%d bytes)", len(b))
		}
		msgLen := ne.Uint32(b[0:4])
		typ := ne.Uint16(b[4:6])
		flags := ne.Uint16(b[6:8])
		msgSeq := ne.Uint32(b[8:12])
		if msgLen < nlmsgHdrLen || uint64(msgLen) > uint64(len(b)) {
			return false, fmt.Errorf("parse netlink message: invalid length %d of %d bytes", msgLen, len(b))
		}
		payload := b[nlmsgHdrLen:msgLen]
		b = b[min(nlmAlign(int(msgLen)), len(b)):]
		if msgSeq != seq {
			continue
		}
		if flags&unix.NLM_F_DUMP_INTR != 0 {
			return false, errDumpInterrupted
		}
		switch typ {
		case unix.NLMSG_DONE:
			if len(payload) >= 4 {
				if errno := int32(ne.Uint32(payload[:4])); errno < 0 {
					return false, fmt.Errorf("dump links: %w", unix.Errno(-errno))
				}
			}
			return true, nil
		case unix.NLMSG_ERROR:
			if len(payload) < 4 {
				return false, errors.New("parse netlink error: truncated")
			}
			if errno := int32(ne.Uint32(payload[:4])); errno < 0 {
				return false, fmt.Errorf("dump links: %w", unix.Errno(-errno))
			}
			// An acknowledgement; dumps are not acknowledged, so keep going.
		case unix.RTM_NEWLINK:
			index, name, err := parseLink(payload)
			if err != nil {
				return false, err
			}
			if name != "" {
				links[index] = name
			}
		}
	}
	return false, nil
}

// parseLink extracts the ifindex and IFLA_IFNAME from an RTM_NEWLINK
// payload.
func parseLink(p []byte) (uint32, string, error) {
	if len(p) < ifInfoMsgLen {
		return 0, "", fmt.Errorf("parse link message: short ifinfomsg (%d bytes)", len(p))
	}
	ne := binary.NativeEndian
	index := ne.Uint32(p[4:8])
	attrs := p[nlmAlign(ifInfoMsgLen):]
	for len(attrs) >= rtAttrLen {
		l := int(ne.Uint16(attrs[0:2]))
		typ := ne.Uint16(attrs[2:4]) & nlaTypeMask
		if l < rtAttrLen || l > len(attrs) {
			return 0, "", fmt.Errorf("parse link %d: invalid attribute length %d", index, l)
		}
		if typ == unix.IFLA_IFNAME {
			v := attrs[rtAttrLen:l]
			for i, c := range v {
				if c == 0 {
					v = v[:i]
					break
				}
			}
			return index, string(v), nil
		}
		attrs = attrs[min(nlmAlign(l), len(attrs)):]
	}
	return index, "", nil
}

// nlmAlign rounds n up to the 4-byte netlink alignment.
func nlmAlign(n int) int {
	return (n + 3) &^ 3
}
