package recording

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// TestAsyncWriterOrderAndErrors: the bytes reach the writer in order,
// sync waits for them, and the first error sticks: later writes are
// refused and their bytes never reach the writer.
func TestAsyncWriterOrderAndErrors(t *testing.T) {
	var out bytes.Buffer
	fail := errors.New("disk full")
	limit := 0 // 0: no limit
	a := newAsyncWriter(func(p []byte) (int, error) {
		if limit > 0 && out.Len()+len(p) > limit {
			n := limit - out.Len()
			out.Write(p[:n])
			return n, fail
		}
		return out.Write(p)
	}, nil)
	var want bytes.Buffer
	for i := 0; i < 1000; i++ {
		line := fmt.Sprintf("block %d\n", i)
		want.WriteString(line)
		if n, err := a.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("Write %d: %d, %v", i, n, err)
		}
	}
	n, err := a.sync()
	if err != nil || n != int64(want.Len()) || !bytes.Equal(out.Bytes(), want.Bytes()) {
		t.Fatalf("after sync: %d bytes, %v; the writer has %d bytes, equal %v", n, err, out.Len(), bytes.Equal(out.Bytes(), want.Bytes()))
	}

	limit = want.Len() + 5 // read by the goroutine after the sync above
	if _, err := a.Write([]byte("0123456789")); err != nil {
		t.Fatalf("the failing write itself is queued: %v", err)
	}
	n, err = a.sync()
	if !errors.Is(err, fail) || n != int64(limit) {
		t.Fatalf("after the failed write: %d bytes, %v; want %d, %v", n, err, limit, fail)
	}
	if _, err := a.Write([]byte("more")); !errors.Is(err, fail) {
		t.Fatalf("Write after the failure: %v, want %v", err, fail)
	}
	if n, err := a.close(); !errors.Is(err, fail) || n != int64(limit) || out.Len() != limit {
		t.Fatalf("close: %d, %v; the writer has %d bytes", n, err, out.Len())
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, errAsyncClosed) {
		t.Fatalf("Write after close: %v", err)
	}
	if _, err := a.close(); !errors.Is(err, fail) {
		t.Fatalf("second close: %v", err)
	}
}

// TestAsyncWriterTake: buffers handed over with take are written as they
// are, in order with those of Write, and take hands back empty buffers.
func TestAsyncWriterTake(t *testing.T) {
	var out bytes.Buffer
	a := newAsyncWriter(out.Write, nil)
	var want bytes.Buffer
	buf := make([]byte, 0, 64)
	for i := 0; i < 200; i++ {
		line := fmt.Sprintf("taken %d\n", i)
		want.WriteString(line)
		buf = append(buf, line...)
		next, err := a.take(buf)
		if err != nil || len(next) != 0 || cap(next) < 64 {
			t.Fatalf("take %d: len %d cap %d, %v", i, len(next), cap(next), err)
		}
		buf = next
		line = fmt.Sprintf("written %d\n", i)
		want.WriteString(line)
		if _, err := a.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := a.close(); err != nil || n != int64(want.Len()) || !bytes.Equal(out.Bytes(), want.Bytes()) {
		t.Fatalf("close: %d, %v; equal %v", n, err, bytes.Equal(out.Bytes(), want.Bytes()))
	}
}
