// Package wsinstall installs pathcap's Wireshark files for the current
// user: the pathcap configuration profile, the Lua post-dissector and, for
// record, the extcap entry through which Wireshark lists record as a
// capture interface. It is shared by "record wireshark-install" and
// "analyze wireshark-install" (the latter without the extcap entry, for a
// machine that only reads recordings).
//
// The folders are Wireshark's personal ones. When tshark is installed,
// "tshark -G folders" names them, as the installed Wireshark sees them;
// otherwise Wireshark's documented defaults for the system are used.
package wsinstall

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pathcap/pathcap/wireshark"
)

// ExtcapName is the file name of the extcap entry in the extcap folder.
const ExtcapName = "pathcap"

// Folders are the personal Wireshark folders the files go into.
type Folders struct {
	// Config is the personal configuration folder; the profile goes into
	// its profiles/pathcap.
	Config string
	// Plugins is the personal Lua plugins folder.
	Plugins string
	// Extcap is the personal extcap folder.
	Extcap string
	// From says where the folders come from, e.g. "tshark -G folders
	// (Wireshark 4.0.17)".
	From string
	// Version is the Wireshark version tshark reported, "" if unknown.
	Version string
	// ExtcapUnread is set when the installed Wireshark is known not to
	// read a personal extcap folder (before 4.1): it reads only its
	// global one, or WIRESHARK_EXTCAP_DIR in its place.
	ExtcapUnread bool
	// GlobalExtcap is the installed Wireshark's global extcap folder, ""
	// if unknown.
	GlobalExtcap string
}

// ProfileDir returns the folder of the pathcap profile.
func (f Folders) ProfileDir() string {
	return filepath.Join(f.Config, "profiles", wireshark.ProfileName)
}

// DefaultFolders returns Wireshark's personal folders on the system goos
// ("linux", "darwin", "windows", ...) for the environment getenv, without
// asking Wireshark. exists reports whether a directory exists: Wireshark
// keeps using a legacy ~/.wireshark when the XDG one does not exist.
func DefaultFolders(goos string, getenv func(string) string, exists func(string) bool) Folders {
	if goos == "windows" {
		appdata := getenv("APPDATA")
		f := Folders{
			Config:  filepath.Join(appdata, "Wireshark"),
			Plugins: filepath.Join(appdata, "Wireshark", "plugins"),
			Extcap:  filepath.Join(appdata, "Wireshark", "extcap"),
			From:    "Wireshark's defaults for " + goos,
		}
		if d := getenv("WIRESHARK_CONFIG_DIR"); d != "" {
			f.Config = d
		}
		return f
	}
	home := getenv("HOME")
	f := Folders{
		Plugins: filepath.Join(home, ".local", "lib", "wireshark", "plugins"),
		Extcap:  filepath.Join(home, ".local", "lib", "wireshark", "extcap"),
		From:    "Wireshark's defaults for " + goos,
	}
	xdg := getenv("XDG_CONFIG_HOME")
	if xdg == "" {
		xdg = filepath.Join(home, ".config")
	}
	switch legacy := filepath.Join(home, ".wireshark"); {
	case getenv("WIRESHARK_CONFIG_DIR") != "":
		f.Config = getenv("WIRESHARK_CONFIG_DIR")
	case !exists(filepath.Join(xdg, "wireshark")) && exists(legacy):
		f.Config = legacy
	default:
		f.Config = filepath.Join(xdg, "wireshark")
	}
	return f
}

// Detect returns the personal folders of the installed Wireshark: those
// that "tshark -G folders" lists when tshark is installed, else
// DefaultFolders for this system and environment.
func Detect(ctx context.Context, goos string) Folders {
	f := DefaultFolders(goos, os.Getenv, isDir)
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		return f
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	folders, err := exec.CommandContext(ctx, tshark, "-G", "folders").Output()
	if err != nil {
		return f
	}
	version, _ := exec.CommandContext(ctx, tshark, "-v").Output()
	return fromTshark(f, folders, version, os.Getenv("WIRESHARK_EXTCAP_DIR"))
}

// fromTshark refines the default folders def with the output of
// "tshark -G folders" and "tshark -v"; extcapEnv is the value of
// WIRESHARK_EXTCAP_DIR.
func fromTshark(def Folders, folders, version []byte, extcapEnv string) Folders {
	f := def
	listed := ParseFolders(folders)
	if v := listed["Personal configuration"]; v != "" {
		f.Config = v
	}
	if v := listed["Personal Lua Plugins"]; v != "" {
		f.Plugins = v
	}
	f.Version = ParseVersion(version)
	f.From = "tshark -G folders"
	if f.Version != "" {
		f.From += " (Wireshark " + f.Version + ")"
	}
	f.GlobalExtcap = listed["Global Extcap path"]
	if f.GlobalExtcap == "" {
		f.GlobalExtcap = listed["Extcap path"]
	}
	if v := listed["Personal Extcap path"]; v != "" {
		f.Extcap = v
	} else if f.Version != "" && !versionAtLeast(f.Version, 4, 1) {
		f.ExtcapUnread = true
	}
	if extcapEnv != "" && filepath.Clean(f.GlobalExtcap) == filepath.Clean(extcapEnv) {
		// Wireshark reads WIRESHARK_EXTCAP_DIR in place of its global
		// folder (except as root), and lists it as such.
		f.GlobalExtcap = ""
		if filepath.Clean(extcapEnv) == filepath.Clean(f.Extcap) {
			f.ExtcapUnread = false
		}
	}
	return f
}

// ParseFolders parses the output of "tshark -G folders": one folder per
// line, its name, a colon and tabs or spaces, then the path. A name listed
// twice keeps its first path.
func ParseFolders(out []byte) map[string]string {
	m := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, path, ok := strings.Cut(sc.Text(), ":")
		name, path = strings.TrimSpace(name), strings.TrimSpace(path)
		if !ok || name == "" || path == "" {
			continue
		}
		if _, seen := m[name]; !seen {
			m[name] = path
		}
	}
	return m
}

var versionRE = regexp.MustCompile(`\(Wireshark\) (\d+\.\d+\.\d+)`)

// ParseVersion returns the Wireshark version in the output of "tshark
// -v" ("TShark (Wireshark) 4.0.17 (...)"), or "" if there is none.
func ParseVersion(out []byte) string {
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// versionAtLeast reports whether version (MAJOR.MINOR.PATCH) is at least
// major.minor.
func versionAtLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// Installed is one file or link that Install put in place.
type Installed struct {
	What string // "profile", "dissector" or "extcap"
	Path string
	// Target is where an extcap link points.
	Target string
}

// Options say what Install installs.
type Options struct {
	Folders Folders
	// Extcap is the program to enter as extcap (record's own path); ""
	// installs no extcap entry.
	Extcap string
}

// Install writes the profile and the dissector into the personal folders
// and, if o.Extcap is set, links the extcap entry to it. Files of the same
// name are replaced, except the profile's recent file (column widths),
// which Wireshark keeps rewriting: it is written only where absent. Other
// files in the profile folder are left alone. It returns what it installed, in that order.
func Install(o Options) ([]Installed, error) {
	var done []Installed
	dir := o.Folders.ProfileDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return done, fmt.Errorf("create profile folder: %w", err)
	}
	profile := wireshark.Profile()
	err := fs.WalkDir(profile, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		path := filepath.Join(dir, filepath.FromSlash(name))
		if name == wireshark.ProfileSeed {
			if _, err := os.Lstat(path); err == nil {
				return nil // the user's column widths
			}
		}
		b, err := fs.ReadFile(profile, name)
		if err != nil {
			return err
		}
		return writeFile(path, b, 0o644)
	})
	if err != nil {
		return done, fmt.Errorf("install profile: %w", err)
	}
	done = append(done, Installed{What: "profile", Path: dir})

	if err := os.MkdirAll(o.Folders.Plugins, 0o755); err != nil {
		return done, fmt.Errorf("create plugins folder: %w", err)
	}
	lua := filepath.Join(o.Folders.Plugins, wireshark.DissectorName)
	if err := writeFile(lua, wireshark.Dissector(), 0o644); err != nil {
		return done, fmt.Errorf("install dissector: %w", err)
	}
	done = append(done, Installed{What: "dissector", Path: lua})

	if o.Extcap == "" {
		return done, nil
	}
	if err := os.MkdirAll(o.Folders.Extcap, 0o755); err != nil {
		return done, fmt.Errorf("create extcap folder: %w", err)
	}
	link := filepath.Join(o.Folders.Extcap, ExtcapName)
	if err := replaceSymlink(o.Extcap, link); err != nil {
		return done, fmt.Errorf("install extcap entry: %w", err)
	}
	return append(done, Installed{What: "extcap", Path: link, Target: o.Extcap}), nil
}

// writeFile writes b to path through a temporary file in the same folder,
// renamed over path, so that a running Wireshark never reads half a file.
func writeFile(path string, b []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), perm)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// replaceSymlink makes link a symbolic link to target, replacing a file or
// link of that name (not a directory).
func replaceSymlink(target, link string) error {
	tmp := filepath.Join(filepath.Dir(link), "."+filepath.Base(link)+".new")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// WriteReport writes, one line each, what was installed where, then how to
// use it; prog names the command for the messages ("record").
func WriteReport(w io.Writer, prog string, f Folders, done []Installed) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: installed for Wireshark (folders from %s):\n", prog, f.From)
	for _, d := range done {
		switch d.What {
		case "profile":
			fmt.Fprintf(&b, "  profile    %s  (open a recording with: wireshark -C %s FILE)\n", d.Path, wireshark.ProfileName)
		case "dissector":
			fmt.Fprintf(&b, "  dissector  %s  (pathcap.* fields; reload: Analyze > Reload Lua Plugins)\n", d.Path)
		case "extcap":
			fmt.Fprintf(&b, "  extcap     %s -> %s  (capture interface \"pathcap\")\n", d.Path, d.Target)
		}
	}
	for _, d := range done {
		if d.What != "extcap" || !f.ExtcapUnread {
			continue
		}
		fmt.Fprintf(&b, "%s: Wireshark %s reads no personal extcap folder (4.2 and later do); either start it as\n", prog, f.Version)
		fmt.Fprintf(&b, "  WIRESHARK_EXTCAP_DIR=%s wireshark   (it then lists no other extcap interfaces, and ignores the variable when run as root)\n", filepath.Dir(d.Path))
		if f.GlobalExtcap != "" {
			fmt.Fprintf(&b, "  or link the entry into its global folder, as root: ln -s %s %s\n", d.Target, filepath.Join(f.GlobalExtcap, ExtcapName))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
