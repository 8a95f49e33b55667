package kmeta

import (
	"bytes"
	"errors"
	"fmt"
)

// FilePrefix starts the section header comment that places a file in its
// recording (docs/FORMAT.md, "Rotated files").
const FilePrefix = "pathcap-file/1"

// filePrefix is the part of FilePrefix before the version.
const filePrefix = "pathcap-file/"

// ErrNotFile means a comment is not a file comment (it does not start with
// "pathcap-file/").
var ErrNotFile = errors.New("not a pathcap file comment")

// FileComment is the "pathcap-file/1" comment of a section header: which
// recording the file belongs to and which part of it the file is.
//
//	pathcap-file/1 recording=5f0c9a3e2b7d4e61 part=3
//
// Every file of one run of record has the same recording, and parts are
// numbered from 1 in the order the files were written; tracking ids and
// stack numbers are unique within a recording, across its parts.
type FileComment struct {
	// Recording identifies the recording: letters and digits, the same in
	// all its files.
	Recording string
	// Part is the file's number in the recording, from 1.
	Part uint64
	// BytesChanged says the recording was made with record --bytes
	// changed (key bytes=changed): its events may have the key bytes=same
	// (Event.BytesSame), and a reader keeps each tracking id's last bytes
	// to carry them forward.
	BytesChanged bool
}

// IsFileComment reports whether comment starts like a file comment.
func IsFileComment(comment []byte) bool {
	return bytes.HasPrefix(comment, []byte(filePrefix))
}

// AppendFileComment appends the comment for c to dst and returns the
// result.
func AppendFileComment(dst []byte, c *FileComment) []byte {
	dst = append(dst, FilePrefix...)
	dst = AppendPair(dst, "recording", c.Recording)
	dst = AppendUintPair(dst, "part", c.Part)
	if c.BytesChanged {
		dst = AppendPair(dst, "bytes", "changed")
	}
	return dst
}

// ParseFileComment decodes a file comment into c (which is reset first).
// It returns ErrNotFile for a comment that is not a file comment and a
// *SyntaxError for one that is but is malformed: not key=value pairs of the
// metadata grammar, an unknown version, no recording, or no part or a part
// of 0. Keys it does not know are ignored.
func ParseFileComment(comment []byte, c *FileComment) error {
	*c = FileComment{}
	if !IsFileComment(comment) {
		return ErrNotFile
	}
	i := len(filePrefix)
	for i < len(comment) && comment[i] >= '0' && comment[i] <= '9' {
		i++
	}
	if i == len(filePrefix) {
		return &SyntaxError{Offset: i, Msg: "no version number"}
	}
	if string(comment[len(filePrefix):i]) != "1" {
		return &SyntaxError{Offset: len(filePrefix), Msg: fmt.Sprintf("unsupported file comment version %q (this reader knows 1)", comment[len(filePrefix):i])}
	}
	for i < len(comment) {
		key, val, valStart, next, err := nextPair(comment, i)
		if err != nil {
			return err
		}
		i = next
		switch string(key) {
		case "recording":
			c.Recording = string(val)
		case "bytes":
			c.BytesChanged = string(val) == "changed"
		case "part":
			v, err := parseDec64(val)
			if err == nil && v == 0 {
				err = errors.New("parts are numbered from 1")
			}
			if err != nil {
				return &SyntaxError{Offset: valStart, Msg: fmt.Sprintf("bad value for part: %v", err)}
			}
			c.Part = v
		}
	}
	if c.Recording == "" {
		return &SyntaxError{Offset: len(comment), Msg: "no recording key"}
	}
	if c.Part == 0 {
		return &SyntaxError{Offset: len(comment), Msg: "no part key"}
	}
	return nil
}
