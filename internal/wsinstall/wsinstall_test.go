package wsinstall

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/wireshark"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaultFolders(t *testing.T) {
	none := func(string) bool { return false }
	cases := []struct {
		name   string
		goos   string
		env    map[string]string
		exists func(string) bool
		want   Folders
	}{
		{"linux", "linux", map[string]string{"HOME": "/home/u"}, none, Folders{
			Config: "/home/u/.config/wireshark", Plugins: "/home/u/.local/lib/wireshark/plugins", Extcap: "/home/u/.local/lib/wireshark/extcap"}},
		{"xdg", "linux", map[string]string{"HOME": "/home/u", "XDG_CONFIG_HOME": "/x"}, none, Folders{
			Config: "/x/wireshark", Plugins: "/home/u/.local/lib/wireshark/plugins", Extcap: "/home/u/.local/lib/wireshark/extcap"}},
		{"legacy", "linux", map[string]string{"HOME": "/home/u"}, func(p string) bool { return p == "/home/u/.wireshark" }, Folders{
			Config: "/home/u/.wireshark", Plugins: "/home/u/.local/lib/wireshark/plugins", Extcap: "/home/u/.local/lib/wireshark/extcap"}},
		{"xdg over legacy", "linux", map[string]string{"HOME": "/home/u"}, func(string) bool { return true }, Folders{
			Config: "/home/u/.config/wireshark", Plugins: "/home/u/.local/lib/wireshark/plugins", Extcap: "/home/u/.local/lib/wireshark/extcap"}},
		{"WIRESHARK_CONFIG_DIR", "darwin", map[string]string{"HOME": "/Users/u", "WIRESHARK_CONFIG_DIR": "/c"}, none, Folders{
			Config: "/c", Plugins: "/Users/u/.local/lib/wireshark/plugins", Extcap: "/Users/u/.local/lib/wireshark/extcap"}},
		{"windows", "windows", map[string]string{"APPDATA": "A"}, none, Folders{
			Config: filepath.Join("A", "Wireshark"), Plugins: filepath.Join("A", "Wireshark", "plugins"), Extcap: filepath.Join("A", "Wireshark", "extcap")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := DefaultFolders(c.goos, env(c.env), c.exists)
			got.From = ""
			if got != c.want {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// tshark 4.0.17's output (Debian 12), as root.
const folders40 = `Temp:                	/tmp
Personal configuration:	/root/.config/wireshark
Global configuration:	/usr/share/wireshark
System:              	/etc
Program:             	/usr/bin
Personal Plugins:    	/root/.local/lib/wireshark/plugins/4.0
Global Plugins:      	/usr/lib/x86_64-linux-gnu/wireshark/plugins/4.0
Personal Lua Plugins:	/root/.local/lib/wireshark/plugins
Global Lua Plugins:  	/usr/lib/x86_64-linux-gnu/wireshark/plugins
Extcap path:         	/usr/lib/x86_64-linux-gnu/wireshark/extcap
MaxMind database path:	/usr/share/GeoIP
MaxMind database path:	/var/lib/GeoIP
`

func TestFromTshark(t *testing.T) {
	def := DefaultFolders("linux", env(map[string]string{"HOME": "/h"}), func(string) bool { return false })
	f := fromTshark(def, []byte(folders40), []byte("TShark (Wireshark) 4.0.17 (Git v4.0.17 packaged as 4.0.17-0+deb12u3).\n"), "")
	want := Folders{
		Config:       "/root/.config/wireshark",
		Plugins:      "/root/.local/lib/wireshark/plugins",
		Extcap:       "/h/.local/lib/wireshark/extcap",
		From:         "tshark -G folders (Wireshark 4.0.17)",
		Version:      "4.0.17",
		ExtcapUnread: true,
		GlobalExtcap: "/usr/lib/x86_64-linux-gnu/wireshark/extcap",
	}
	if f != want {
		t.Errorf("got %+v\nwant %+v", f, want)
	}
	// A Wireshark that names its personal extcap folder.
	newer := folders40 + "Personal Extcap path:\t/p/extcap\n"
	f = fromTshark(def, []byte(newer), []byte("TShark (Wireshark) 4.4.7.\n"), "")
	if f.Extcap != "/p/extcap" || f.ExtcapUnread {
		t.Errorf("4.4: extcap %q, unread %v", f.Extcap, f.ExtcapUnread)
	}
	// 4.2 without the line: the default personal folder, read.
	f = fromTshark(def, []byte(folders40), []byte("TShark (Wireshark) 4.2.2 (Git v4.2.2 packaged as 4.2.2-1).\n"), "")
	if f.Extcap != def.Extcap || f.ExtcapUnread {
		t.Errorf("4.2: extcap %q, unread %v", f.Extcap, f.ExtcapUnread)
	}
	// WIRESHARK_EXTCAP_DIR names the personal folder: tshark lists it as
	// its extcap path, and reads it.
	withEnv := strings.Replace(folders40, "/usr/lib/x86_64-linux-gnu/wireshark/extcap", "/h/.local/lib/wireshark/extcap", 1)
	f = fromTshark(def, []byte(withEnv), []byte("TShark (Wireshark) 4.0.17.\n"), "/h/.local/lib/wireshark/extcap/")
	if f.ExtcapUnread || f.GlobalExtcap != "" {
		t.Errorf("WIRESHARK_EXTCAP_DIR: unread %v, global %q", f.ExtcapUnread, f.GlobalExtcap)
	}
	// No version: not known to be unread.
	if f := fromTshark(def, []byte(folders40), nil, ""); f.ExtcapUnread || f.Version != "" {
		t.Errorf("no version: %+v", f)
	}
}

func TestVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"4.0.17": false, "4.1.0": true, "4.2.2": true, "5.0.0": true, "3.6.2": false, "x": false} {
		if got := versionAtLeast(v, 4, 1); got != want {
			t.Errorf("versionAtLeast(%q, 4, 1) = %v", v, got)
		}
	}
}

func TestInstall(t *testing.T) {
	root := t.TempDir()
	f := Folders{
		Config:  filepath.Join(root, "config"),
		Plugins: filepath.Join(root, "plugins"),
		Extcap:  filepath.Join(root, "extcap"),
	}
	target := filepath.Join(root, "bin", "record")
	// A file the user's Wireshark wrote into the profile stays.
	if err := os.MkdirAll(f.ProfileDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	recent := filepath.Join(f.ProfileDir(), "recent")
	if err := os.WriteFile(recent, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for run := 0; run < 2; run++ { // the second run replaces the first
		done, err := Install(Options{Folders: f, Extcap: target})
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if len(done) != 3 || done[0].What != "profile" || done[1].What != "dissector" || done[2].What != "extcap" {
			t.Fatalf("run %d: installed %+v", run, done)
		}
	}
	profile := wireshark.Profile()
	names, err := fs.Glob(profile, "*")
	if err != nil || len(names) < 2 {
		t.Fatalf("embedded profile files %v: %v", names, err)
	}
	for _, name := range names {
		if name == wireshark.ProfileSeed {
			continue
		}
		want, _ := fs.ReadFile(profile, name)
		got, err := os.ReadFile(filepath.Join(f.ProfileDir(), name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("profile file %s: %v, equal %v", name, err, bytes.Equal(got, want))
		}
	}
	if got, err := os.ReadFile(filepath.Join(f.Plugins, "pathcap.lua")); err != nil || !bytes.Equal(got, wireshark.Dissector()) {
		t.Errorf("dissector: %v", err)
	}
	if src, _ := os.ReadFile(filepath.Join("..", "..", "wireshark", "pathcap.lua")); !bytes.Equal(src, wireshark.Dissector()) {
		t.Error("the embedded dissector is not wireshark/pathcap.lua")
	}
	if got, err := os.Readlink(filepath.Join(f.Extcap, ExtcapName)); err != nil || got != target {
		t.Errorf("extcap link: %q, %v", got, err)
	}
	if b, err := os.ReadFile(recent); err != nil || string(b) != "x" {
		t.Errorf("the user's recent file was replaced: %q, %v", b, err)
	}
	other := filepath.Join(f.ProfileDir(), "dfilters")
	if err := os.WriteFile(other, []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(recent); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(Options{Folders: f}); err != nil {
		t.Fatal(err)
	}
	if b, _ := fs.ReadFile(profile, wireshark.ProfileSeed); !bytes.Equal(b, mustRead(t, recent)) {
		t.Error("the profile's recent file was not written where absent")
	}
	if b, err := os.ReadFile(other); err != nil || string(b) != "y" {
		t.Errorf("another file of the profile was changed: %q, %v", b, err)
	}
	// Nothing else is left behind (temporary files).
	for _, dir := range []string{f.ProfileDir(), f.Plugins, f.Extcap} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("left behind: %s", filepath.Join(dir, e.Name()))
			}
		}
	}

	// Without an extcap program, no extcap entry.
	g := f
	g.Extcap = filepath.Join(root, "extcap2")
	done, err := Install(Options{Folders: g})
	if err != nil || len(done) != 2 {
		t.Fatalf("without extcap: %+v, %v", done, err)
	}
	if _, err := os.Lstat(g.Extcap); err == nil {
		t.Error("extcap folder created without an extcap program")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriteReport(t *testing.T) {
	f := Folders{From: "tshark -G folders (Wireshark 4.0.17)", Version: "4.0.17", ExtcapUnread: true, GlobalExtcap: "/usr/lib/ws/extcap"}
	done := []Installed{
		{What: "profile", Path: "/h/.config/wireshark/profiles/pathcap"},
		{What: "dissector", Path: "/h/.local/lib/wireshark/plugins/pathcap.lua"},
		{What: "extcap", Path: "/h/.local/lib/wireshark/extcap/pathcap", Target: "/usr/bin/record"},
	}
	var b bytes.Buffer
	if err := WriteReport(&b, "record", f, done); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"/h/.config/wireshark/profiles/pathcap",
		"/h/.local/lib/wireshark/plugins/pathcap.lua",
		"/h/.local/lib/wireshark/extcap/pathcap -> /usr/bin/record",
		"WIRESHARK_EXTCAP_DIR=/h/.local/lib/wireshark/extcap wireshark",
		"ln -s /usr/bin/record /usr/lib/ws/extcap/pathcap",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
