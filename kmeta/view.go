package kmeta

import "strconv"

// Prefixes of the comments of analyze's path view (docs/FORMAT.md,
// "analyze wireshark"): one summary comment per packet, one per hop. They
// follow the grammar of the metadata comment under their own prefixes, so
// that a view is never mistaken for a recording.
const (
	// PathPrefix starts a packet's summary comment in the path view.
	PathPrefix = "pathcap-path/1"
	// HopPrefix starts a hop's comment in the path view.
	HopPrefix = "pathcap-hop/1"
)

// AppendPair appends " key=value" to dst, the value bare when it can be
// and quoted (strconv.Quote) otherwise, as the grammar of every pathcap
// comment has it. key must be a valid key (lower-case letters, digits,
// '_').
func AppendPair(dst []byte, key, val string) []byte {
	dst = append(dst, ' ')
	dst = append(dst, key...)
	dst = append(dst, '=')
	return appendValue(dst, val)
}

// AppendUintPair appends " key=N" in decimal.
func AppendUintPair(dst []byte, key string, v uint64) []byte {
	dst = append(dst, ' ')
	dst = append(dst, key...)
	dst = append(dst, '=')
	return strconv.AppendUint(dst, v, 10)
}

// AppendIntPair appends " key=N" in decimal.
func AppendIntPair(dst []byte, key string, v int64) []byte {
	dst = append(dst, ' ')
	dst = append(dst, key...)
	dst = append(dst, '=')
	return strconv.AppendInt(dst, v, 10)
}
