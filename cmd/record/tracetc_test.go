package main_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/testenv"
)

// TestTraceProgramsRefusedHere runs record --trace-tc and --trace-xdp on a
// host whose kernel refuses fentry programs (this project's build hosts:
// EPERM): each is refused with exit status 4 and one line that says why,
// before the output is created and before anything is attached (strace
// sees no attach call: no BPF_LINK_CREATE, no BPF_RAW_TRACEPOINT_OPEN).
func TestTraceProgramsRefusedHere(t *testing.T) {
	testenv.RequireRoot(t)
	if err := capture.CheckProgramTracing(); err == nil {
		t.Skip("this kernel allows fentry programs: nothing to refuse (the VM tests trace tc programs)")
	} else if !errors.Is(err, unix.EPERM) {
		t.Fatalf("probe fentry: %v, want EPERM on this host", err)
	}
	strace := testenv.RequireTool(t, "strace")
	bin := testenv.BuildCommand(t, "record")
	for _, flag := range []string{"--trace-tc", "--trace-xdp"} {
		t.Run(flag, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "rec.pcapng")
			trace := filepath.Join(t.TempDir(), "strace.txt")
			status, msg := runRecordStatus(t, exec.Command(strace, "-f", "-qq", "-e", "trace=bpf", "-o", trace, bin, flag, "-w", out))
			t.Logf("exit status %d:\n%s", status, msg)
			if status != 4 {
				t.Errorf("exit status %d, want 4", status)
			}
			if n := strings.Count(strings.TrimSpace(msg), "\n"); n != 0 {
				t.Errorf("the message has %d lines, want 1", n+1)
			}
			for _, s := range []string{"record: " + flag + ": the kernel refuses to load fentry programs (EPERM", "kfree_skb with reason TC_INGRESS"} {
				if !strings.Contains(msg, s) {
					t.Errorf("the message lacks %q", s)
				}
			}
			if _, err := os.Lstat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: %v, want no output file", out, err)
			}
			calls, err := os.ReadFile(trace)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []string{"BPF_LINK_CREATE", "BPF_RAW_TRACEPOINT_OPEN", "BPF_PROG_ATTACH"} {
				if strings.Contains(string(calls), c) {
					t.Errorf("record called %s before it refused:\n%s", c, calls)
				}
			}
			t.Logf("bpf calls: %d BPF_PROG_LOAD (the probes), %d BPF_MAP_CREATE", strings.Count(string(calls), "BPF_PROG_LOAD"), strings.Count(string(calls), "BPF_MAP_CREATE"))
		})
	}
}
