package kmeta

// CommentCache appends comments byte for byte as AppendComment does, in
// less time for a stream of events: it remembers the text of the two
// parts of a comment that repeat from event to event, the head (hook,
// device, namespace, ifindex) and the task (CPU, pid, tid, comm), and
// copies it when an event has the same values instead of formatting them
// again. The zero value is ready to use. It is not safe for concurrent
// use.
type CommentCache struct {
	heads [cacheSlots]headSlot // by hook, device, namespace and ifindex
	tasks [cacheSlots]taskSlot // by CPU and task
}

// cacheSlots is the number of slots of each part: a direct-mapped table,
// a colliding key takes the slot over. A ping flood across a veth pair
// has about 30 distinct heads and a handful of tasks per CPU.
const cacheSlots = 128

type headSlot struct {
	kind, hook, dev string
	netns, ifindex  uint32
	text            []byte // appendHead's output; nil: empty slot
}

type taskSlot struct {
	comm          string
	cpu, pid, tid uint32
	text          []byte // appendTask's output; nil: empty slot
}

// Append appends the comment for e to dst and returns the result: the
// same bytes as AppendComment(dst, e).
func (c *CommentCache) Append(dst []byte, e *Event) []byte {
	h := &c.heads[headHash(e)%cacheSlots]
	if h.text == nil || h.netns != e.NetNS || h.ifindex != e.Ifindex || h.hook != e.Hook || h.dev != e.Dev || h.kind != e.Kind {
		h.kind, h.hook, h.dev, h.netns, h.ifindex = e.Kind, e.Hook, e.Dev, e.NetNS, e.Ifindex
		h.text = appendHead(h.text[:0], e)
	}
	dst = append(dst, h.text...)
	dst = appendPacket(dst, e)
	t := &c.tasks[taskHash(e)%cacheSlots]
	if t.text == nil || t.pid != e.PID || t.tid != e.TID || t.cpu != e.CPU || t.comm != e.Comm {
		t.comm, t.cpu, t.pid, t.tid = e.Comm, e.CPU, e.PID, e.TID
		t.text = appendTask(t.text[:0], e)
	}
	dst = append(dst, t.text...)
	return appendTail(dst, e)
}

// headHash mixes what tells the heads of one host apart cheaply: the
// namespace, the ifindex and the hook name's length and last bytes.
func headHash(e *Event) uint32 {
	x := e.NetNS*0x9e3779b1 ^ e.Ifindex*0x85ebca6b ^ uint32(len(e.Hook))*0xc2b2ae35 ^ uint32(len(e.Dev))<<7
	if n := len(e.Hook); n >= 2 {
		x ^= (uint32(e.Hook[n-1]) | uint32(e.Hook[n-2])<<8) * 0x27d4eb2f
	}
	return x ^ x>>15 ^ x>>22
}

// taskHash mixes the CPU, pid and tid.
func taskHash(e *Event) uint32 {
	x := e.PID*0x9e3779b1 ^ e.TID*0x85ebca6b ^ e.CPU*0xc2b2ae35
	return x ^ x>>15 ^ x>>22
}
