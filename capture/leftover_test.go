package capture

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// bpfDescriptors returns this process's open BPF descriptors, one
// "fd N: KIND, ID" line each (from /proc/self/fd and fdinfo).
func bpfDescriptors(t *testing.T) []string {
	t.Helper()
	fds, err := filepath.Glob("/proc/self/fd/*")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fd := range fds {
		target, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(target, "anon_inode:") {
			continue
		}
		kind := strings.TrimPrefix(target, "anon_inode:")
		if !strings.Contains(kind, "bpf") && kind != "btf" {
			continue
		}
		info, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", filepath.Base(fd)))
		if err != nil {
			continue
		}
		var id string
		for _, line := range strings.Split(string(info), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "_id") && k != "mnt_id" {
				id = strings.TrimSpace(k) + " " + strings.TrimSpace(v)
				break
			}
		}
		out = append(out, fmt.Sprintf("fd %s: %s, %s", filepath.Base(fd), kind, id))
	}
	slices.Sort(out)
	return out
}

// TestNewRecorderClosesEverything checks that the recorder releases every
// BPF descriptor it opened: after Close, and when NewRecorder fails half
// way, here because the fentry backend is refused after the tracepoints
// were attached (on hosts that allow fentry there is no failure to
// provoke). A first call warms what cilium/ebpf caches for the process.
func TestNewRecorderClosesEverything(t *testing.T) {
	requireRoot(t)
	requireBTF(t)
	t.Run("Close", func(t *testing.T) {
		cfg := Config{Hooks: []string{"net_dev_queue"}, Backend: BackendTracepoint}
		r, err := NewRecorder(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		before := bpfDescriptors(t)
		r, err = NewRecorder(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if during := bpfDescriptors(t); len(during) <= len(before) {
			t.Fatalf("a recorder holds no BPF descriptor: %d before, %d with it", len(before), len(during))
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if after := bpfDescriptors(t); !slices.Equal(after, before) {
			t.Errorf("after Close, BPF descriptors\n%s\nwere open, want\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
		}
	})
	t.Run("failure half way", func(t *testing.T) {
		cfg := Config{Hooks: []string{"net_dev_queue"}, Backend: BackendFentry, Functions: "^ip_rcv$"}
		if r, err := NewRecorder(cfg); err == nil {
			r.Close()
			t.Skip("the fentry backend attaches on this kernel: no failure to provoke")
		}
		before := bpfDescriptors(t)
		_, err := NewRecorder(cfg)
		if err == nil {
			t.Fatal("NewRecorder succeeded the second time")
		}
		t.Logf("NewRecorder: %v", err)
		if after := bpfDescriptors(t); !slices.Equal(after, before) {
			t.Errorf("after NewRecorder failed, BPF descriptors\n%s\nwere open, want\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
		}
	})
}
