package pcapng

import (
	"fmt"
	"strconv"
)

// BlockType identifies the kind of a pcap-ng block.
type BlockType uint32

// Block types defined by the pcap-ng specification.
const (
	BlockSectionHeader        BlockType = 0x0A0D0D0A
	BlockInterfaceDescription BlockType = 0x00000001
	BlockPacket               BlockType = 0x00000002 // obsolete Packet Block
	BlockSimplePacket         BlockType = 0x00000003
	BlockNameResolution       BlockType = 0x00000004
	BlockInterfaceStatistics  BlockType = 0x00000005
	BlockEnhancedPacket       BlockType = 0x00000006
	BlockDecryptionSecrets    BlockType = 0x0000000A
	BlockCustom               BlockType = 0x00000BAD // custom block that may be copied
	BlockCustomNoCopy         BlockType = 0x40000BAD // custom block that must not be copied
)

// String returns the block type's common abbreviation, such as "EPB".
func (t BlockType) String() string {
	switch t {
	case BlockSectionHeader:
		return "SHB"
	case BlockInterfaceDescription:
		return "IDB"
	case BlockPacket:
		return "PB"
	case BlockSimplePacket:
		return "SPB"
	case BlockNameResolution:
		return "NRB"
	case BlockInterfaceStatistics:
		return "ISB"
	case BlockEnhancedPacket:
		return "EPB"
	case BlockDecryptionSecrets:
		return "DSB"
	case BlockCustom:
		return "CB"
	case BlockCustomNoCopy:
		return "DCB"
	}
	return fmt.Sprintf("block type 0x%08x", uint32(t))
}

// IsPacket reports whether blocks of this type carry a packet.
func (t BlockType) IsPacket() bool {
	return t == BlockEnhancedPacket || t == BlockSimplePacket || t == BlockPacket
}

// LinkType is a link-layer header type (LINKTYPE_* of the tcpdump.org registry).
type LinkType uint16

// A few common link types.
const (
	LinkTypeNull      LinkType = 0
	LinkTypeEthernet  LinkType = 1
	LinkTypeRaw       LinkType = 101
	LinkTypeLinuxSLL  LinkType = 113
	LinkTypeIPv4      LinkType = 228
	LinkTypeIPv6      LinkType = 229
	LinkTypeLinuxSLL2 LinkType = 276
)

// String returns the link type's name, or its number for unnamed types.
func (l LinkType) String() string {
	switch l {
	case LinkTypeNull:
		return "NULL"
	case LinkTypeEthernet:
		return "ETHERNET"
	case LinkTypeRaw:
		return "RAW"
	case LinkTypeLinuxSLL:
		return "LINUX_SLL"
	case LinkTypeIPv4:
		return "IPV4"
	case LinkTypeIPv6:
		return "IPV6"
	case LinkTypeLinuxSLL2:
		return "LINUX_SLL2"
	}
	return "LINKTYPE_" + strconv.Itoa(int(l))
}

// Option codes common to all blocks.
const (
	OptEndOfOpt           uint16 = 0
	OptComment            uint16 = 1
	OptCustomString       uint16 = 2988  // UTF-8 custom option that may be copied
	OptCustomBinary       uint16 = 2989  // binary custom option that may be copied
	OptCustomStringNoCopy uint16 = 19372 // UTF-8 custom option that must not be copied
	OptCustomBinaryNoCopy uint16 = 19373 // binary custom option that must not be copied
)

// Section header block option codes.
const (
	OptSHBHardware uint16 = 2
	OptSHBOS       uint16 = 3
	OptSHBUserAppl uint16 = 4
)

// Interface description block option codes.
const (
	OptIfName        uint16 = 2
	OptIfDescription uint16 = 3
	OptIfIPv4Addr    uint16 = 4
	OptIfIPv6Addr    uint16 = 5
	OptIfMACAddr     uint16 = 6
	OptIfEUIAddr     uint16 = 7
	OptIfSpeed       uint16 = 8
	OptIfTsresol     uint16 = 9
	OptIfTzone       uint16 = 10
	OptIfFilter      uint16 = 11
	OptIfOS          uint16 = 12
	OptIfFCSLen      uint16 = 13
	OptIfTsoffset    uint16 = 14
	OptIfHardware    uint16 = 15
	OptIfTxSpeed     uint16 = 16
	OptIfRxSpeed     uint16 = 17
	OptIfIANATzname  uint16 = 18
)

// Enhanced packet block option codes (the obsolete packet block uses the
// same codes for flags and hash).
const (
	OptEPBFlags             uint16 = 2
	OptEPBHash              uint16 = 3
	OptEPBDropCount         uint16 = 4
	OptEPBPacketID          uint16 = 5
	OptEPBQueue             uint16 = 6
	OptEPBVerdict           uint16 = 7
	OptEPBProcessIDThreadID uint16 = 8
)

// Name resolution block option codes.
const (
	OptNSDNSName     uint16 = 2
	OptNSDNSIPv4Addr uint16 = 3
	OptNSDNSIPv6Addr uint16 = 4
)

// Interface statistics block option codes.
const (
	OptISBStartTime    uint16 = 2
	OptISBEndTime      uint16 = 3
	OptISBIfRecv       uint16 = 4
	OptISBIfDrop       uint16 = 5
	OptISBFilterAccept uint16 = 6
	OptISBOSDrop       uint16 = 7
	OptISBUsrDeliv     uint16 = 8
)

// Verdict types of the epb_verdict option.
const (
	VerdictHardware uint8 = 0
	VerdictLinuxTC  uint8 = 1
	VerdictLinuxXDP uint8 = 2
)

// Direction values of the epb_flags inbound/outbound bits (bits 0-1).
const (
	DirectionUnknown  uint32 = 0
	DirectionInbound  uint32 = 1
	DirectionOutbound uint32 = 2
)

// NameRecordType is the type of one name resolution block record.
type NameRecordType uint16

// Name resolution record types.
const (
	NameRecordEnd   NameRecordType = 0
	NameRecordIPv4  NameRecordType = 1
	NameRecordIPv6  NameRecordType = 2
	NameRecordEUI48 NameRecordType = 3
	NameRecordEUI64 NameRecordType = 4
)

// MaxCaptureLength is the largest captured length the Writer accepts.
// Wireshark refuses Ethernet files with larger packets (262144 is
// libpcap's MAXIMUM_SNAPLEN).
const MaxCaptureLength = 262144

// DefaultMaxBlockSize is the largest block the Reader accepts unless told
// otherwise. libpcap refuses blocks above 16 MiB as well.
const DefaultMaxBlockSize = 16 << 20
