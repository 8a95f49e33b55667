package kmeta

import "hash/maphash"

// The comment memo: Parse's first step. The comments of a real recording
// repeat byte for byte far more often than one would think (a flood keeps
// reusing a handful of skb addresses from the slab, and the process, CPU,
// devices and lengths are those of the packet before): on a ping flood
// recorded by record, 94 % of 5.4 M comments equal one of the last few
// thousand distinct ones. So each comment that parses is remembered with
// its event in a direct-mapped table, found by a hash of its bytes, and
// an equal comment later is a copy of that event: a hash and a comparison
// instead of a scan of its dozen keys. Only comments that parsed are
// remembered, and the event of a comment depends on nothing but its
// bytes and the parser's place (a version 2 comment takes its device,
// namespace and ifindex from it), which the memo keeps with the comment
// and compares too, so the memo changes no result (FuzzFastPath checks
// that a comment parsed twice gives the same event; TestPlaces that the
// same comment on two interfaces gives two).

// memoBits sets the table's size: 2,048 slots keep 93-94 % of the
// comments of the real recordings of bench/analyze-real.sh (4,096 no
// more; 1,024: 90-91 %), in about 1 MB.
const memoBits = 11

// memoMaxLen is the longest comment the memo keeps (the recorder's are
// 100 to 200 bytes long).
const memoMaxLen = 232

// commentMemo is the table: a slot holds a comment (a copy, in the slot
// itself, next to its event: one place in memory to look at) and its
// event.
type commentMemo struct {
	seed  maphash.Seed
	slots [1 << memoBits]memoSlot
}

type memoSlot struct {
	n       int // the comment's length; 0: none
	comment [memoMaxLen]byte
	// place is the Parser's place when the comment was parsed: a
	// version 2 comment's event depends on it too.
	place Place
	ev    Event
	// shared is a copy of ev for ParseShared, made when the comment
	// comes again; never changed, it stays valid after the slot keeps
	// another comment.
	shared *Event
}

func newCommentMemo() *commentMemo {
	return &commentMemo{seed: maphash.MakeSeed()}
}

// slot returns the slot of comment parsed at place pl.
func (m *commentMemo) slot(comment []byte, pl *Place) *memoSlot {
	h := maphash.Bytes(m.seed, comment) ^ (uint64(pl.NetNS)*0x9e3779b97f4a7c15 + uint64(pl.Ifindex)*0xc2b2ae3d27d4eb4f)
	return &m.slots[h&(1<<memoBits-1)]
}

// find returns the slot holding comment parsed at place pl, if the memo
// holds it (hit), else the slot to keep it in once parsed (nil when too
// long).
func (m *commentMemo) find(comment []byte, pl *Place) (s *memoSlot, hit bool) {
	if len(comment) > memoMaxLen {
		return nil, false
	}
	s = m.slot(comment, pl)
	return s, s.n == len(comment) && s.place == *pl && string(s.comment[:s.n]) == string(comment)
}

// keep makes s remember comment (at most memoMaxLen bytes long), parsed at
// place pl, and its event.
func (s *memoSlot) keep(comment []byte, pl *Place, e *Event) {
	s.n = copy(s.comment[:], comment)
	s.place = *pl
	s.ev = *e
	s.shared = nil
}
