package kmeta

// CommentCache appends comments byte for byte as AppendComment does, in
// less time for a stream of events: it remembers the text of the two
// parts of a comment that repeat from event to event, the head (hook,
// device, namespace, ifindex) and the task (CPU, pid, tid, comm), and
// copies it when an event has the same values instead of formatting them
// again. The zero value is ready to use. It is not safe for concurrent
// use.
type CommentCache struct {
	heads [cacheSets]headSet // by hook, device, namespace and ifindex
	tasks [cacheSets]taskSet // by CPU and task
}

// The caches are set-associative: cacheSets sets of two slots each, the
// less recently used slot of a set taken over by a new key. On a ping
// flood across a veth pair recorded by record (30 distinct heads, a dozen
// tasks), only the first event of each head and task misses.
const (
	cacheSetBits = 8
	cacheSets    = 1 << cacheSetBits
)

type headSet struct {
	slot [2]headSlot
	next uint8 // the slot to take over
}

type headSlot struct {
	kind, hook, dev string
	netns, ifindex  uint32
	text            []byte // appendHead's output; nil: empty slot
}

type taskSet struct {
	slot [2]taskSlot
	next uint8
}

type taskSlot struct {
	comm          string
	cpu, pid, tid uint32
	text          []byte // appendTask's output; nil: empty slot
}

// Append appends the comment for e to dst and returns the result: the
// same bytes as AppendComment(dst, e).
func (c *CommentCache) Append(dst []byte, e *Event) []byte {
	dst = append(dst, c.head(e)...)
	dst = appendPacket(dst, e)
	dst = append(dst, c.task(e)...)
	return appendTail(dst, e)
}

// head returns appendHead's text for e.
func (c *CommentCache) head(e *Event) []byte {
	set := &c.heads[headHash(e)]
	for i := range set.slot {
		h := &set.slot[i]
		if h.text != nil && h.netns == e.NetNS && h.ifindex == e.Ifindex && h.hook == e.Hook && h.dev == e.Dev && h.kind == e.Kind {
			set.next = uint8(i ^ 1)
			return h.text
		}
	}
	h := &set.slot[set.next]
	set.next ^= 1
	h.kind, h.hook, h.dev, h.netns, h.ifindex = e.Kind, e.Hook, e.Dev, e.NetNS, e.Ifindex
	h.text = appendHead(h.text[:0], e)
	return h.text
}

// task returns appendTask's text for e.
func (c *CommentCache) task(e *Event) []byte {
	set := &c.tasks[taskHash(e)]
	for i := range set.slot {
		t := &set.slot[i]
		if t.text != nil && t.pid == e.PID && t.tid == e.TID && t.cpu == e.CPU && t.comm == e.Comm {
			set.next = uint8(i ^ 1)
			return t.text
		}
	}
	t := &set.slot[set.next]
	set.next ^= 1
	t.comm, t.cpu, t.pid, t.tid = e.Comm, e.CPU, e.PID, e.TID
	t.text = appendTask(t.text[:0], e)
	return t.text
}

// headHash returns the set of e's head, from what tells the heads of one
// host apart cheaply: the namespace, the ifindex, the lengths of the hook
// and device names and three bytes of the hook's.
func headHash(e *Event) uint32 {
	x := e.NetNS ^ e.Ifindex<<16 ^ uint32(len(e.Hook))<<8 ^ uint32(len(e.Dev))<<24
	if n := len(e.Hook); n >= 2 {
		x += uint32(e.Hook[n-1]) | uint32(e.Hook[n-2])<<8 | uint32(e.Hook[n/2])<<16
	}
	return (x * 0x9e3779b1) >> (32 - cacheSetBits)
}

// taskHash returns the set of e's task, from its CPU, pid and tid.
func taskHash(e *Event) uint32 {
	x := e.PID ^ e.TID<<12 ^ e.CPU<<24
	return (x * 0x9e3779b1) >> (32 - cacheSetBits)
}
