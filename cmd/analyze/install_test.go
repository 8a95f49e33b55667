package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/internal/testrec"
	"github.com/pathcap/pathcap/wireshark"
)

// TestWiresharkInstall installs the profile and the dissector into a
// temporary home and checks that tshark, given that home, uses both.
func TestWiresharkInstall(t *testing.T) {
	bin := testenv.BuildCommand(t, "analyze")
	home := t.TempDir()
	env := []string{"XDG_CONFIG_HOME=" + filepath.Join(home, ".config")}
	// runEnv passes the caller's HOME: this one comes last and wins.
	r := runEnv(t, bin, append(env, "HOME="+home), "", "wireshark-install")
	r.expect(t, 0)
	lua := filepath.Join(home, ".local", "lib", "wireshark", "plugins", "pathcap.lua")
	profile := filepath.Join(home, ".config", "wireshark", "profiles", "pathcap")
	for _, want := range []string{lua, profile} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the report does not name %s:\n%s", want, r.stdout)
		}
	}
	if b, err := os.ReadFile(lua); err != nil || !bytes.Equal(b, wireshark.Dissector()) {
		t.Errorf("installed dissector: %v", err)
	}
	for _, name := range []string{"preferences", "colorfilters"} {
		if _, err := os.Stat(filepath.Join(profile, name)); err != nil {
			t.Errorf("profile file: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(home, ".local", "lib", "wireshark", "extcap")); err == nil {
		t.Error("analyze installed an extcap entry")
	}

	tshark := testenv.RequireTool(t, "tshark")
	cmd := exec.Command(tshark, "-n", "-C", "pathcap", "-r", testrec.Recording(t, "host-veth.pcapng"), "-c", "30",
		"-T", "fields", "-e", "pathcap.hook", "-e", "_ws.col.Protocol")
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark -C pathcap: %v", err)
	}
	if !strings.Contains(string(out), "tp:kfree_skb") {
		t.Errorf("tshark with the installed dissector shows no pathcap.hook:\n%s", out)
	}
}
