//go:build unix

package paths

import (
	"os"
	"syscall"
)

// mapFile maps a regular file into memory read-only, so that its blocks
// are read without copying. It returns nil when the file cannot be mapped
// (not a regular file, empty, or too large for the address space); the
// caller then reads it as a stream.
func mapFile(f *os.File, size int64) []byte {
	if size <= 0 || size != int64(int(size)) {
		return nil
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil
	}
	return data
}

// unmapFile releases a mapping made by mapFile.
func unmapFile(data []byte) error { return syscall.Munmap(data) }
