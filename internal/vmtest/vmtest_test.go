package vmtest

import (
	"os/exec"
	"testing"
)

func TestVMHung(t *testing.T) {
	exit := func(code string) error { return exec.Command("sh", "-c", "exit "+code).Run() }
	for _, c := range []struct {
		name string
		err  error
		out  string
		hung bool
	}{
		{"qemu timeout", exit("124"), "", true},
		{"no status", exit("125"), "", true},
		{"test timeout", exit("2"), "=== RUN   TestX\npanic: test timed out after 4m0s\n", true},
		{"test failure", exit("1"), "--- FAIL: TestX (0.01s)\nFAIL\n", false},
		{"not an exit", exec.ErrNotFound, "", false},
	} {
		got := vmHung(c.err, c.out)
		if (got != "") != c.hung {
			t.Errorf("%s: vmHung = %q, want hung=%v", c.name, got, c.hung)
		}
	}
}

func TestLastLines(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a\nb\nc\n", "b\nc\n"},
		{"a\nb\nc", "b\nc\n"},
		{"c", "c\n"},
		{"", ""},
	} {
		if got := lastLines(c.in, 2); got != c.want {
			t.Errorf("lastLines(%q, 2) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestFailedSections(t *testing.T) {
	out := `=== RUN   TestA
=== RUN   TestA/ok
    a_test.go:1: fine
=== RUN   TestA/bad
    a_test.go:2: got 1, want 2
    a_test.go:3: the packets: x
--- FAIL: TestA (0.10s)
    --- PASS: TestA/ok (0.00s)
    --- FAIL: TestA/bad (0.11s)
FAIL
`
	got := failedSections(out)
	want := "\nthe failed tests' lines again:\n--- FAIL: TestA/bad\n    a_test.go:2: got 1, want 2\n    a_test.go:3: the packets: x\n"
	if got != want {
		t.Errorf("failedSections = %q, want %q", got, want)
	}
	if got := failedSections("=== RUN   TestA\n--- PASS: TestA (0.00s)\n"); got != "" {
		t.Errorf("nothing failed: %q", got)
	}
}
