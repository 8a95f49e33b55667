package scenarios

import (
	"testing"
	"time"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/vmtest"
)

// TestVMScenarios runs the suite in a 6.12 VM with the kprobe-multi
// backend (TestInVMScenarios), with nft, tc and iputils' ping copied in;
// the kernel's nf_tables, sch_ingress (clsact) and cls_bpf modules are
// among those the VM loads at boot.
func TestVMScenarios(t *testing.T) {
	for _, k := range vmtest.KernelsSeries(t, "6.12") {
		t.Run(k.Series, func(t *testing.T) {
			out := vmtest.RunTestWith(t, k, "github.com/pathcap/pathcap/scenarios", "^TestInVMScenarios$", vmtest.Options{
				Tools:   []string{"nft", "tc", "ping"},
				Timeout: 25 * time.Minute, // the suite runs twice: --bytes all and changed
			})
			t.Logf("in-VM output:\n%s", out)
		})
	}
}

// TestInVMScenarios runs the suite inside the VM that TestVMScenarios
// boots, with kprobe-multi.
func TestInVMScenarios(t *testing.T) {
	if !vmtest.InVM() {
		t.Skip("runs inside a VM (see TestVMScenarios)")
	}
	runSuite(t, capture.BackendKprobeMulti)
}
