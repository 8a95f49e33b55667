package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/internal/testenv"
)

// TestRecordCheck runs `record check` as root: exit 0, every line of the
// report present, and the plan.
func TestRecordCheck(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.BuildCommand(t, "record")
	out, err := exec.Command(bin, "check").CombinedOutput()
	if err != nil {
		t.Fatalf("record check: %v\n%s", err, out)
	}
	for _, want := range []string{"kernel ", "privileges ", "BTF ", "ring buffer ", "tracepoints ", "backend kprobe-multi ", "backend kprobe ",
		"backend fentry ", "--trace-tc, --trace-xdp ", "nftables chains (--netfilter) ", "bpf_get_current_task_btf (5.11) ", "bpf_get_attach_cookie (5.15) ", "drop reasons at kfree_skb (5.17) ",
		"SELinux ", "bpf_probe_read_kernel ", "audit flood ", "record will: attach "} {
		if !strings.Contains(string(out), "\n"+want) && !strings.HasPrefix(string(out), want) {
			t.Errorf("record check lacks %q:\n%s", want, out)
		}
	}
	t.Logf("\n%s", out)
}

// TestRecordCheckUnprivileged: without the privileges to load programs,
// check still reports, and exits 1 because nothing can be recorded.
func TestRecordCheckUnprivileged(t *testing.T) {
	testenv.RequireRoot(t)
	setpriv := testenv.RequireTool(t, "setpriv")
	bin := testenv.BuildCommand(t, "record")
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", bin, "check")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("record check without privileges: %v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "record will: not start") || !strings.Contains(string(out), "privileges ") {
		t.Errorf("no verdict in:\n%s", out)
	}
	t.Logf("\n%s", out)
}
