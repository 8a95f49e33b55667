// Package vmtest runs Go tests inside qemu virtual machines booted with real
// Debian kernels (5.10, 6.1, 6.12), for the BPF backends the host kernel does
// not allow (kprobe, kprobe-multi, fentry/fexit), and with a 5.10 kernel
// built to reproduce the SELinux/lockdown audit flood (ReproKernel).
//
// The kernels come from scripts/vm/fetch-kernels.sh (downloaded once into a
// cache directory, ${PATHCAP_VM_CACHE:-$HOME/.cache/pathcap-vm}) and the VM
// from scripts/vm/run.sh: a busybox initramfs holding the statically linked
// test binary, iproute2's ip and the kernel's veth and nftables modules,
// booted with software emulation. A host-side test typically reads:
//
//	func TestKprobeBackend(t *testing.T) {
//		for _, k := range vmtest.Kernels(t) {
//			t.Run(k.Series, func(t *testing.T) {
//				vmtest.RunTest(t, k, "github.com/pathcap/pathcap/capture", "^TestInVMKprobe$", nil)
//			})
//		}
//	}
//
// and the in-VM test starts with
//
//	if !vmtest.InVM() {
//		t.Skip("runs inside a VM (see TestKprobeBackend)")
//	}
//
// Inside the VM the test runs as root in /work (holding a copy of the
// package's testdata directory), with PATHCAP_IN_VM=1, PATHCAP_VM_KERNEL set to
// the kernel release, and CI copied from the host, so that
// testenv.SkipOrFail fails there too when the host runs in CI.
//
// VM runs are serialised across processes (a lock file in the cache
// directory), since two software-emulated VMs on two cores only slow each
// other down. A run whose VM hangs (no exit status reported, or the in-VM
// test timing out) is booted a second time, with a log line, unless
// Options.NoRetry is set.
package vmtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/testenv"
)

// Environment variables the harness sets inside the VM.
const (
	// EnvInVM is "1" inside a VM started by this package.
	EnvInVM = "PATHCAP_IN_VM"
	// EnvKernel is the release (uname -r) of the VM's kernel.
	EnvKernel = "PATHCAP_VM_KERNEL"
)

// DefaultTimeout bounds one VM run (boot, test, power-off) unless
// Options.Timeout or the PATHCAP_VM_TIMEOUT environment variable (a Go
// duration) says otherwise.
const DefaultTimeout = 5 * time.Minute

// InVM reports whether the process runs inside a VM started by this package.
func InVM() bool { return os.Getenv(EnvInVM) == "1" }

// Kernel is one kernel fetched for VM tests.
type Kernel struct {
	Series  string // kernel series, e.g. "5.10", "6.1" or "6.12"
	Release string // what uname -r prints, e.g. "6.12.117+deb12-cloud-amd64"
	Dir     string // its cache directory (vmlinuz, config, modules/)
	Vmlinuz string // path of the kernel image
	Package string // Debian package it came from
	Version string // that package's version
}

// String returns the series and release, e.g. "6.1 (6.1.0-56-cloud-amd64)".
func (k Kernel) String() string { return k.Series + " (" + k.Release + ")" }

// Config returns the value of a kernel configuration option ("y", "m", a
// number or quoted string), or "" when it is not set. name includes the
// CONFIG_ prefix.
func (k Kernel) Config(name string) string {
	f, err := os.Open(filepath.Join(k.Dir, "config"))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+"="); ok {
			return v
		}
	}
	return ""
}

// Options adjust a VM run; the zero value gives the defaults.
type Options struct {
	// Env holds environment variables for the test inside the VM.
	Env map[string]string
	// Tools names host commands to install in the VM (with their shared
	// libraries) besides ip, e.g. "nft".
	Tools []string
	// Timeout bounds the whole VM run; zero means DefaultTimeout. The test
	// binary gets -test.timeout a little shorter, so that a hung test
	// prints its goroutines before qemu is killed.
	Timeout time.Duration
	// MemoryMiB is the VM's memory; zero means 1024.
	MemoryMiB int
	// Append is added to the kernel command line (run.sh's
	// PATHCAP_VM_APPEND), e.g. SELinuxAppend.
	Append string
	// Modules names the kernel modules to load at boot (with their
	// dependencies); empty loads every module the kernel directory keeps.
	// The others still load on demand.
	Modules []string
	// NoModules loads no module at boot (run.sh -M none); Modules is then
	// ignored.
	NoModules bool
	// Dirs are host directories copied into the VM's /work, each as
	// /work/BASENAME, besides the package's testdata.
	Dirs []string
	// NoRetry turns off the automatic second attempt of a run whose VM
	// hung (see RunTestWith).
	NoRetry bool
}

// SELinuxAppend is the kernel command line that makes a Debian kernel (or
// the reproduction kernel) start SELinux, permissive and without a policy,
// instead of AppArmor. Use it as Options.Append, then LoadPolicy and
// SetEnforcing inside the VM.
const SELinuxAppend = "security=selinux selinux=1 enforcing=0"

// Kernels returns the kernels available for VM tests, fetching them on first
// use in the process (scripts/vm/fetch-kernels.sh, which needs apt; it runs
// apt-get update only as root). It skips t with the reason, or fails it when
// the CI environment variable is set, if qemu or the kernels cannot be had,
// and skips it in -short mode and inside a VM.
func Kernels(t testing.TB) []Kernel {
	t.Helper()
	requireVMHost(t)
	fetch.once.Do(func() { fetch.kernels, fetch.log, fetch.err = fetchKernels(moduleRoot()) })
	if fetch.err != nil {
		testenv.SkipOrFail(t, "no kernels for VM tests: %v\n%s", fetch.err, fetch.log)
	}
	return slices.Clone(fetch.kernels)
}

// requireVMHost skips t inside a VM, in -short mode and off linux/amd64, and
// skips (or fails, when CI is set) it without qemu, busybox or cpio.
func requireVMHost(t testing.TB) {
	t.Helper()
	if InVM() {
		t.Skip("already inside a VM")
	}
	if testing.Short() {
		t.Skip("VM tests are skipped in -short mode")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("VM tests need linux/amd64, not %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	for _, tool := range []string{"qemu-system-x86_64", "busybox", "cpio"} {
		testenv.RequireTool(t, tool)
	}
}

// KernelsSeries is Kernels restricted to the named series (e.g. "6.1",
// "6.12"), in the order given. It skips t, or fails it when CI is set, when
// one of them is not available.
func KernelsSeries(t testing.TB, series ...string) []Kernel {
	t.Helper()
	all := Kernels(t)
	var ks []Kernel
	for _, s := range series {
		i := slices.IndexFunc(all, func(k Kernel) bool { return k.Series == s })
		if i < 0 {
			testenv.SkipOrFail(t, "no kernel of series %s for VM tests (have %v)", s, all)
		}
		ks = append(ks, all[i])
	}
	return ks
}

var fetch struct {
	once    sync.Once
	kernels []Kernel
	log     string
	err     error
}

// fetchKernels runs the fetch script and parses its "kernel" lines.
func fetchKernels(root string) ([]Kernel, string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "vm", "fetch-kernels.sh"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var ks []Kernel
	for line := range strings.Lines(stdout.String()) {
		f := strings.Split(strings.TrimRight(line, "\n"), "\t")
		if len(f) != 6 || f[0] != "kernel" {
			continue
		}
		ks = append(ks, Kernel{
			Series: f[1], Release: f[2], Dir: filepath.Dir(f[3]), Vmlinuz: f[3],
			Package: f[4], Version: f[5],
		})
	}
	if runErr != nil {
		return nil, stderr.String(), fmt.Errorf("fetch-kernels.sh: %w", runErr)
	}
	if len(ks) == 0 {
		return nil, stderr.String(), errors.New("fetch-kernels.sh listed no kernel")
	}
	return ks, stderr.String(), nil
}

// moduleRoot is the repository's top directory, where go.mod is.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// RunTest builds the test binary of package pkg (an import path or a
// directory relative to the module root, with CGO_ENABLED=0; once per
// process), boots it on kernel k and runs the tests matching runRegexp with
// -test.v. env adds environment variables inside the VM. It returns the
// in-VM test output and fails t, with that output, if the tests fail, the VM
// does not finish, or runRegexp matches no test.
func RunTest(t testing.TB, k Kernel, pkg, runRegexp string, env map[string]string) string {
	t.Helper()
	return RunTestWith(t, k, pkg, runRegexp, Options{Env: env})
}

// RunTestWith is RunTest with Options.
func RunTestWith(t testing.TB, k Kernel, pkg, runRegexp string, opts Options) string {
	t.Helper()
	bin, dir, err := buildTest(pkg)
	if err != nil {
		t.Fatal(err)
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
		if s := os.Getenv("PATHCAP_VM_TIMEOUT"); s != "" {
			if d, err := time.ParseDuration(s); err == nil && d > 0 {
				timeout = d
			}
		}
	}
	// Leave the in-VM test time to report a timeout before qemu is killed.
	testTimeout := max(timeout-timeout/5, timeout-30*time.Second)

	args := []string{"-t", fmt.Sprint(int(timeout.Seconds() + 0.5))}
	if opts.MemoryMiB > 0 {
		args = append(args, "-m", fmt.Sprint(opts.MemoryMiB))
	}
	if ci := os.Getenv("CI"); ci != "" {
		args = append(args, "-e", "CI="+ci)
	}
	for _, name := range slices.Sorted(maps.Keys(opts.Env)) {
		args = append(args, "-e", name+"="+opts.Env[name])
	}
	for _, tool := range opts.Tools {
		args = append(args, "-x", tool)
	}
	if fi, err := os.Stat(filepath.Join(dir, "testdata")); err == nil && fi.IsDir() {
		args = append(args, "-d", filepath.Join(dir, "testdata"))
	}
	for _, d := range opts.Dirs {
		args = append(args, "-d", d)
	}
	switch {
	case opts.NoModules:
		args = append(args, "-M", "none")
	case len(opts.Modules) > 0:
		args = append(args, "-M", strings.Join(opts.Modules, " "))
	}
	args = append(args, k.Dir, bin,
		"-test.run", runRegexp, "-test.v", "-test.timeout", testTimeout.String())

	// Up to three boots: software emulation now and then panics a kernel
	// while it boots (an int3 Oops in text patching under multi-threaded
	// TCG, seen with 6.12 on a loaded host) or hangs one.
	attempts := 3
	if opts.NoRetry {
		attempts = 1
	}
	var (
		out     string
		elapsed time.Duration
	)
	for attempt := 1; ; attempt++ {
		var stderr string
		out, stderr, elapsed, err = runVM(args, opts.Append)
		if err == nil {
			break
		}
		hung := vmHung(err, out)
		if hung == "" || attempt >= attempts {
			if hung != "" {
				t.Logf("%s on %s: %s again on attempt %d; giving up", pkg, k, hung, attempt)
			}
			// The failed tests' own lines once more at the end: a CI log
			// that keeps only its last lines still says what failed.
			t.Fatalf("%s on %s (%v): %v\n%s%s%s", pkg, k, elapsed.Round(100*time.Millisecond), err, out, stderr, failedSections(out))
		}
		// Software emulation occasionally hangs a 5.10 kernel (soft
		// lockups while BPF programs attach); one more boot usually
		// passes.
		t.Logf("%s on %s: %s after %v; retrying (attempt %d of %d). Console of the failed attempt:\n%s%s",
			pkg, k, hung, elapsed.Round(100*time.Millisecond), attempt+1, attempts, out, lastLines(stderr, 40))
	}
	if noTests.MatchString(out) {
		t.Fatalf("%s on %s: -test.run %q matched no test\n%s", pkg, k, runRegexp, out)
	}
	t.Logf("%s on %s: passed in %v (boot, test, power-off)", pkg, k, elapsed.Round(100*time.Millisecond))
	for _, m := range skipped.FindAllString(out, -1) {
		t.Logf("in VM: %s", strings.TrimSpace(m))
	}
	return out
}

var (
	noTests = regexp.MustCompile(`(?m)^testing: warning: no tests to run$`)
	skipped = regexp.MustCompile(`(?m)^\s*--- SKIP: .*$`)
	// testTimedOut is how a Go test binary reports -test.timeout.
	testTimedOut = regexp.MustCompile(`(?m)^panic: test timed out after `)
)

// Exit statuses of run.sh when the VM did not report one.
const (
	exitTimeout  = 124 // qemu killed after run.sh -t
	exitNoStatus = 125 // the VM ended (panic, init failure) without one
)

// runVM runs scripts/vm/run.sh with args under the VM lock and returns its
// stdout (the program's output), its stderr, how long it took and its
// error.
func runVM(args []string, appendCmdline string) (stdout, stderr string, elapsed time.Duration, err error) {
	cache, err := cacheDir()
	if err != nil {
		return "", "", 0, err
	}
	unlock, err := lockVM(cache)
	if err != nil {
		return "", "", 0, err
	}
	defer unlock()
	var outBuf, errBuf bytes.Buffer
	cmd := exec.Command("bash", append([]string{filepath.Join(moduleRoot(), "scripts", "vm", "run.sh")}, args...)...)
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	cmd.Env = os.Environ()
	if appendCmdline != "" {
		cmd.Env = append(cmd.Env, "PATHCAP_VM_APPEND="+appendCmdline)
	}
	start := time.Now()
	err = cmd.Run()
	return outBuf.String(), errBuf.String(), time.Since(start), err
}

// vmHung says why a failed VM run looks like a hung VM rather than a failed
// test ("" when it does not): qemu timed out without the end marker, the VM
// ended without reporting a status, or the test binary hit -test.timeout.
func vmHung(err error, out string) string {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return ""
	}
	switch ee.ExitCode() {
	case exitTimeout:
		return "VM timed out (no end marker)"
	case exitNoStatus:
		return "VM ended without reporting an exit status"
	}
	if testTimedOut.MatchString(out) {
		return "the in-VM test timed out"
	}
	return ""
}

// lastLines returns the last n lines of s, each ending in a newline.
// failedSections returns, from the verbose output of a test binary, the
// lines of each failed test that has no failed subtest (at most 40 lines
// each, at most 8 tests), under a heading; "" when none failed.
func failedSections(out string) string {
	lines := strings.Split(out, "\n")
	sections := map[string][]string{}
	var failed []string
	cur := ""
	for _, l := range lines {
		trimmed := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(trimmed, "=== RUN ") || strings.HasPrefix(trimmed, "=== CONT "):
			cur = strings.TrimSpace(trimmed[8:])
			continue
		case strings.HasPrefix(trimmed, "--- FAIL: "):
			name, _, _ := strings.Cut(trimmed[len("--- FAIL: "):], " ")
			failed = append(failed, name)
			cur = ""
			continue
		case strings.HasPrefix(trimmed, "--- "):
			cur = ""
			continue
		}
		if cur != "" {
			sections[cur] = append(sections[cur], l)
		}
	}
	var b strings.Builder
	shown := 0
	for _, name := range failed {
		leaf := true
		for _, other := range failed {
			if strings.HasPrefix(other, name+"/") {
				leaf = false
				break
			}
		}
		if !leaf {
			continue
		}
		if shown++; shown > 8 {
			fmt.Fprintf(&b, "(more failed tests above)\n")
			break
		}
		if b.Len() == 0 {
			b.WriteString("\nthe failed tests' lines again:\n")
		}
		sec := sections[name]
		fmt.Fprintf(&b, "--- FAIL: %s\n", name)
		if len(sec) > 40 {
			fmt.Fprintf(&b, "(the first 40 of %d lines)\n", len(sec))
			sec = sec[:40]
		}
		for _, l := range sec {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}

// builds caches test binaries by package, for the life of the process.
var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]*build
}

type build struct {
	once     sync.Once
	bin, dir string
	err      error
}

// buildTest returns the path of pkg's static test binary and the package's
// source directory.
func buildTest(pkg string) (bin, dir string, err error) {
	builds.mu.Lock()
	if builds.bins == nil {
		builds.bins = make(map[string]*build)
	}
	b := builds.bins[pkg]
	if b == nil {
		b = new(build)
		builds.bins[pkg] = b
	}
	builds.mu.Unlock()
	b.once.Do(func() { b.bin, b.dir, b.err = buildTestOnce(pkg) })
	return b.bin, b.dir, b.err
}

func buildTestOnce(pkg string) (bin, dir string, err error) {
	root := moduleRoot()
	list := exec.Command("go", "list", "-f", "{{.Dir}}", pkg)
	list.Dir = root
	out, err := list.Output()
	if err != nil {
		return "", "", fmt.Errorf("go list %s: %w\n%s", pkg, err, exitStderr(err))
	}
	dir = strings.TrimSpace(string(out))

	// Test binaries live in the cache directory, named after the package
	// and this process: nothing else uses them, and the next process's
	// buildTest replaces its own.
	cache, err := cacheDir()
	if err != nil {
		return "", "", err
	}
	bins := filepath.Join(cache, "testbin")
	if err := os.MkdirAll(bins, 0o755); err != nil {
		return "", "", err
	}
	pruneTestBinaries(bins)
	name := strings.NewReplacer("/", "_", ".", "_").Replace(strings.TrimPrefix(pkg, "./"))
	bin = filepath.Join(bins, fmt.Sprintf("%s.%d.test", name, os.Getpid()))
	cmd := exec.Command("go", "test", "-c", "-o", bin, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build %s for the VM: %w\n%s", pkg, err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		return "", "", fmt.Errorf("build %s for the VM: no test binary (no test files?): %w", pkg, err)
	}
	return bin, dir, nil
}

// pruneTestBinaries removes test binaries left by processes that no longer
// run.
func pruneTestBinaries(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		var pid int
		parts := strings.Split(e.Name(), ".")
		if len(parts) < 3 || parts[len(parts)-1] != "test" {
			continue
		}
		if _, err := fmt.Sscan(parts[len(parts)-2], &pid); err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func exitStderr(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}

// cacheDir is the fetch script's default cache directory.
func cacheDir() (string, error) {
	if d := os.Getenv("PATHCAP_VM_CACHE"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("VM cache directory: %w", err)
	}
	return filepath.Join(home, ".cache", "pathcap-vm"), nil
}

// lockVM takes a lock shared by every process running VMs with the cache
// directory cache, and returns its release.
func lockVM(cache string) (func(), error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, fmt.Errorf("VM lock: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(cache, ".vm.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("VM lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("VM lock: %w", err)
	}
	return func() { f.Close() }, nil
}
