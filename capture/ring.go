package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Bits of a ring buffer record's length word (include/uapi/linux/bpf.h).
const (
	ringBusyBit    = 1 << 31 // reserved, not yet submitted or discarded
	ringDiscardBit = 1 << 30 // discarded: skip it
	ringHeaderSize = 8       // length word and page offset
)

// ringStoreEvery is how many records the consumer position may lag behind
// the records read in a batch: storing it is a write to a line the
// producers read on every reservation. It lags by at most a sixteenth of
// the ring too, so that a small ring is not kept full by a slow reader.
const ringStoreEvery = 64

// ring reads the records of a BPF ring buffer map in batches, straight
// from its memory: the producer position is loaded once per batch and the
// consumer position stored once per ringStoreEvery records, instead of
// both for every record. Under a flood this keeps the reader's share of
// the CPU the BPF programs run on small.
type ring struct {
	consPage []byte // the consumer position's page, read-write
	prodMap  []byte // the producer position's page, then the data twice
	consPos  *uint64
	prodPos  *uint64
	data     []byte // 2 × size bytes: a record that wraps around reads on
	mask     uint64
	epoll    int // waits for the ring's wakeups and for interrupt
	event    int // eventfd written by interrupt

	// reading is held by the one reader (Recorder.Run) while it reads;
	// close takes it before unmapping, after setting closing and
	// interrupting the reader, which then returns.
	reading sync.Mutex
	closing atomic.Bool
}

// newRing maps the ring buffer m for reading.
func newRing(m *ebpf.Map) (_ *ring, err error) {
	size := int(m.MaxEntries())
	page := os.Getpagesize()
	rg := &ring{epoll: -1, event: -1, mask: uint64(size - 1)}
	defer func() {
		if err != nil {
			rg.close()
		}
	}()
	if rg.consPage, err = unix.Mmap(m.FD(), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("map ring buffer consumer page: %w", err)
	}
	if rg.prodMap, err = unix.Mmap(m.FD(), int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("map ring buffer data: %w", err)
	}
	rg.consPos = (*uint64)(unsafe.Pointer(&rg.consPage[0]))
	rg.prodPos = (*uint64)(unsafe.Pointer(&rg.prodMap[0]))
	rg.data = rg.prodMap[page:]

	if rg.epoll, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("create epoll: %w", err)
	}
	if rg.event, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	for _, fd := range []int{m.FD(), rg.event} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(rg.epoll, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return nil, fmt.Errorf("watch ring buffer: %w", err)
		}
	}
	return rg, nil
}

// read calls fn with each record submitted before the call, in order, and
// returns how many it read. It stops early at a record still being written
// (busy is then true: more will come at once) or when fn fails. The sample
// is valid only during the call.
func (rg *ring) read(fn func(sample []byte) error) (n int, busy bool, err error) {
	cons := atomic.LoadUint64(rg.consPos)
	prod := atomic.LoadUint64(rg.prodPos)
	stored, lag := cons, (rg.mask+1)/16
	defer func() { atomic.StoreUint64(rg.consPos, cons) }()
	for cons < prod {
		if prod-cons < ringHeaderSize {
			return n, false, errors.New("read ring buffer: record header past the producer position")
		}
		// The length word is loaded atomically: it orders the record's
		// data before it (the kernel publishes it with an exchange).
		word := atomic.LoadUint32((*uint32)(unsafe.Pointer(&rg.data[cons&rg.mask])))
		if word&ringBusyBit != 0 {
			return n, true, nil
		}
		length := uint64(word &^ (ringBusyBit | ringDiscardBit))
		start := (cons + ringHeaderSize) & rg.mask
		next := cons + ringHeaderSize + (length+7)&^7
		if next > prod || length > uint64(len(rg.data)/2) {
			return n, false, fmt.Errorf("read ring buffer: record of %d bytes past the producer position", length)
		}
		if word&ringDiscardBit == 0 {
			if err := fn(rg.data[start : start+length]); err != nil {
				cons = next
				return n + 1, false, err
			}
			n++
		}
		cons = next
		if n%ringStoreEvery == 0 || cons-stored >= lag {
			atomic.StoreUint64(rg.consPos, cons)
			stored = cons
		}
	}
	return n, false, nil
}

// available returns the bytes submitted and not yet read.
func (rg *ring) available() uint64 {
	return atomic.LoadUint64(rg.prodPos) - atomic.LoadUint64(rg.consPos)
}

// wait returns once the BPF programs wake the reader, interrupt is called
// or timeout passes.
func (rg *ring) wait(timeout time.Duration) error {
	var events [2]unix.EpollEvent
	for {
		_, err := unix.EpollWait(rg.epoll, events[:], int(timeout.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for ring buffer: %w", err)
		}
		return nil
	}
}

// interrupt makes wait return, now and from then on.
func (rg *ring) interrupt() error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1) // eventfd counters are in host order
	_, err := unix.Write(rg.event, one[:])
	return err
}

// close stops the reader, if one is reading, then unmaps the ring and
// closes its descriptors.
func (rg *ring) close() error {
	rg.closing.Store(true)
	if rg.event >= 0 {
		_ = rg.interrupt()
	}
	rg.reading.Lock()
	defer rg.reading.Unlock()
	var errs []error
	for _, m := range [][]byte{rg.consPage, rg.prodMap} {
		if m != nil {
			errs = append(errs, unix.Munmap(m))
		}
	}
	rg.consPage, rg.prodMap, rg.data = nil, nil, nil
	for _, fd := range []*int{&rg.epoll, &rg.event} {
		if *fd >= 0 {
			errs = append(errs, unix.Close(*fd))
			*fd = -1
		}
	}
	return errors.Join(errs...)
}
