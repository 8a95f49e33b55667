package capture

import (
	"os"
	"testing"
)

// requireRoot skips t when the process is not root, or fails it when the
// CI environment variable is set: CI runs as root, so a skip there would
// hide a broken setup.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		tb.Fatal("test needs root, and CI is set: refusing to skip")
	}
	tb.Skip("test needs root (BPF, network namespaces); run as root or set CI to make this a failure")
}

// requireBTF skips t when the kernel's BTF is not readable, or fails it
// when CI is set.
func requireBTF(tb testing.TB) {
	tb.Helper()
	f, err := os.Open("/sys/kernel/btf/vmlinux")
	if err == nil {
		f.Close()
		return
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("kernel BTF not readable, and CI is set: %v", err)
	}
	tb.Skipf("kernel BTF not readable: %v", err)
}
