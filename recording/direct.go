package recording

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Direct I/O. A recording under a flood writes hundreds of megabytes a
// second. Through the page cache every 4 KiB of it costs a page allocated,
// charged, filled and later written back and reclaimed: on a virtual
// machine whose free memory goes back to the host (free page reporting),
// each new page is also a fault in the host, and write(2) took 2.7 s of
// CPU per 1.5 GB on this project's test machine where direct I/O took
// 0.27 s (docs/BENCHMARKS.md, Loss). A long recording also fills the page
// cache with gigabytes nobody reads again, at the expense of what the
// host's own programs keep there. So record writes its files with
// O_DIRECT where the file system allows it: whole aligned chunks straight
// from a buffer of its own to the disk.
//
// Direct writes must start and end on the device's block boundaries; the
// pcap-ng blocks do not. directFile therefore keeps the last, unaligned
// part of what it was given (less than directAlign bytes) and writes it
// again, at the front of the next chunk. So that the file on disk still
// ends on a pcap-ng block soon after the event loop handed it over (a
// recorder killed has lost at most that), the asyncWriter asks for the
// tail to be written through the page cache once its writes pause or
// idleAfter after a write (flushTail); the next direct write over that
// page makes the kernel write it back and drop it first.

// directAlign is the alignment of direct writes: file offset, length and
// buffer address. 4 KiB covers devices with 512-byte and 4-KiB logical
// blocks.
const directAlign = 4096

// directFile writes a file with direct I/O, and through the page cache
// where the file system refuses it.
type directFile struct {
	f *os.File // opened without O_DIRECT: the tail, truncation, fallback
	d *os.File // the same file opened with O_DIRECT; nil after a fallback
	// stage holds the bytes from base on that are still to be written
	// directly: an aligned buffer (stage[:0] starts on directAlign).
	stage []byte
	base  int64 // file offset of stage[0], a multiple of directAlign
	// ends are the file offsets where the buffers handed to write ended
	// (pcap-ng block boundaries) after the last one known in the file:
	// a failed write cuts the file back to one of them.
	ends []int64
	// size is the length of the file as written so far: what is in it,
	// directly or through the page cache.
	size  int64
	wrote bool // a direct write succeeded (a later EINVAL is an error)
}

// openDirect opens the file f has open (through /proc/self/fd: the same
// file, whatever happened to its name since) for direct writes. It
// returns nil when the file system does not allow them (tmpfs before
// Linux 6.6, some network and FUSE file systems) or /proc is not there.
func openDirect(f *os.File) *directFile {
	if f == nil {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	nfd := -1
	_ = rc.Control(func(fd uintptr) {
		nfd, err = unix.Open("/proc/self/fd/"+strconv.Itoa(int(fd)), unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	})
	if err != nil || nfd < 0 {
		return nil
	}
	// Named as f is, so that errors name the file the user gave.
	return &directFile{f: f, d: os.NewFile(uintptr(nfd), f.Name())}
}

// grow makes room in stage for n more bytes, keeping it aligned.
func (w *directFile) grow(n int) {
	if len(w.stage)+n <= cap(w.stage) {
		return
	}
	size := (len(w.stage) + n + 2*directAlign - 1) &^ (directAlign - 1)
	raw := make([]byte, size+directAlign)
	off := int(-uintptr(unsafe.Pointer(&raw[0])) & (directAlign - 1))
	stage := raw[off : off : off+size]
	w.stage = append(stage, w.stage...)
}

// write is the asyncWriter's write: p holds whole pcap-ng blocks. The
// aligned part of what is staged goes to the file directly; the rest
// waits for the next call or flushTail. It returns len(p), or on an error
// how much of p the file kept once cut back to its last whole block.
func (w *directFile) write(p []byte) (int, error) {
	start := w.base + int64(len(w.stage)) // where p goes in the file
	w.grow(len(p))
	w.stage = append(w.stage, p...)
	w.ends = append(w.ends, start+int64(len(p)))
	if w.d == nil {
		return w.writeBuffered(start, len(w.stage))
	}
	k := len(w.stage) &^ (directAlign - 1)
	if k == 0 {
		return len(p), nil
	}
	n, err := w.d.WriteAt(w.stage[:k], w.base)
	if err != nil {
		if n == 0 && !w.wrote && errors.Is(err, syscall.EINVAL) {
			// The device wants another alignment, or the file system
			// takes O_DIRECT at open but not at write: go on through
			// the page cache.
			w.d.Close()
			w.d = nil
			return w.writeBuffered(start, len(w.stage))
		}
		return w.fail(start, w.base+int64(n), err)
	}
	w.wrote = true
	w.advance(k)
	return len(p), nil
}

// writeBuffered writes stage[:k] through the page cache (the fallback).
func (w *directFile) writeBuffered(start int64, k int) (int, error) {
	n, err := w.f.WriteAt(w.stage[:k], w.base)
	if err != nil {
		return w.fail(start, w.base+int64(n), err)
	}
	w.advance(k)
	return int(w.size - start), nil
}

// advance drops the first k bytes of stage, which are in the file.
func (w *directFile) advance(k int) {
	w.base += int64(k)
	w.size = max(w.size, w.base)
	w.stage = w.stage[:copy(w.stage, w.stage[k:])]
	w.ends = w.keepEnds(w.base)
}

// keepEnds drops the block ends before the last one at or before off.
func (w *directFile) keepEnds(off int64) []int64 {
	i := 0
	for i+1 < len(w.ends) && w.ends[i+1] <= off {
		i++
	}
	if i > 0 && w.ends[i] <= off {
		return w.ends[:copy(w.ends, w.ends[i:])]
	}
	return w.ends
}

// flushTail writes what is staged through the page cache, so that the file
// ends on a block boundary; it stays staged for the next direct write.
func (w *directFile) flushTail() error {
	if len(w.stage) == 0 || w.base+int64(len(w.stage)) <= w.size {
		return nil
	}
	if _, err := w.f.WriteAt(w.stage, w.base); err != nil {
		// Nothing of p is lost yet: the direct write will try again,
		// and the error says the disk is in trouble.
		return fmt.Errorf("write output: %w", err)
	}
	w.size = w.base + int64(len(w.stage))
	return nil
}

// fail cuts the file back to the last block end at or before written (the
// file's bytes are whole up to there) after a write of the bytes from
// start on failed, and returns how many of them the file kept.
func (w *directFile) fail(start, written int64, err error) (int, error) {
	// What flushTail wrote is the same bytes as what the direct write
	// wrote over part of it: the file is whole up to the larger end.
	written = max(written, w.size)
	keep := int64(0)
	for _, e := range w.ends {
		if e <= written {
			keep = e
		}
	}
	if keep < w.size || keep < written {
		if terr := w.f.Truncate(keep); terr == nil {
			w.size = keep
		}
	}
	w.stage = w.stage[:0]
	w.ends = w.ends[:0]
	return int(max(0, w.size-start)), err
}

// close writes the tail and closes the direct descriptor (f is the
// caller's). It returns the length of the file.
func (w *directFile) close() (int64, error) {
	err := w.flushTail()
	if w.d != nil {
		if cerr := w.d.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close output: %w", cerr)
		}
		w.d = nil
	}
	return w.size, err
}
