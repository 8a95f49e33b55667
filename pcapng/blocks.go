package pcapng

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"
)

// CustomOption is a custom option (codes 2988, 2989, 19372 and 19373): a
// Private Enterprise Number followed by data whose format that enterprise
// defines.
type CustomOption struct {
	Code uint16
	PEN  uint32
	Data []byte
}

// RawOption is an option this package has no typed field for, kept as it
// appeared in the file (value without padding).
type RawOption struct {
	Code  uint16
	Value []byte
}

// Section describes a section header block. When reading, ByteOrder,
// MajorVersion, MinorVersion and Length reflect the file; when writing they
// are ignored (the Writer always writes little-endian version 1.0 sections
// of unspecified length).
type Section struct {
	ByteOrder    binary.ByteOrder
	MajorVersion uint16
	MinorVersion uint16
	Length       int64 // section length in bytes, -1 when not specified

	Hardware        string // shb_hardware
	OS              string // shb_os
	UserApplication string // shb_userappl
	Comments        []string
	Custom          []CustomOption
	Unknown         []RawOption
}

// IPv4Address is one if_IPv4addr option: an address and its netmask.
type IPv4Address struct {
	Addr netip.Addr
	Mask netip.Addr
}

// Interface describes an interface description block.
type Interface struct {
	LinkType LinkType
	SnapLen  uint32 // 0 means no limit

	Name        string // if_name
	Description string // if_description
	IPv4Addrs   []IPv4Address
	IPv6Addrs   []netip.Prefix
	MAC         net.HardwareAddr // if_MACaddr (6 bytes)
	EUI         net.HardwareAddr // if_EUIaddr (8 bytes)
	Speed       uint64           // if_speed, bits per second
	TxSpeed     uint64           // if_txspeed
	RxSpeed     uint64           // if_rxspeed
	// TSResolution is the unit of this interface's timestamps; the zero
	// value means what the specification's default means: microseconds.
	TSResolution Resolution
	// TSOffset is if_tsoffset: seconds added to every timestamp.
	TSOffset   int64
	Tzone      int32  // if_tzone (deprecated by the specification)
	Filter     []byte // if_filter: filter type byte followed by the filter
	OS         string // if_os
	Hardware   string // if_hardware
	IANATzname string // if_iana_tzname
	FCSLen     uint8  // if_fcslen
	HasFCSLen  bool
	Comments   []string
	Custom     []CustomOption
	Unknown    []RawOption
	// Malformed holds descriptive options (addresses, speeds, time zone)
	// whose length is wrong for their type. They do not change how the
	// interface's packets are read, so the Reader keeps them here instead
	// of failing; options that do (if_tsresol, if_tsoffset, if_fcslen)
	// with a wrong length are errors.
	Malformed []RawOption
}

// Packet is one packet of an enhanced, simple or obsolete packet block.
type Packet struct {
	// Type is the block type the packet came from. The Writer writes
	// enhanced packet blocks whatever Type says.
	Type        BlockType
	InterfaceID uint32
	// Interface points at the description of the packet's interface in
	// the current section. Set by the Reader; ignored by the Writer.
	Interface *Interface
	// Timestamp is the packet's time, converted exactly (to the
	// nanosecond) from the interface's resolution and offset.
	Timestamp time.Time
	// TimestampRaw is the timestamp as stored in the file, in units of
	// the interface's resolution. Zero for simple packet blocks.
	TimestampRaw   uint64
	OriginalLength uint32
	Data           []byte // captured bytes; len(Data) is the captured length
	Options        PacketOptions
}

// PacketOptions holds the options of a packet block. Fields named Has*
// tell whether the option before them was present.
type PacketOptions struct {
	Comments [][]byte // opt_comment, UTF-8
	Flags    uint32   // epb_flags
	HasFlags bool
	Hashes   [][]byte // epb_hash: algorithm byte followed by the hash value
	// DropCount is epb_dropcount (or the obsolete packet block's drops
	// count field).
	DropCount    uint64
	HasDropCount bool
	PacketID     uint64 // epb_packetid
	HasPacketID  bool
	Queue        uint32 // epb_queue
	HasQueue     bool
	// Verdicts are epb_verdict values: a verdict type byte (see
	// VerdictLinuxTC and friends) followed by its data.
	Verdicts     [][]byte
	ProcessID    uint32 // epb_processid_threadid
	ThreadID     uint32
	HasProcessID bool
	Custom       []CustomOption
	Unknown      []RawOption
}

// Reset empties the options, keeping the capacity of their slices.
func (o *PacketOptions) Reset() {
	// Field by field rather than assigning a whole new struct: this runs
	// for every packet read, and re-slicing to [:0] leaves the pointers
	// alone, which spares the garbage collector's write barriers.
	o.Comments = o.Comments[:0]
	o.Flags, o.HasFlags = 0, false
	o.Hashes = o.Hashes[:0]
	o.DropCount, o.HasDropCount = 0, false
	o.PacketID, o.HasPacketID = 0, false
	o.Queue, o.HasQueue = 0, false
	o.Verdicts = o.Verdicts[:0]
	o.ProcessID, o.ThreadID, o.HasProcessID = 0, 0, false
	o.Custom = o.Custom[:0]
	o.Unknown = o.Unknown[:0]
}

// Direction returns the inbound/outbound bits of epb_flags
// (DirectionUnknown, DirectionInbound or DirectionOutbound).
func (o *PacketOptions) Direction() uint32 { return o.Flags & 3 }

// InterfaceStatistics is an interface statistics block.
type InterfaceStatistics struct {
	InterfaceID  uint32
	Timestamp    time.Time
	TimestampRaw uint64

	StartTime       time.Time // isb_starttime
	HasStartTime    bool
	EndTime         time.Time // isb_endtime
	HasEndTime      bool
	IfRecv          uint64 // isb_ifrecv: packets received by the interface
	HasIfRecv       bool
	IfDrop          uint64 // isb_ifdrop: packets dropped by the interface
	HasIfDrop       bool
	FilterAccept    uint64 // isb_filteraccept
	HasFilterAccept bool
	OSDrop          uint64 // isb_osdrop: packets dropped by the operating system
	HasOSDrop       bool
	UsrDeliv        uint64 // isb_usrdeliv: packets delivered to the user
	HasUsrDeliv     bool

	Comments [][]byte
	Custom   []CustomOption
	Unknown  []RawOption
}

// NameRecord is one record of a name resolution block. For IPv4, IPv6,
// EUI-48 and EUI-64 records Addr holds the address and Names the names
// given for it; records of other types keep their whole value in Value.
type NameRecord struct {
	Type  NameRecordType
	Addr  []byte
	Names []string
	Value []byte
}

// NameResolution is a name resolution block.
type NameResolution struct {
	Records     []NameRecord
	DNSName     string     // ns_dnsname
	DNSIPv4Addr netip.Addr // ns_dnsIP4addr
	DNSIPv6Addr netip.Addr // ns_dnsIP6addr
	Comments    [][]byte
	Custom      []CustomOption
	Unknown     []RawOption
}

// DecryptionSecrets is a decryption secrets block.
type DecryptionSecrets struct {
	SecretsType uint32
	Data        []byte
	Comments    [][]byte
	Custom      []CustomOption
	Unknown     []RawOption
}

// CustomBlock is a custom block (BlockCustom or BlockCustomNoCopy): a
// Private Enterprise Number followed by data, options included, whose
// format that enterprise defines.
type CustomBlock struct {
	Type BlockType
	PEN  uint32
	Data []byte
}
