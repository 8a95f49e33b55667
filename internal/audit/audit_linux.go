//go:build linux

package audit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// TypeAVC is the audit record type of SELinux access vector cache messages
// (AUDIT_AVC), among them the "avc:  denied" records.
const TypeAVC = unix.AUDIT_AVC

// receiveBuffer is the socket receive buffer Listen asks for (with
// SO_RCVBUFFORCE, which needs CAP_NET_ADMIN; the default stays otherwise),
// so that a burst of records does not overrun the socket.
const receiveBuffer = 16 << 20

// Status is the kernel's audit status (struct audit_status, AUDIT_GET).
type Status struct {
	// Enabled is 0 (auditing off), 1 (on) or 2 (on and locked).
	Enabled uint32
	// Failure is what the kernel does when it cannot audit: 0 silent,
	// 1 printk, 2 panic.
	Failure uint32
	// PID is the registered audit daemon's process id, 0 for none.
	PID uint32
	// RateLimit is the most records per second the kernel sends (0: no
	// limit).
	RateLimit uint32
	// BacklogLimit is how many records the kernel queues for the daemon
	// before it drops (or waits).
	BacklogLimit uint32
	// Lost counts the records the kernel dropped since boot.
	Lost uint32
	// Backlog is how many records are queued now.
	Backlog uint32
}

// String formats the status like auditctl -s does, on one line.
func (s Status) String() string {
	return fmt.Sprintf("enabled=%d failure=%d pid=%d rate_limit=%d backlog_limit=%d lost=%d backlog=%d",
		s.Enabled, s.Failure, s.PID, s.RateLimit, s.BacklogLimit, s.Lost, s.Backlog)
}

// Record is one audit record the kernel sent.
type Record struct {
	// Type is the record type, e.g. TypeAVC (1400).
	Type uint16
	// Text is the record's text, e.g. "audit(1796608343.584:7): avc:  denied  { confidentiality } ...".
	Text string
}

// Listener is a registered audit daemon that reads and counts every record
// the kernel sends it. It keeps the text of every AVC record (a few hundred
// bytes each; Reset drops them) and only counts the others. Its methods are
// safe for concurrent use.
type Listener struct {
	f    *os.File // the netlink socket the kernel sends records to
	done chan struct{}

	mu          sync.Mutex
	total       int // records received, of every type
	byType      map[uint16]int
	avc         []string  // the text of every AVC record
	overruns    int       // ENOBUFS: the socket buffer overflowed
	last        time.Time // when the last record arrived
	readErr     error     // why the reader stopped, if not Close
	prevEnabled uint32
	prevBacklog uint32 // backlog limit to restore on Close; 0: unchanged
	closed      bool
}

// Listen registers the calling process as the kernel's audit daemon
// (AUDIT_SET with its pid, auditing enabled) and reads every record the
// kernel sends from then on, until Close. It needs CAP_AUDIT_CONTROL, and
// fails (wrapping EEXIST) when another audit daemon is registered.
func Listen() (*Listener, error) {
	st, err := GetStatus()
	if err != nil {
		return nil, err
	}
	fd, err := openSocket()
	if err != nil {
		return nil, err
	}
	// A larger buffer is an optimisation; without CAP_NET_ADMIN the
	// default remains and overruns are counted.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer)

	l := &Listener{
		done:        make(chan struct{}),
		byType:      make(map[uint16]int),
		prevEnabled: st.Enabled,
	}
	// Register on this socket, so that the kernel sends the records to it.
	// Records can arrive before the acknowledgement: keep them.
	set := statusRequest(unix.AUDIT_STATUS_PID|unix.AUDIT_STATUS_ENABLED, 1, uint32(os.Getpid()))
	if st.Enabled == 2 {
		// Locked: the kernel refuses any change of "enabled".
		set = statusRequest(unix.AUDIT_STATUS_PID, 0, uint32(os.Getpid()))
	}
	keep := func(b []byte) bool { l.handle(b); return false }
	if err := request(fd, unix.AUDIT_SET, set, true, keep); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("audit: register as the audit daemon: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("audit: %w", err)
	}
	// The runtime's poller wakes the reader, and Close interrupts it.
	l.f = os.NewFile(uintptr(fd), "audit-netlink")
	go l.read()
	return l, nil
}

// Count returns how many AVC records (type 1400) have arrived so far whose
// text contains substr; "" counts every AVC record.
func (l *Listener) Count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if substr == "" {
		return len(l.avc)
	}
	n := 0
	for _, text := range l.avc {
		if strings.Contains(text, substr) {
			n++
		}
	}
	return n
}

// CountType returns how many records of type typ have arrived so far.
func (l *Listener) CountType(typ uint16) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byType[typ]
}

// Total returns how many records of any type have arrived so far.
func (l *Listener) Total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// Overruns returns how often the socket's receive buffer overflowed
// (ENOBUFS); records were lost each time.
func (l *Listener) Overruns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.overruns
}

// AVC returns the texts of the AVC records received so far, oldest first.
func (l *Listener) AVC() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.avc...)
}

// Reset forgets the records received so far, so that counting starts anew.
func (l *Listener) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total, l.overruns, l.avc = 0, 0, nil
	clear(l.byType)
}

// WaitQuiet waits until no record has arrived for quiet (the kernel's queue
// has drained into the listener), but no longer than timeout. It reports
// whether it saw the quiet period.
func (l *Listener) WaitQuiet(quiet, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	start := time.Now()
	for {
		l.mu.Lock()
		last := l.last
		l.mu.Unlock()
		if last.Before(start) {
			last = start
		}
		if time.Since(last) >= quiet {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(min(quiet/4, 50*time.Millisecond) + time.Millisecond)
	}
}

// SetBacklogLimit sets how many records the kernel queues before it drops
// records generated outside the audit daemon's process (the daemon's own
// are never dropped). The default, 64, loses records when other processes
// (or softirqs running in their context) cause a burst of denials; raise it
// to count those. Close restores the previous limit.
func (l *Listener) SetBacklogLimit(n uint32) error {
	st, err := GetStatus()
	if err != nil {
		return err
	}
	if err := setStatus(statusRequestBacklog(n)); err != nil {
		return fmt.Errorf("audit: set backlog limit %d: %w", n, err)
	}
	l.mu.Lock()
	if l.prevBacklog == 0 {
		l.prevBacklog = st.BacklogLimit
	}
	l.mu.Unlock()
	return nil
}

// Status returns the kernel's audit status (AUDIT_GET).
func (l *Listener) Status() (Status, error) {
	return GetStatus()
}

// Err returns the error that stopped the reader early, or nil.
func (l *Listener) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.readErr
}

// Close unregisters the audit daemon (AUDIT_SET with pid 0, and "enabled"
// back to what it was), stops reading and closes the socket. The counts stay
// readable.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()

	// Any socket of the daemon's process may unregister it.
	var errs []error
	mask := uint32(unix.AUDIT_STATUS_PID | unix.AUDIT_STATUS_ENABLED)
	if l.prevEnabled == 2 {
		mask = unix.AUDIT_STATUS_PID
	}
	if err := setStatus(statusRequest(mask, l.prevEnabled, 0)); err != nil {
		errs = append(errs, fmt.Errorf("audit: unregister the audit daemon: %w", err))
	}
	if l.prevBacklog != 0 {
		if err := setStatus(statusRequestBacklog(l.prevBacklog)); err != nil {
			errs = append(errs, fmt.Errorf("audit: restore backlog limit %d: %w", l.prevBacklog, err))
		}
	}
	if err := l.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("audit: close: %w", err))
	}
	<-l.done
	return errors.Join(errs...)
}

// read receives records until the socket is closed.
func (l *Listener) read() {
	defer close(l.done)
	rc, err := l.f.SyscallConn()
	if err != nil {
		l.setErr(err)
		return
	}
	buf := make([]byte, 1<<16)
	for {
		var (
			n    int
			rerr error
		)
		err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		})
		if err != nil { // closed
			return
		}
		switch {
		case rerr == nil:
			l.handle(buf[:n])
		case errors.Is(rerr, unix.ENOBUFS):
			l.mu.Lock()
			l.overruns++
			l.mu.Unlock()
		case errors.Is(rerr, unix.EINTR):
		default:
			l.setErr(fmt.Errorf("audit: receive: %w", rerr))
			return
		}
	}
}

func (l *Listener) setErr(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.readErr = err
}

// handle counts one datagram from the kernel.
func (l *Listener) handle(b []byte) {
	r, ok := parseRecord(b)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	l.byType[r.Type]++
	if r.Type == TypeAVC {
		l.avc = append(l.avc, r.Text)
	}
	l.last = time.Now()
}

// parseRecord reads an audit record from a datagram: a netlink header and
// the record's text. The kernel sends one record per datagram and sets
// nlmsg_len to the text's length only (without the header), so the
// datagram's length, not nlmsg_len, bounds the text. Netlink control
// messages (NLMSG_ERROR, NLMSG_DONE, ...) are not records.
func parseRecord(b []byte) (Record, bool) {
	if len(b) < unix.NLMSG_HDRLEN {
		return Record{}, false
	}
	typ := binary.NativeEndian.Uint16(b[4:6])
	if typ < unix.NLMSG_MIN_TYPE {
		return Record{}, false
	}
	text := b[unix.NLMSG_HDRLEN:]
	if i := bytes.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	return Record{Type: typ, Text: strings.TrimRight(string(text), "\n")}, true
}

// GetStatus returns the kernel's audit status (AUDIT_GET) without
// registering as the audit daemon.
func GetStatus() (Status, error) {
	fd, err := openSocket()
	if err != nil {
		return Status{}, err
	}
	defer unix.Close(fd)
	// No acknowledgement: the kernel may send it before the reply.
	var st Status
	err = request(fd, unix.AUDIT_GET, nil, false, func(b []byte) bool {
		if len(b) < unix.NLMSG_HDRLEN || binary.NativeEndian.Uint16(b[4:6]) != unix.AUDIT_GET {
			return false
		}
		s, ok := parseStatus(b[unix.NLMSG_HDRLEN:])
		if ok {
			st = s
		}
		return ok
	})
	if err != nil {
		return Status{}, fmt.Errorf("audit: get status: %w", err)
	}
	return st, nil
}

// parseStatus reads struct audit_status's first eight fields (mask first).
func parseStatus(b []byte) (Status, bool) {
	if len(b) < 8*4 {
		return Status{}, false
	}
	u := func(i int) uint32 { return binary.NativeEndian.Uint32(b[4*i:]) }
	return Status{
		Enabled: u(1), Failure: u(2), PID: u(3), RateLimit: u(4),
		BacklogLimit: u(5), Lost: u(6), Backlog: u(7),
	}, true
}

// statusRequest builds the struct audit_status of an AUDIT_SET: mask, then
// enabled, failure, pid (the rest zero).
func statusRequest(mask, enabled, pid uint32) []byte {
	b := make([]byte, 10*4)
	binary.NativeEndian.PutUint32(b[0:], mask)
	binary.NativeEndian.PutUint32(b[4:], enabled)
	binary.NativeEndian.PutUint32(b[12:], pid)
	return b
}

// statusRequestBacklog builds the struct audit_status of an AUDIT_SET of the
// backlog limit.
func statusRequestBacklog(n uint32) []byte {
	b := statusRequest(unix.AUDIT_STATUS_BACKLOG_LIMIT, 0, 0)
	binary.NativeEndian.PutUint32(b[20:], n)
	return b
}

// setStatus sends an AUDIT_SET on a socket of its own and waits for the
// kernel's acknowledgement.
func setStatus(status []byte) error {
	fd, err := openSocket()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return request(fd, unix.AUDIT_SET, status, true, nil)
}

// openSocket opens and binds a NETLINK_AUDIT socket.
func openSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		return -1, fmt.Errorf("audit: netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("audit: bind netlink socket: %w", err)
	}
	return fd, nil
}

// request sends one message of type typ with payload to the kernel and
// reads its answer: with ack, until the acknowledgement of the message
// arrives; every datagram read, the acknowledgement and errors aside, goes
// to other, and reading also ends when other returns true. An error
// message from the kernel ends it with that error.
func request(fd int, typ uint16, payload []byte, ack bool, other func([]byte) bool) error {
	const seq = 1
	msg := make([]byte, unix.NLMSG_HDRLEN+len(payload))
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	flags := uint16(unix.NLM_F_REQUEST)
	if ack {
		flags |= unix.NLM_F_ACK
	}
	binary.NativeEndian.PutUint16(msg[6:], flags)
	binary.NativeEndian.PutUint32(msg[8:], seq)
	copy(msg[unix.NLMSG_HDRLEN:], payload)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	// The acknowledgement should come at once; do not wait forever.
	tv := unix.NsecToTimeval((5 * time.Second).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("receive timeout: %w", err)
	}
	defer func() {
		var zero unix.Timeval
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &zero)
	}()
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOBUFS) {
			continue
		}
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		b := buf[:n]
		if n >= unix.NLMSG_HDRLEN+4 && binary.NativeEndian.Uint16(b[4:6]) == unix.NLMSG_ERROR &&
			binary.NativeEndian.Uint32(b[8:12]) == seq {
			if e := int32(binary.NativeEndian.Uint32(b[unix.NLMSG_HDRLEN:])); e != 0 {
				return unix.Errno(-e)
			}
			if ack {
				return nil
			}
			continue
		}
		if other != nil && other(b) {
			return nil
		}
	}
}
