package vmtest

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/internal/testenv"
)

// EnvReproDir names the directory of the SELinux reproduction kernel when it
// is not in its default place, ../shared/kernels/5.10-selinux-repro relative
// to the module root.
const EnvReproDir = "PATHCAP_VM_REPRO"

// ReproPolicyName is the file name of the reproduction kernel's SELinux
// policy inside the VM's /work/policy directory, when Repro.Options copied it
// there.
const ReproPolicyName = "repro.pol"

// Repro is the SELinux reproduction kernel: a 5.10.223 kernel built without
// the upstream fix of the SELinux/lockdown audit flood (every
// bpf_probe_read_kernel call is checked against lockdown { confidentiality }
// and, where denied, audited), and a minimal policy that denies only that
// permission.
type Repro struct {
	// Kernel is the kernel directory, in the format of run.sh (no modules:
	// veth, tc BPF and nf_tables are built in).
	Kernel Kernel
	// PolicyDir is the host directory holding ReproPolicyName.
	PolicyDir string
}

// Options returns VM options for booting the reproduction kernel (or, with
// the same policy, a stock Debian kernel) with SELinux permissive and no
// policy loaded: SELinuxAppend on the command line, no modules loaded at
// boot, and PolicyDir copied to /work/policy, so that the in-VM test finds
// the policy at InVMPolicyPath.
func (r Repro) Options() Options {
	return Options{Append: SELinuxAppend, NoModules: true, Dirs: []string{r.PolicyDir}}
}

// InVMPolicyPath is where the policy of Repro.Options is inside the VM.
const InVMPolicyPath = "/work/policy/" + ReproPolicyName

// ReproKernel returns the SELinux reproduction kernel. It skips t when its
// directory is absent (it is not part of the repository), or fails t when
// the CI environment variable is set; it also skips like Kernels without
// qemu, in -short mode and inside a VM.
func ReproKernel(t testing.TB) Repro {
	t.Helper()
	requireVMHost(t)
	dir := os.Getenv(EnvReproDir)
	if dir == "" {
		dir = filepath.Join(moduleRoot(), "..", "shared", "kernels", "5.10-selinux-repro")
	}
	dir = filepath.Clean(dir)
	r := Repro{PolicyDir: filepath.Join(dir, "policy")}
	kdir := filepath.Join(dir, "kernel")
	for _, f := range []string{filepath.Join(kdir, "vmlinuz"), filepath.Join(kdir, "info"), filepath.Join(r.PolicyDir, ReproPolicyName)} {
		if _, err := os.Stat(f); err != nil {
			testenv.SkipOrFail(t, "no SELinux reproduction kernel (set %s to its directory): %v", EnvReproDir, err)
		}
	}
	info, err := readInfo(filepath.Join(kdir, "info"))
	if err != nil {
		testenv.SkipOrFail(t, "SELinux reproduction kernel: %v", err)
	}
	r.Kernel = Kernel{
		Series:  info["series"],
		Release: info["release"],
		Dir:     kdir,
		Vmlinuz: filepath.Join(kdir, "vmlinuz"),
		Package: info["package"],
		Version: info["version"],
	}
	return r
}

// readInfo reads a kernel directory's info file (KEY=VALUE lines).
func readInfo(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return m, nil
}
