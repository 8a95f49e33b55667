package capture

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// asNobodyEnv, when set, makes TestPermissionDenied check NewRecorder's
// error instead of starting a copy of itself as user nobody.
const asNobodyEnv = "PATHCAP_TEST_AS_NOBODY"

func TestPermissionDenied(t *testing.T) {
	if os.Getenv(asNobodyEnv) != "" {
		r, err := NewRecorder(Config{Hooks: []string{"net_dev_queue"}})
		if err == nil {
			r.Close()
			t.Fatal("NewRecorder as nobody: no error")
		}
		if !errors.Is(err, ErrPermission) {
			t.Fatalf("NewRecorder as nobody: %v, want ErrPermission", err)
		}
		t.Logf("NewRecorder as nobody: %v", err)
		return
	}
	requireRoot(t)
	requireBTF(t)

	// The test binary lives in a directory only root can read: copy it to
	// one that nobody can.
	dir, err := os.MkdirTemp("", "pathcap-perm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "capture.test")
	if err := copyFile(bin, os.Args[0]); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "-test.run=^TestPermissionDenied$", "-test.v")
	cmd.Env = append(os.Environ(), asNobodyEnv+"=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	t.Logf("as nobody:\n%s", out)
	if err != nil {
		t.Fatalf("as nobody: %v", err)
	}
}

// copyFile copies the executable src to dst.
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
