package pcapng

import (
	"errors"
	"fmt"
)

// Errors that a *FormatError may wrap, and that the Writer returns wrapped.
var (
	// ErrNotPcapng means the input does not start with a section header
	// block: it is not a pcap-ng file.
	ErrNotPcapng = errors.New("not a pcap-ng file")
	// ErrTruncated means the input ended inside a block.
	ErrTruncated = errors.New("truncated block")
	// ErrBlockTooLarge means a block is larger than the Reader's limit.
	ErrBlockTooLarge = errors.New("block too large")
	// ErrUnsupportedVersion means a section has a major version other than 1.
	ErrUnsupportedVersion = errors.New("unsupported version")
	// ErrUnknownInterface means a block refers to an interface that was
	// not described in its section.
	ErrUnknownInterface = errors.New("unknown interface")
	// ErrOptionTooLong means an option value does not fit in 65535 bytes.
	ErrOptionTooLong = errors.New("option too long")
	// ErrPacketTooLarge means a packet is longer than the interface's
	// snapshot length or than MaxCaptureLength.
	ErrPacketTooLarge = errors.New("packet too large")
	// ErrInvalidOption means an option's value has the wrong length or
	// content for its type, such as a 3-byte epb_flags or a tc verdict
	// without its 8 bytes of data.
	ErrInvalidOption = errors.New("invalid option")
)

// FormatError reports a malformed block: where it starts in the input,
// what kind of block it is, and what is wrong with it.
type FormatError struct {
	// Offset is the byte offset in the input of the block's first byte.
	Offset int64
	// Block is the block's type (as far as it could be read).
	Block BlockType
	// Msg says what was wrong.
	Msg string
	// Err is the cause, if it is one of the package's sentinel errors or
	// an I/O error.
	Err error
}

// Error implements the error interface.
func (e *FormatError) Error() string {
	s := fmt.Sprintf("pcapng: %v at offset %d: %s", e.Block, e.Offset, e.Msg)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *FormatError) Unwrap() error { return e.Err }
