package wireshark_test

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/pathcap/pathcap/internal/testenv"
)

// chrootEnv names the environment variable that makes the tests run
// tshark inside a chroot (the trixie chroot with tshark 4.4 that
// scripts/wireshark/trixie-chroot.sh makes; TestWireshark44 sets it for a
// second run of this package's tests) instead of the host's tshark.
const chrootEnv = "PATHCAP_TSHARK_CHROOT"

// chrootUID is the user tshark runs as in the chroot (nobody): tshark 4.4
// ignores Lua scripts when it runs as root.
const chrootUID = 65534

// requireTshark skips (or fails in CI) when there is no tshark to run:
// the host's, or the chroot's when chrootEnv is set.
func requireTshark(t *testing.T) {
	t.Helper()
	if root := os.Getenv(chrootEnv); root != "" {
		if _, err := os.Stat(filepath.Join(root, "usr/bin/tshark")); err != nil {
			t.Fatalf("%s=%s: %v", chrootEnv, root, err)
		}
		return
	}
	testenv.RequireTool(t, "tshark")
}

// runTshark runs tshark with args and HOME (and XDG_CONFIG_HOME) at home,
// so that it sees the personal folders there and nothing of the real
// user's, and returns its standard output and standard error.
//
// When chrootEnv is set, tshark runs in that chroot as the user nobody:
// home and every argument that is an existing file (also after
// "lua_script:") are copied into a new directory inside the chroot, and the
// arguments name the copies.
func runTshark(t *testing.T, home string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	requireTshark(t)
	var cmd *exec.Cmd
	if root := os.Getenv(chrootEnv); root != "" {
		cmd = chrootCommand(t, root, home, args)
	} else {
		bin := testenv.RequireTool(t, "tshark")
		cmd = exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// chrootCommand returns the command that runs tshark with args in the
// chroot root as nobody, with a copy of home and of the files args name.
func chrootCommand(t *testing.T, root, home string, args []string) *exec.Cmd {
	t.Helper()
	stage, err := os.MkdirTemp(filepath.Join(root, "tmp"), "pathcap-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(stage) })
	inner := func(p string) string { return "/" + strings.TrimPrefix(p, root+"/") }
	mapped := make([]string, len(args))
	for i, a := range args {
		prefix, p := "", a
		if s, ok := strings.CutPrefix(a, "lua_script:"); ok {
			prefix, p = "lua_script:", s
		}
		if fi, err := os.Stat(p); err == nil && filepath.IsAbs(p) && fi.Mode().IsRegular() {
			dst := filepath.Join(stage, "files", strconv.Itoa(i), filepath.Base(p))
			copyFile(t, p, dst)
			mapped[i] = prefix + inner(dst)
			continue
		}
		mapped[i] = a
	}
	innerHome := filepath.Join(stage, "home")
	if err := os.CopyFS(innerHome, os.DirFS(home)); err != nil {
		t.Fatalf("copy %s into the chroot: %v", home, err)
	}
	// Everything staged belongs to nobody, who may write into its home.
	err = filepath.WalkDir(stage, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, chrootUID, chrootUID)
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/tshark", mapped...)
	cmd.Dir = "/"
	h := inner(innerHome)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=" + h, "XDG_CONFIG_HOME=" + h + "/.config"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     root,
		Credential: &syscall.Credential{Uid: chrootUID, Gid: chrootUID, Groups: []uint32{}},
	}
	return cmd
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

var (
	versionOnce  sync.Once
	versionMajor int
	versionMinor int
	versionErr   error
)

// tsharkVersion returns the major and minor version of the tshark the
// tests run.
func tsharkVersion(t *testing.T) (major, minor int) {
	t.Helper()
	versionOnce.Do(func() {
		out, stderr, err := runTshark(t, t.TempDir(), "-v")
		if err != nil {
			versionErr = fmt.Errorf("tshark -v: %v\n%s", err, stderr)
			return
		}
		m := regexp.MustCompile(`^TShark \(Wireshark\) (\d+)\.(\d+)\.`).FindStringSubmatch(out)
		if m == nil {
			versionErr = fmt.Errorf("tshark -v: no version in %q", strings.SplitN(out, "\n", 2)[0])
			return
		}
		versionMajor, _ = strconv.Atoi(m[1])
		versionMinor, _ = strconv.Atoi(m[2])
	})
	if versionErr != nil {
		t.Fatal(versionErr)
	}
	return versionMajor, versionMinor
}

// boolFields are the dissector's boolean fields, which tshark 4.2 and
// later print as True and False in -T fields output (4.0: 1 and 0).
var boolFields = map[string]bool{"pathcap.stack.lost": true}

// normalizeField turns the -T fields output of field name of tshark 4.2
// and later into what tshark 4.0 prints: 4.2 doubles backslashes (4.0
// writes them as they are; both write a tab as \t and other control bytes
// as escapes) and prints booleans as True and False (4.0: 1 and 0). It
// returns v unchanged for earlier versions.
func normalizeField(t *testing.T, name, v string) string {
	t.Helper()
	if major, minor := tsharkVersion(t); major < 4 || major == 4 && minor < 2 {
		return v
	}
	if boolFields[name] && v != "" {
		vals := strings.Split(v, ",")
		for i, b := range vals {
			switch b {
			case "True":
				vals[i] = "1"
			case "False":
				vals[i] = "0"
			default:
				t.Fatalf("%s: %q is not True or False", name, b)
			}
		}
		return strings.Join(vals, ",")
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		b.WriteByte(v[i])
		if v[i] == '\\' && i+1 < len(v) && v[i+1] == '\\' {
			i++ // \\ is one backslash
		}
	}
	return b.String()
}
