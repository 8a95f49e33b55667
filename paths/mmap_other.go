//go:build !unix

package paths

import "os"

// mapFile maps nothing on this system: files are read as streams.
func mapFile(f *os.File, size int64) []byte { return nil }

// unmapFile is never called on this system.
func unmapFile(data []byte) error { return nil }
