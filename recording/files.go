package recording

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pathcap/pathcap/capture"
)

// FilePerm is the mode of the files a recording creates: they hold packet
// payloads, so only their owner may read them.
const FilePerm os.FileMode = 0o600

// FileOptions say where a recording goes and when it moves on to a new
// file (record -w FILE -C SIZE -G DURATION -W N).
type FileOptions struct {
	// Path is the output file. Without rotation it is the file itself;
	// with rotation the files are named after it (PartName).
	Path string
	// FileSize starts a new file before the next event once the current
	// one holds this many bytes (0: no limit). Files end a little past
	// it: by at most the last event's block and the closing statistics.
	FileSize int64
	// Interval starts a new file once the current one is this old (0:
	// never), whether events came or not.
	Interval time.Duration
	// MaxFiles keeps at most this many files of the recording on disk:
	// once another file is started, the oldest is removed (0: keep all).
	// It needs FileSize or Interval.
	MaxFiles int
	// Direct writes the files with direct I/O (O_DIRECT) where their file
	// system allows it, bypassing the page cache (directFile).
	Direct bool
}

// Rotates reports whether the recording is split into several files.
func (o FileOptions) Rotates() bool { return o.FileSize > 0 || o.Interval > 0 }

// Check reports options that cannot be used.
func (o FileOptions) Check() error {
	switch {
	case o.Path == "" || o.Path == "-":
		return errors.New("a recording in files needs a file name")
	case o.FileSize < 0:
		return fmt.Errorf("file size %d is negative", o.FileSize)
	case o.Interval < 0:
		return fmt.Errorf("file interval %v is negative", o.Interval)
	case o.MaxFiles < 0:
		return fmt.Errorf("file count %d is negative", o.MaxFiles)
	case o.MaxFiles > 0 && !o.Rotates():
		return errors.New("a maximum number of files needs a file size or interval to start new files")
	}
	return nil
}

// PartName returns the name of file seq (from 1) of a rotated recording
// written to path, started at t: the number (five digits at least) and
// the start time in UTC go between the name and its extension, so that
// the names sort in the order the files were written:
//
//	out.pcapng → out_00001_20261207T061500Z.pcapng
func PartName(path string, seq int, t time.Time) string {
	dir, base := filepath.Split(path)
	ext := filepath.Ext(base)
	if ext == base {
		ext = "" // ".pcapng" is a name, not an extension
	}
	stem := strings.TrimSuffix(base, ext)
	return dir + fmt.Sprintf("%s_%05d_%s%s", stem, seq, t.UTC().Format("20060102T150405Z"), ext)
}

// NewRecordingID returns a new random identifier for Info.Recording.
func NewRecordingID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// Files writes a recording into a file, or into a numbered set of files
// when FileOptions rotate. Every file is complete on its own: its section
// header, the interfaces its events use and, when it is closed, their
// statistics. Files are created with mode FilePerm. A write that fails
// half way (a full disk) is cut back to the last whole block, so that the
// file stays readable to its end.
//
// Files is not safe for concurrent use. RunFiles drives it.
type Files struct {
	opts    FileOptions
	w       *Writer
	cur     *fileOutput
	seq     int       // number of the current file, from 1
	opened  time.Time // when the current file was created
	kept    []string  // the recording's files on disk, oldest first
	created []string  // every file created, in order (removed ones too)
	// removable are the regular files among created: Discard removes
	// them, never a device or a pipe the user named (-w /dev/null).
	removable []string
	closed    int64 // bytes of the files before the current one
	hold      bool  // Hold: no file is removed any more
	// atOpen is the recording's loss and skip counts when the current
	// file was started: the file's statistics count those after it.
	atOpen capture.Stats
}

// CreateFiles creates the first file of a recording and writes its section
// header; the arguments after opts are NewWriter's.
func CreateFiles(opts FileOptions, info Info, bufSize int, names DeviceNamer, symbols Symbolizer) (*Files, error) {
	if err := opts.Check(); err != nil {
		return nil, err
	}
	fs := &Files{opts: opts}
	out, err := fs.open(time.Now())
	if err != nil {
		return nil, err
	}
	w, err := NewWriter(out, info, bufSize, names, symbols)
	if err == nil {
		// The section header on disk at once: a recorder killed before
		// its first event still leaves a pcap-ng file.
		err = w.Flush()
	}
	if err != nil {
		_ = out.close()
		if out.regular {
			os.Remove(out.name)
		}
		return nil, err
	}
	fs.w = w
	return fs, nil
}

// open creates the next file.
func (fs *Files) open(now time.Time) (*fileOutput, error) {
	name := fs.opts.Path
	if fs.opts.Rotates() {
		name = PartName(fs.opts.Path, fs.seq+1, now)
	}
	f, err := createPrivate(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("create output: %w", err)
	}
	fs.seq++
	fs.opened = now
	fs.cur = newFileOutput(f, name, st.Mode().IsRegular(), fs.opts.Direct)
	fs.kept = append(fs.kept, name)
	fs.created = append(fs.created, name)
	if fs.cur.regular {
		// Only regular files are removed on failure: never a device or a
		// pipe the user named.
		fs.removable = append(fs.removable, name)
	}
	return fs.cur, nil
}

// createPrivate creates (or truncates) a file for writing with mode
// FilePerm. A regular file that existed keeps no wider mode either.
func createPrivate(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, FilePerm)
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&^FilePerm != 0 {
		if err := f.Chmod(FilePerm); err != nil {
			f.Close()
			return nil, fmt.Errorf("create output: %w", err)
		}
	}
	return f, nil
}

// Writer returns the recording's writer (the same for every file).
func (fs *Files) Writer() *Writer { return fs.w }

// Name returns the name of the current file.
func (fs *Files) Name() string { return fs.cur.name }

// Created returns the names of every file created so far, in order,
// including those MaxFiles removed since.
func (fs *Files) Created() []string { return fs.created }

// Kept returns the names of the recording's files on disk, oldest first.
func (fs *Files) Kept() []string { return fs.kept }

// Size returns the bytes the recording has written so far in all its
// files (removed ones too), buffered ones included.
func (fs *Files) Size() int64 {
	return fs.closed + fs.cur.n + int64(fs.w.Buffered())
}

// Due reports whether a new file should be started now: the current one
// reached FileSize or is Interval old.
func (fs *Files) Due(now time.Time) bool {
	return fs.dueAt(func() time.Time { return now })
}

// dueAt is Due with the time read only when the files rotate by time: the
// clock costs more than the rest of the check, and run checks before
// every event.
func (fs *Files) dueAt(now func() time.Time) bool {
	if fs.opts.FileSize > 0 && fs.cur.n+int64(fs.w.Buffered()) >= fs.opts.FileSize {
		return true
	}
	return fs.opts.Interval > 0 && now().Sub(fs.opened) >= fs.opts.Interval
}

// Rotate closes the current file (with its statistics; st is the
// recording's loss and skip counts so far) and starts the next one; with MaxFiles,
// the oldest file beyond the limit is removed.
func (fs *Files) Rotate(st capture.Stats, now time.Time) error {
	if err := fs.finish(st, now); err != nil {
		return err
	}
	out, err := fs.open(now)
	if err != nil {
		return err
	}
	fs.atOpen = st
	if err := fs.w.Restart(out); err != nil {
		return err
	}
	if err := fs.w.Flush(); err != nil {
		return err
	}
	for fs.opts.MaxFiles > 0 && !fs.hold && len(fs.kept) > fs.opts.MaxFiles {
		old := fs.kept[0]
		if err := os.Remove(old); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove the oldest file: %w", err)
		}
		fs.kept = fs.kept[1:]
	}
	return nil
}

// Hold stops removing the oldest files beyond MaxFiles: what a flight
// recording's trigger found must survive the rest of the recording.
func (fs *Files) Hold() { fs.hold = true }

// finish writes the current file's statistics, flushes and closes it.
func (fs *Files) finish(st capture.Stats, end time.Time) error {
	fs.w.SetSkipped(st.OverBudget - fs.atOpen.OverBudget)
	err := fs.w.Close(st.Lost-fs.atOpen.Lost, end)
	if cerr := fs.cur.close(); err == nil && cerr != nil {
		err = cerr
	}
	fs.closed += fs.cur.n
	fs.cur.n = 0
	return err
}

// Close ends the recording: the current file gets its statistics (st
// has the recording's loss and skip counts) and is closed.
func (fs *Files) Close(st capture.Stats, end time.Time) error {
	return fs.finish(st, end)
}

// Abort closes the current file as it is, after a write failed: what
// reached it stays, without the closing statistics. A file that not even
// its section header reached is removed: it would not be pcap-ng.
func (fs *Files) Abort() error {
	if fs.cur.f == nil {
		return nil // closed already
	}
	err := fs.cur.close()
	if fs.cur.n == 0 && fs.cur.regular && os.Remove(fs.cur.name) == nil {
		fs.kept = slices.DeleteFunc(fs.kept, func(n string) bool { return n == fs.cur.name })
	}
	return err
}

// fileOutput is one output file, written on a goroutine of its own
// (asyncWriter): the event loop that fills it never waits in write(2). A
// regular file is written with direct I/O where the file system allows it
// (directFile). A write that fails after part of its bytes reached the
// file (ENOSPC) is cut back to the last whole block, so that the file ends
// on a block boundary; the recording stops there.
type fileOutput struct {
	f    *os.File
	name string
	// n counts the bytes handed to the file, some of which may still be
	// on their way; after close, the bytes in it.
	n int64
	// regular: a regular file, which record may remove again; never a
	// device or a pipe the user named (-w /dev/null, a FIFO).
	regular bool
	aw      *asyncWriter
	direct  *directFile // nil: written through the page cache
}

// newFileOutput starts writing f; with direct, a regular file is written
// with direct I/O where its file system allows it.
func newFileOutput(f *os.File, name string, regular, direct bool) *fileOutput {
	o := &fileOutput{f: f, name: name, regular: regular}
	if regular && direct {
		o.direct = openDirect(f)
	}
	if o.direct != nil {
		o.aw = newAsyncWriter(o.direct.write, o.direct.flushTail)
		return o
	}
	var written int64 // the writer goroutine's
	o.aw = newAsyncWriter(func(p []byte) (int, error) {
		n, err := f.Write(p)
		if err != nil && n > 0 {
			if keep := wholeBlocks(p, n); keep < n && f.Truncate(written+int64(keep)) == nil {
				n = keep
			}
		}
		written += int64(n)
		return n, err
	}, nil)
	return o
}

// Write implements io.Writer. p holds whole pcap-ng blocks (the
// pcapng.Writer writes nothing else). The error is that of an earlier
// write.
func (o *fileOutput) Write(p []byte) (int, error) {
	n, err := o.aw.Write(p)
	o.n += int64(n)
	return n, err
}

// TakeBuffer implements pcapng.BufferTaker: the Writer's buffer is queued
// as it is, without a copy. The error is that of an earlier write.
func (o *fileOutput) TakeBuffer(b []byte) ([]byte, error) {
	n := len(b)
	next, err := o.aw.take(b)
	if err == nil {
		o.n += int64(n)
	}
	return next, err
}

// close writes what is on its way and closes the file. n is then the
// bytes in the file.
func (o *fileOutput) close() error {
	n, err := o.aw.close()
	if o.direct != nil {
		size, derr := o.direct.close()
		n = size
		if err == nil {
			err = derr
		}
	}
	o.n = n
	if cerr := o.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close output: %w", cerr)
	}
	o.f = nil
	return err
}

// wholeBlocks returns the length of the whole little-endian pcap-ng
// blocks at the start of p[:n].
func wholeBlocks(p []byte, n int) int {
	end := 0
	for end+12 <= len(p) {
		l := int(binary.LittleEndian.Uint32(p[end+4:]))
		if l < 12 || end+l > n {
			break
		}
		end += l
	}
	return end
}

// Discard closes the current file and removes every file created: for a
// recording that could not start.
func (fs *Files) Discard() {
	_ = fs.Abort()
	for _, name := range fs.removable {
		_ = os.Remove(name)
	}
	fs.kept = nil
}
