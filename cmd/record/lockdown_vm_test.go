package main

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/vmtest"
)

// TestVMLockdown boots the 6.12 kernel with lockdown=confidentiality and
// runs TestInVMLockdown there: lockdown cannot be raised on the host
// without a reboot, and cannot be lowered at all.
func TestVMLockdown(t *testing.T) {
	for _, k := range vmtest.KernelsSeries(t, "6.12") {
		out := vmtest.RunTestWith(t, k, "github.com/pathcap/pathcap/cmd/record", "^TestInVMLockdown$", vmtest.Options{
			Append: "lockdown=confidentiality",
		})
		t.Logf("%s", out)
	}
}

// TestInVMLockdown checks the preflight against the kernel's own lockdown
// state and the kernel's own refusal: under confidentiality the preflight
// refuses --probe-read on with exit status 4 before anything is loaded,
// the kernel does refuse a program that calls bpf_probe_read_kernel
// (so the refusal is right), and record still records without it.
func TestInVMLockdown(t *testing.T) {
	if !vmtest.InVM() {
		t.Skip("runs inside a VM, from TestVMLockdown")
	}
	const file = "/sys/kernel/security/lockdown"
	if _, err := os.Stat(file); err != nil {
		if err := unix.Mount("securityfs", "/sys/kernel/security", "securityfs", 0, ""); err != nil {
			t.Fatalf("mount securityfs: %v", err)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	state := strings.TrimSpace(string(b))
	t.Logf("%s: %s", file, state)
	if lockdownMode(state) != "confidentiality" {
		t.Fatalf("lockdown is %q, want [confidentiality] (booted with lockdown=confidentiality)", state)
	}

	// The preflight refuses what needs bpf_probe_read_kernel.
	for _, o := range []options{
		{probeReads: capture.ProbeReadsOn, backend: capture.BackendTracepoint},
		{probeReads: capture.ProbeReadsAuto, backend: capture.BackendKprobe},
	} {
		err := checkLockdown(state, o)
		var ee exitError
		if err == nil || !errors.As(err, &ee) || ee.status != exitKernel {
			t.Errorf("--probe-read %s --backend %s: preflight says %v, want exit status %d", o.probeReads, o.backend, err, exitKernel)
		}
	}
	if err := checkLockdown(state, options{probeReads: capture.ProbeReadsAuto, backend: capture.BackendAuto}); err != nil {
		t.Errorf("--probe-read auto --backend auto: preflight says %v, want nothing", err)
	}

	// The kernel agrees: with probe reads forced, it refuses the programs.
	if rec, err := capture.NewRecorder(capture.Config{Backend: capture.BackendTracepoint, ProbeReads: capture.ProbeReadsOn, Hooks: []string{"net_dev_queue"}}); err == nil {
		rec.Close()
		t.Errorf("under lockdown=confidentiality the kernel loaded programs that call bpf_probe_read_kernel")
	} else {
		t.Logf("--probe-read on, the kernel: %v", err)
	}
	// And record works without them.
	rec, err := capture.NewRecorder(capture.Config{Backend: capture.BackendTracepoint, Hooks: []string{"net_dev_queue"}})
	if err != nil {
		t.Fatalf("--probe-read auto under lockdown: %v", err)
	}
	for _, n := range rec.Notes() {
		t.Logf("note: %s", n)
	}
	rec.Close()
}
