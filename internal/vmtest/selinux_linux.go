package vmtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// SELinuxFSDir is where selinuxfs is mounted.
const SELinuxFSDir = "/sys/fs/selinux"

// selinuxMagic is selinuxfs's f_type (SELINUX_MAGIC).
const selinuxMagic = 0xf97cff8c

// SELinux is a mounted selinuxfs, through which a test loads a policy and
// switches between permissive and enforcing mode. It is meant for the VM
// (root, a kernel booted with SELinuxAppend), not for a host whose policy a
// test must not replace.
type SELinux struct {
	dir string
}

// MountSELinux mounts selinuxfs at SELinuxFSDir unless it is mounted there
// already. It fails when the kernel does not run SELinux (boot with
// SELinuxAppend: Debian's kernels start AppArmor otherwise).
func MountSELinux() (*SELinux, error) {
	s := &SELinux{dir: SELinuxFSDir}
	var st unix.Statfs_t
	if err := unix.Statfs(s.dir, &st); err == nil && uint32(st.Type) == selinuxMagic {
		return s, nil
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("selinuxfs: %w", err)
	}
	if err := unix.Mount("selinuxfs", s.dir, "selinuxfs", 0, ""); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("mount selinuxfs on %s: %w (SELinux is not enabled; boot with %q)", s.dir, err, SELinuxAppend)
		}
		return nil, fmt.Errorf("mount selinuxfs on %s: %w", s.dir, err)
	}
	return s, nil
}

// Dir returns the directory selinuxfs is mounted on.
func (s *SELinux) Dir() string { return s.dir }

// LoadPolicy loads a binary policy file (as secilc or checkpolicy write
// it), replacing the loaded policy.
func (s *SELinux) LoadPolicy(path string) error {
	pol, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("load SELinux policy: %w", err)
	}
	// The kernel takes the policy in a single write.
	f, err := os.OpenFile(filepath.Join(s.dir, "load"), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("load SELinux policy %s: %w", path, err)
	}
	n, err := f.Write(pol)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != len(pol) {
		err = fmt.Errorf("short write (%d of %d bytes)", n, len(pol))
	}
	if err != nil {
		return fmt.Errorf("load SELinux policy %s: %w", path, err)
	}
	return nil
}

// SetEnforcing switches SELinux to enforcing (true) or permissive (false)
// mode.
func (s *SELinux) SetEnforcing(on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	if err := os.WriteFile(filepath.Join(s.dir, "enforce"), []byte(v), 0); err != nil {
		return fmt.Errorf("set SELinux enforcing=%s: %w", v, err)
	}
	return nil
}

// Enforcing reads the mode back: true for enforcing, false for permissive.
func (s *SELinux) Enforcing() (bool, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "enforce"))
	if err != nil {
		return false, fmt.Errorf("read SELinux mode: %w", err)
	}
	switch v := strings.TrimSpace(string(b)); v {
	case "0":
		return false, nil
	case "1":
		return true, nil
	default:
		return false, fmt.Errorf("read SELinux mode: unexpected %q", v)
	}
}

// PolicyLoaded reports whether a policy has been loaded (selinuxfs's
// policyvers and class directory are filled in only then).
func (s *SELinux) PolicyLoaded() bool {
	entries, err := os.ReadDir(filepath.Join(s.dir, "class"))
	return err == nil && len(entries) > 0
}

// LSMs returns the kernel's active security modules, in order (from
// securityfs's lsm file, mounting securityfs if needed), e.g.
// ["lockdown" "capability" "yama" "selinux"].
func LSMs() ([]string, error) {
	const dir = "/sys/kernel/security"
	b, err := os.ReadFile(filepath.Join(dir, "lsm"))
	if errors.Is(err, os.ErrNotExist) {
		if merr := unix.Mount("securityfs", dir, "securityfs", 0, ""); merr != nil {
			return nil, fmt.Errorf("mount securityfs: %w", merr)
		}
		b, err = os.ReadFile(filepath.Join(dir, "lsm"))
	}
	if err != nil {
		return nil, fmt.Errorf("read active LSMs: %w", err)
	}
	return strings.Split(strings.TrimSpace(string(b)), ","), nil
}

// EnforcePolicy prepares SELinux in a VM booted with SELinuxAppend: it
// mounts selinuxfs, loads the policy file at path (e.g. InVMPolicyPath) and
// switches to enforcing mode, failing t on error; t's cleanup switches back
// to permissive. Register an audit listener (internal/audit) before calling
// it to see every denial from the first one on.
func EnforcePolicy(t testing.TB, path string) *SELinux {
	t.Helper()
	s, err := MountSELinux()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.LoadPolicy(path); err != nil {
		t.Fatal(err)
	}
	if err := s.SetEnforcing(true); err != nil {
		t.Fatal(err)
	}
	if on, err := s.Enforcing(); err != nil || !on {
		t.Fatalf("SELinux still permissive after switching to enforcing (%v)", err)
	}
	t.Cleanup(func() {
		if err := s.SetEnforcing(false); err != nil {
			t.Error(err)
		}
	})
	return s
}
