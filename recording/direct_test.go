package recording

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// directTarget creates an empty file for direct writes, in a directory
// whose file system takes O_DIRECT, and opens it both ways.
func directTarget(t *testing.T) (*os.File, *directFile) {
	t.Helper()
	for _, dir := range []string{t.TempDir(), "/var/tmp"} {
		f, err := os.CreateTemp(dir, "direct-*.pcapng")
		if err != nil {
			continue
		}
		t.Cleanup(func() { f.Close(); os.Remove(f.Name()) })
		if w := openDirect(f); w != nil {
			return f, w
		}
	}
	t.Skip("no temporary directory here is on a file system that takes O_DIRECT")
	return nil, nil
}

// TestDirectFileWritesWhatItIsGiven: buffers of every size, written
// directly where aligned, end up in the file byte for byte; after
// flushTail the file holds everything handed so far and ends there, and
// what flushTail wrote through the page cache is overwritten correctly by
// the next direct write.
func TestDirectFileWritesWhatItIsGiven(t *testing.T) {
	f, w := directTarget(t)
	rng := rand.New(rand.NewPCG(1, 2))
	var want []byte
	for i := range 300 {
		n := 1 + rng.IntN(3*directAlign)
		if i%50 == 0 {
			n = 300 << 10 // a whole buffer of the Writer and more
		}
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		want = append(want, p...)
		if got, err := w.write(p); got != n || err != nil {
			t.Fatalf("write %d (%d bytes): %d, %v", i, n, got, err)
		}
		if i%7 == 3 {
			if err := w.flushTail(); err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(f.Name()); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("after flushTail at write %d: %d bytes in the file, %d handed; equal %v (%v)", i, len(got), len(want), bytes.Equal(got, want), err)
			}
		}
	}
	if !w.wrote || w.d == nil {
		t.Fatalf("no direct write went through (wrote %v, descriptor %v)", w.wrote, w.d != nil)
	}
	size, err := w.close()
	got, rerr := os.ReadFile(f.Name())
	if err != nil || rerr != nil || size != int64(len(want)) || !bytes.Equal(got, want) {
		t.Fatalf("after close: size %d, file %d bytes, handed %d, equal %v (%v, %v)", size, len(got), len(want), bytes.Equal(got, want), err, rerr)
	}
}

// TestFileOutputWholeSoon: a file written with direct I/O holds every byte
// handed to it soon after (idleAfter) even while it stays open, so a
// recorder killed then loses nothing it handed over; its length is not a
// multiple of the alignment, so the tail went through the page cache.
func TestFileOutputWholeSoon(t *testing.T) {
	f, w := directTarget(t)
	w.d.Close()
	o := newFileOutput(f, f.Name(), true, true)
	if o.direct == nil {
		t.Fatal("no direct I/O for a file that takes it")
	}
	want := bytes.Repeat([]byte("0123456789abcdef"), 70000)
	want = append(want, "tail"...)
	for p := want; len(p) > 0; {
		n := min(len(p), 100<<10)
		if _, err := o.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	deadline := time.Now().Add(20 * idleAfter)
	for {
		got, err := os.ReadFile(f.Name())
		if err == nil && bytes.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the last write the file has %d of %d bytes (%v)", 20*idleAfter, len(got), len(want), err)
		}
		time.Sleep(idleAfter / 4)
	}
	if err := o.close(); err != nil || o.n != int64(len(want)) {
		t.Fatalf("close: %v, %d bytes", err, o.n)
	}
}

// TestDirectFileFallsBack: where O_DIRECT cannot be had (no file; a
// directory), the file is written through the page cache.
func TestDirectFileFallsBack(t *testing.T) {
	dir := t.TempDir()
	if w := openDirect(nil); w != nil {
		t.Fatal("direct writes without a file")
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if w := openDirect(d); w != nil {
		t.Fatal("opened a directory for direct writes")
	}
	f, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o := newFileOutput(f, f.Name(), true, false)
	if o.direct != nil {
		t.Fatal("direct I/O though not asked for")
	}
	if _, err := o.Write([]byte("through the page cache")); err != nil {
		t.Fatal(err)
	}
	if err := o.close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "out")); string(got) != "through the page cache" {
		t.Fatalf("file holds %q", got)
	}
}

// TestDirectFileSameFile: the direct descriptor is the file's own, even
// after its name went to another file.
func TestDirectFileSameFile(t *testing.T) {
	f, w := directTarget(t)
	name := f.Name()
	if err := os.Rename(name, name+".moved"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(name + ".moved") })
	if err := os.WriteFile(name, []byte("someone else's"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.d.Close()
	w = openDirect(f)
	if w == nil {
		t.Fatal("no direct descriptor")
	}
	p := bytes.Repeat([]byte{7}, 3*directAlign+5)
	if _, err := w.write(p); err != nil {
		t.Fatal(err)
	}
	if _, err := w.close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(name + ".moved"); !bytes.Equal(got, p) {
		t.Errorf("the file has %d bytes, want %d", len(got), len(p))
	}
	if got, _ := os.ReadFile(name); string(got) != "someone else's" {
		t.Errorf("the file now named %s was written: %q", name, got)
	}
}
