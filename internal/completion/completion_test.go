package completion

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func testApp() *cli.App {
	return &cli.App{
		Name: "tool",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "write", Aliases: []string{"w"}},
			&cli.StringFlag{Name: "backend"},
			&cli.StringFlag{Name: "dev"},
			&cli.BoolFlag{Name: "stack"},
		},
		Commands: []*cli.Command{{Name: "stats", Flags: []cli.Flag{&cli.BoolFlag{Name: "json"}}}},
	}
}

// complete sources the script in bash and returns COMPREPLY for words.
func complete(t *testing.T, script string, words ...string) []string {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "out.pcapng"), nil, 0o600)
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, "'"+w+"'")
	}
	prog := script + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
		string(rune('0'+len(words)-1)) + "\n_pathcap_tool\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
	cmd := exec.Command(bash, "--norc", "-c", prog)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

// TestBashCompletes runs the script in bash itself.
func TestBashCompletes(t *testing.T) {
	var b bytes.Buffer
	if err := Bash(&b, testApp(), Spec{
		Values:  map[string][]string{"backend": {"auto", "kprobe", "fentry"}},
		Dynamic: map[string]string{"dev": "echo lo eth0"},
		Files:   []string{"write"},
	}); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"tool", "--back"}, "--backend"},
		{[]string{"tool", "--backend", "k"}, "kprobe"},
		{[]string{"tool", "--dev", "e"}, "eth0"},
		{[]string{"tool", "-w", "out"}, "out.pcapng"},
		{[]string{"tool", "st"}, "stats"},
		{[]string{"tool", "stats", "--j"}, "--json"},
	} {
		got := complete(t, s, tc.words...)
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%q: got %q, want %q", tc.words, got, tc.want)
		}
	}
	if got := complete(t, s, "tool", "--st"); strings.Join(got, " ") != "--stack" {
		t.Errorf("--st: got %q", got)
	}
}
