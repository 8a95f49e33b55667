package render

// The JSON schemas of "analyze paths --json" and "analyze stats --json"
// (docs/FORMAT.md), as Go types: the one definition of their fields, for
// programs that read the output (json.Unmarshal into them). The encoders
// (JSONEncoder, AppendSummaryJSON) write these fields and no others, by
// hand for speed; the tests decode their output into these types with
// unknown fields refused. A field marked omitempty is left out when it has
// its zero value; a pointer is left out when nil.

// PacketJSON is one line of "analyze paths --json": one packet's path.
type PacketJSON struct {
	// ID is the tracking id (epb_packetid).
	ID uint64 `json:"id"`
	// Parent and Children are clone relations, when known.
	Parent   uint64   `json:"parent,omitempty"`
	Children []uint64 `json:"children,omitempty"`
	// Start is the first hop's time (ns since the epoch), DurationNS the
	// time from the first to the last hop.
	Start      int64       `json:"start"`
	DurationNS int64       `json:"duration_ns"`
	Outcome    OutcomeJSON `json:"outcome"`
	// HopsNotKept counts the hops past the per-packet limit.
	HopsNotKept int       `json:"hops_not_kept,omitempty"`
	Hops        []HopJSON `json:"hops"`
}

// OutcomeJSON is how a packet's path ended, and the hop that decided it.
type OutcomeJSON struct {
	// Kind is delivered, transmitted, dropped, consumed or unknown.
	Kind string `json:"kind"`
	// Reason is the drop reason (drops only).
	Reason string `json:"reason,omitempty"`
	// Location is the function where the packet was freed,
	// LocationOffset the same with its offset.
	Location       string `json:"location,omitempty"`
	LocationOffset string `json:"location_offset,omitempty"`
	Hook           string `json:"hook,omitempty"`
	Dev            string `json:"dev,omitempty"`
	NetNS          uint32 `json:"netns,omitempty"`
	// Socket is the kind of socket a delivered packet reached ("raw",
	// "UDP", "ICMP", "TCP", "packet", "unix"), Process the task that read
	// it, where the path shows them.
	Socket  string `json:"socket,omitempty"`
	Process string `json:"process,omitempty"`
	// Clone is the id of the clone that decided the outcome (its own skb
	// was dropped or consumed while a clone was delivered or transmitted);
	// Own then says what became of the packet's own skb.
	Clone uint64       `json:"clone,omitempty"`
	Own   *OwnFateJSON `json:"own,omitempty"`
	// Program is the traced BPF program whose verdict decided the outcome
	// (record --trace-tc): a drop it shot, a packet it redirected;
	// ProgramType its kind ("tc"), Verdict its return value by name
	// ("TC_ACT_SHOT", "TC_ACT_REDIRECT").
	Program     string `json:"program,omitempty"`
	ProgramType string `json:"program_type,omitempty"`
	Verdict     string `json:"verdict,omitempty"`
	// NFFamily and NFHook name the netfilter hook that dropped the packet
	// ("ip", "input"); NFTFamily, NFTTable and NFTChain the nftables base
	// chain whose drop verdict came before the free (record with a
	// function backend).
	NFFamily  string `json:"nf_family,omitempty"`
	NFHook    string `json:"nf_hook,omitempty"`
	NFTFamily string `json:"nft_family,omitempty"`
	NFTTable  string `json:"nft_table,omitempty"`
	NFTChain  string `json:"nft_chain,omitempty"`
	// Why says, for unknown outcomes, why the recording does not show the
	// fate.
	Why string `json:"why,omitempty"`
}

// OwnFateJSON is what became of a packet's own skb when a clone decided
// its outcome.
type OwnFateJSON struct {
	Kind           string `json:"kind"`
	Reason         string `json:"reason,omitempty"`
	LocationOffset string `json:"location_offset,omitempty"`
}

// HopJSON is one hop of a packet's path.
type HopJSON struct {
	// Hook and Kind: the hook's name and kind ("capture" for both in
	// events without metadata).
	Hook string `json:"hook"`
	Kind string `json:"kind"`
	// TS is the hop's time (ns since the epoch), DTNS the time since the
	// packet's first hop.
	TS   int64 `json:"ts"`
	DTNS int64 `json:"dt_ns"`
	// Where the hop happened.
	Dev     string `json:"dev"`
	NetNS   uint32 `json:"netns"`
	NSName  string `json:"netns_name,omitempty"`
	Ifindex uint32 `json:"ifindex"`
	// Len is skb->len (the original length without metadata), CapLen the
	// bytes recorded.
	Len    uint32 `json:"len"`
	CapLen uint32 `json:"caplen"`
	// From the metadata comment (left out without metadata).
	SKB  string  `json:"skb,omitempty"`
	CPU  *uint32 `json:"cpu,omitempty"`
	PID  *uint32 `json:"pid,omitempty"`
	Comm *string `json:"comm,omitempty"`
	Mark uint32  `json:"mark,omitempty"`
	// Reason is the drop reason, Location where the skb was freed.
	Reason   string `json:"reason,omitempty"`
	Location string `json:"location,omitempty"`
	// Program is the traced BPF program whose entry or exit the hop is
	// (record --trace-tc), Verdict its return value by name at the exit
	// ("TC_ACT_SHOT", "TC_ACT_OK").
	Program string `json:"program,omitempty"`
	Verdict string `json:"verdict,omitempty"`
	// NFFamily and NFHook: the netfilter hook of a netfilter hop
	// (nf_hook_slow, nft_do_chain's exit); NFTFamily, NFTTable and
	// NFTChain the nftables base chain at nft_do_chain's exit, whose
	// verdict ("drop", "accept") is then Verdict.
	NFFamily  string `json:"nf_family,omitempty"`
	NFHook    string `json:"nf_hook,omitempty"`
	NFTFamily string `json:"nft_family,omitempty"`
	NFTTable  string `json:"nft_table,omitempty"`
	NFTChain  string `json:"nft_chain,omitempty"`
	// Parsed from the bytes: addresses (with Proto) when an IP header
	// was found, ports when the transport has them.
	Src   string  `json:"src,omitempty"`
	Dst   string  `json:"dst,omitempty"`
	Proto *uint8  `json:"proto,omitempty"`
	SPort *uint16 `json:"sport,omitempty"`
	DPort *uint16 `json:"dport,omitempty"`
	// Changed lists what differs from the previous hop.
	Changed []string `json:"changed,omitempty"`
	// Kernel stacks (record --stack): the stack's number, its frames
	// innermost first, whether it was lost and the kernel's error, and
	// the functions derived from it.
	StackID   uint64   `json:"stack_id,omitempty"`
	Stack     []string `json:"stack,omitempty"`
	StackLost bool     `json:"stack_lost,omitempty"`
	StackErr  int32    `json:"stack_err,omitempty"`
	Derived   []string `json:"derived,omitempty"`
}

// SummaryJSON is the output of "analyze stats --json".
type SummaryJSON struct {
	Packets uint64 `json:"packets"`
	Events  uint64 `json:"events"`
	// LostEvents counts events the recorder lost to a full ring buffer
	// (epb_dropcount), SkippedEvents hits the in-kernel rate limit left
	// out (skipped=); both absent when 0.
	LostEvents    uint64 `json:"lost_events,omitempty"`
	SkippedEvents uint64 `json:"skipped_events,omitempty"`
	// First and Last are the earliest and latest hop times (ns).
	First int64 `json:"first"`
	Last  int64 `json:"last"`
	// Outcomes counts packets by outcome kind (kinds with none left out).
	Outcomes map[string]uint64 `json:"outcomes"`
	// ViaClone counts, of those, the packets whose outcome a clone
	// decided (their own skb was dropped or consumed), by kind.
	ViaClone map[string]uint64 `json:"via_clone,omitempty"`
	// Clones counts the clones attached to a packet (not counted in
	// Packets or Outcomes: their fates are part of their packets'),
	// CloneOutcomes their own outcomes by kind.
	Clones        uint64            `json:"clones,omitempty"`
	CloneOutcomes map[string]uint64 `json:"clone_outcomes,omitempty"`
	// Drops are the drop reasons, most frequent first.
	Drops []DropJSON `json:"drops"`
	// Paths are the most common hook sequences ("hook>hook>...").
	Paths []PathCountJSON `json:"paths"`
	// Latency is between consecutive hooks.
	Latency []LatencyJSON `json:"latency"`
	// Devices are the devices and namespaces seen.
	Devices []DeviceJSON `json:"devices"`
}

// DropJSON is one drop reason of a summary.
type DropJSON struct {
	Reason    string         `json:"reason"`
	Count     uint64         `json:"count"`
	Locations []LocationJSON `json:"locations"`
	// Programs are the traced BPF programs that shot these drops
	// (record --trace-tc), most frequent first.
	Programs []ProgramCountJSON `json:"programs,omitempty"`
	// Chains are the netfilter places that dropped these packets, most
	// frequent first: "nftables table inet T chain C" (the base chain
	// whose verdict was drop) or "netfilter hook ip input".
	Chains []ChainCountJSON `json:"chains,omitempty"`
	// Stacks and StackLost are there with stats --stacks N only.
	Stacks    []StackCountJSON `json:"stacks,omitzero"`
	StackLost *uint64          `json:"stack_lost,omitempty"`
}

// LocationJSON is a free location with its count.
type LocationJSON struct {
	Location string `json:"location"`
	Count    uint64 `json:"count"`
}

// ProgramCountJSON is a BPF program ("tc program NAME") with the drops
// it shot.
type ProgramCountJSON struct {
	Program string `json:"program"`
	Count   uint64 `json:"count"`
}

// StackCountJSON is a kernel stack (innermost first) with its count.
type StackCountJSON struct {
	Count uint64   `json:"count"`
	Stack []string `json:"stack"`
}

// PathCountJSON is a hook sequence with its count.
type PathCountJSON struct {
	Path  string `json:"path"`
	Count uint64 `json:"count"`
}

// LatencyJSON is the latency between two consecutive hooks.
type LatencyJSON struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Count uint64 `json:"count"`
	P50NS int64  `json:"p50_ns"`
	P90NS int64  `json:"p90_ns"`
	P99NS int64  `json:"p99_ns"`
	MaxNS int64  `json:"max_ns"`
}

// DeviceJSON is a device in a network namespace with its event count.
type DeviceJSON struct {
	Dev    string `json:"dev"`
	NetNS  uint32 `json:"netns"`
	NSName string `json:"netns_name,omitempty"`
	Events uint64 `json:"events"`
}

// ChainCountJSON is a netfilter place ("nftables table inet T chain C")
// with the drops it decided.
type ChainCountJSON struct {
	Chain string `json:"chain"`
	Count uint64 `json:"count"`
}
