package kmeta

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// StackPrefix starts every stack comment this package writes.
const StackPrefix = "pathcap-stack/1"

// stackPrefix is the part of StackPrefix before the version.
const stackPrefix = "pathcap-stack/"

// ErrNotStack means a comment is not a stack comment (it does not start with
// "pathcap-stack/").
var ErrNotStack = errors.New("not a pathcap stack comment")

// StackComment is a "pathcap-stack/1" comment: the frames of the kernel
// stack of the event it is attached to. The first event with a given stack
// carries its definition, the full form with offsets:
//
//	pathcap-stack/1 id=3 frames=kfree_skb_reason+0x9c;__udp4_lib_rcv+0x4bc;veth_xmit+0x10[veth];...
//
// later events with the same stack the short form, function names only:
//
//	pathcap-stack/1 id=3 funcs=kfree_skb_reason;__udp4_lib_rcv;veth_xmit[veth];...
//
// Frames are innermost first and separated by ';'. A frame is a function
// name, "+0x" and the hex offset of the return address in it (full form
// only), and the module in brackets for module code; an address that could
// not be resolved is written as "0x" and its hex digits in both forms.
type StackComment struct {
	// ID is the stack's number in its recording, the event's stack=N.
	ID uint64
	// Full reports the full form (key frames=); otherwise the frames are
	// function names only (key funcs=).
	Full bool
	// Frames is the value of frames= or funcs=. ParseStackComment makes it
	// alias the comment (unless the value was quoted).
	Frames []byte
}

// IsStackComment reports whether comment starts like a stack comment.
func IsStackComment(comment []byte) bool {
	return bytes.HasPrefix(comment, []byte(stackPrefix))
}

// AppendStackComment appends the comment for s to dst and returns the
// result. s.Frames is written as it is (bare when it can be, quoted
// otherwise); AppendFrame builds it.
func AppendStackComment(dst []byte, s *StackComment) []byte {
	dst = append(dst, StackPrefix...)
	dst = append(dst, " id="...)
	dst = strconv.AppendUint(dst, s.ID, 10)
	if s.Full {
		dst = append(dst, " frames="...)
	} else {
		dst = append(dst, " funcs="...)
	}
	if needsQuoteBytes(s.Frames) {
		return strconv.AppendQuote(dst, string(s.Frames))
	}
	return append(dst, s.Frames...)
}

func needsQuoteBytes(b []byte) bool {
	if len(b) == 0 || b[0] == '"' {
		return true
	}
	for _, c := range b {
		if c <= ' ' || c == '"' || c == '\\' || c >= 0x7f {
			return true
		}
	}
	return false
}

// ParseStackComment decodes a stack comment into s (which is reset
// first). It returns ErrNotStack for a comment that is not a stack comment
// and a *SyntaxError for one that is but is malformed: not key=value pairs
// of the metadata grammar, an unknown version, no id or an id of 0, no
// frames= or funcs=, or an empty frame. Keys it does not know are ignored;
// when both frames= and funcs= are present, frames= is used. It does not
// allocate unless the frames value is quoted.
func ParseStackComment(comment []byte, s *StackComment) error {
	*s = StackComment{}
	if !IsStackComment(comment) {
		return ErrNotStack
	}
	i := len(stackPrefix)
	for i < len(comment) && comment[i] >= '0' && comment[i] <= '9' {
		i++
	}
	if i == len(stackPrefix) {
		return &SyntaxError{Offset: i, Msg: "no version number"}
	}
	if string(comment[len(stackPrefix):i]) != "1" {
		return &SyntaxError{Offset: len(stackPrefix), Msg: fmt.Sprintf("unsupported stack comment version %q (this reader knows 1)", comment[len(stackPrefix):i])}
	}
	var sawID, sawFuncs bool
	var funcs []byte
	for i < len(comment) {
		key, val, valStart, next, err := nextPair(comment, i)
		if err != nil {
			return err
		}
		i = next
		switch string(key) {
		case "id":
			v, err := parseDec64(val)
			if err == nil && v == 0 {
				err = errors.New("stack numbers start at 1")
			}
			if err != nil {
				return &SyntaxError{Offset: valStart, Msg: fmt.Sprintf("bad value for id: %v", err)}
			}
			s.ID, sawID = v, true
		case "frames", "funcs":
			if err := checkFrames(val); err != nil {
				return &SyntaxError{Offset: valStart, Msg: fmt.Sprintf("bad value for %s: %v", key, err)}
			}
			if key[1] == 'r' {
				s.Frames, s.Full = val, true
			} else {
				funcs, sawFuncs = val, true
			}
		}
	}
	if !sawID {
		return &SyntaxError{Offset: len(comment), Msg: "no id key"}
	}
	if !s.Full {
		if !sawFuncs {
			return &SyntaxError{Offset: len(comment), Msg: "no frames or funcs key"}
		}
		s.Frames = funcs
	}
	return nil
}

// nextPair scans " key=value" at comment[i:], as Parser.Parse does. A
// quoted value is returned unquoted, in a new slice.
func nextPair(comment []byte, i int) (key, val []byte, valStart, next int, err error) {
	n := len(comment)
	if comment[i] != ' ' {
		return nil, nil, 0, 0, &SyntaxError{Offset: i, Msg: "expected a space before the next key"}
	}
	i++
	keyStart := i
	for i < n && byteClass[comment[i]]&classKey != 0 {
		i++
	}
	if i == n || comment[i] != '=' || i == keyStart || comment[keyStart] < 'a' || comment[keyStart] > 'z' {
		return nil, nil, 0, 0, &SyntaxError{Offset: keyStart, Msg: "expected key=value"}
	}
	key = comment[keyStart:i]
	i++
	valStart = i
	if i < n && comment[i] == '"' {
		q, err := quotedLen(comment[i:])
		if err != nil {
			return nil, nil, 0, 0, &SyntaxError{Offset: i, Msg: err.Error()}
		}
		v, err := strconv.Unquote(string(comment[i : i+q]))
		if err != nil {
			return nil, nil, 0, 0, &SyntaxError{Offset: i, Msg: fmt.Sprintf("bad quoted value for %s: %v", key, err)}
		}
		return key, []byte(v), valStart, i + q, nil
	}
	for i < n && byteClass[comment[i]]&classBare != 0 {
		i++
	}
	if i < n && comment[i] != ' ' {
		return nil, nil, 0, 0, &SyntaxError{Offset: valStart, Msg: fmt.Sprintf("bad byte 0x%02x in value of %s", comment[i], key)}
	}
	if i == valStart {
		return nil, nil, 0, 0, &SyntaxError{Offset: valStart, Msg: fmt.Sprintf("empty value for %s", key)}
	}
	return key, comment[valStart:i], valStart, i, nil
}

// checkFrames checks that frames is one or more non-empty frames separated
// by ';'.
func checkFrames(frames []byte) error {
	if len(frames) == 0 {
		return errors.New("no frames")
	}
	for {
		i := bytes.IndexByte(frames, ';')
		if i == 0 || i == len(frames)-1 {
			return errors.New("empty frame")
		}
		if i < 0 {
			return nil
		}
		frames = frames[i+1:]
	}
}

// NextFrame returns the first frame of a frames value and the rest after
// its ';' separator.
func NextFrame(frames []byte) (frame, rest []byte) {
	if i := bytes.IndexByte(frames, ';'); i >= 0 {
		return frames[:i], frames[i+1:]
	}
	return frames, nil
}

// CountFrames returns the number of frames in a frames value.
func CountFrames(frames []byte) int {
	if len(frames) == 0 {
		return 0
	}
	return bytes.Count(frames, []byte(";")) + 1
}

// frameByte replaces the bytes a function or module name may not hold in a
// frame (space, control and non-ASCII bytes, quote, backslash and the
// separators ';', '[', ']', '+') with '?'.
func frameByte(c byte) byte {
	if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == ';' || c == '[' || c == ']' || c == '+' {
		return '?'
	}
	return c
}

func appendFrameName(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		dst = append(dst, frameByte(s[i]))
	}
	return dst
}

// AppendFrame appends one frame: name, "+0x" and offset in hex when
// withOffset is set, and "[module]" when module is not empty. Bytes a name
// may not hold in a frame become '?'.
func AppendFrame(dst []byte, name string, offset uint64, module string, withOffset bool) []byte {
	if name == "" {
		name = "?"
	}
	dst = appendFrameName(dst, name)
	if withOffset {
		dst = append(dst, "+0x"...)
		dst = strconv.AppendUint(dst, offset, 16)
	}
	if module != "" {
		dst = append(dst, '[')
		dst = appendFrameName(dst, module)
		dst = append(dst, ']')
	}
	return dst
}

// AppendAddressFrame appends the frame of an address that could not be
// resolved: "0x" and its hex digits.
func AppendAddressFrame(dst []byte, addr uint64) []byte {
	dst = append(dst, "0x"...)
	return strconv.AppendUint(dst, addr, 16)
}

// FrameFunction returns the function name of a frame: what comes before
// its offset and module ("__udp4_lib_rcv" of "__udp4_lib_rcv+0x4bc",
// "veth_xmit" of "veth_xmit+0x10[veth]"). An address frame is returned as
// it is.
func FrameFunction(frame string) string {
	for i := 0; i < len(frame); i++ {
		if frame[i] == '+' || frame[i] == '[' {
			return frame[:i]
		}
	}
	return frame
}

// FrameModule returns the module of a frame ("veth" of
// "veth_xmit+0x10[veth]"), or "" for the kernel image.
func FrameModule(frame string) string {
	if n := len(frame); n > 0 && frame[n-1] == ']' {
		for i := n - 2; i >= 0; i-- {
			if frame[i] == '[' {
				return frame[i+1 : n-1]
			}
		}
	}
	return ""
}

// AppendShortFrame appends the short form of a frame: its function and
// module without the offset.
func AppendShortFrame(dst []byte, frame []byte) []byte {
	i := bytes.IndexByte(frame, '+')
	if i < 0 {
		return append(dst, frame...)
	}
	dst = append(dst, frame[:i]...)
	if j := bytes.IndexByte(frame[i:], '['); j >= 0 {
		dst = append(dst, frame[i+j:]...)
	}
	return dst
}
