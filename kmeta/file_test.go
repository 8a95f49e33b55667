package kmeta_test

import (
	"errors"
	"testing"

	"github.com/pathcap/pathcap/kmeta"
)

func TestFileCommentRoundTrip(t *testing.T) {
	in := kmeta.FileComment{Recording: "5f0c9a3e2b7d4e61", Part: 12}
	b := kmeta.AppendFileComment(nil, &in)
	if got, want := string(b), "pathcap-file/1 recording=5f0c9a3e2b7d4e61 part=12"; got != want {
		t.Fatalf("AppendFileComment = %q, want %q", got, want)
	}
	var out kmeta.FileComment
	if err := kmeta.ParseFileComment(b, &out); err != nil || out != in {
		t.Fatalf("ParseFileComment(%q) = %+v, %v; want %+v", b, out, err, in)
	}
	in.BytesChanged = true
	b = kmeta.AppendFileComment(nil, &in)
	if got, want := string(b), "pathcap-file/1 recording=5f0c9a3e2b7d4e61 part=12 bytes=changed"; got != want {
		t.Fatalf("AppendFileComment = %q, want %q", got, want)
	}
	if err := kmeta.ParseFileComment(b, &out); err != nil || out != in {
		t.Fatalf("ParseFileComment(%q) = %+v, %v; want %+v", b, out, err, in)
	}
	// Unknown keys are ignored.
	if err := kmeta.ParseFileComment([]byte("pathcap-file/1 part=2 new=x recording=ab"), &out); err != nil || out.Recording != "ab" || out.Part != 2 {
		t.Errorf("with an unknown key: %+v, %v", out, err)
	}
}

func TestFileCommentErrors(t *testing.T) {
	var c kmeta.FileComment
	if err := kmeta.ParseFileComment([]byte("pathcap recording on host a: record"), &c); !errors.Is(err, kmeta.ErrNotFile) {
		t.Errorf("other comment: %v, want ErrNotFile", err)
	}
	for _, s := range []string{
		"pathcap-file/",
		"pathcap-file/2 recording=a part=1",
		"pathcap-file/1 recording=a",
		"pathcap-file/1 part=1",
		"pathcap-file/1 recording=a part=0",
		"pathcap-file/1 recording=a part=x",
		"pathcap-file/1 recording=a  part=1",
	} {
		var se *kmeta.SyntaxError
		if err := kmeta.ParseFileComment([]byte(s), &c); !errors.As(err, &se) {
			t.Errorf("%q: %v, want a *SyntaxError", s, err)
		}
	}
}
