// Package completion writes bash completion scripts for the project's
// commands from their command line definitions, so that the completions
// never drift from the flags.
package completion

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// Spec says what a command's flags take beyond their names.
type Spec struct {
	// Values lists the words a flag's value may be, by flag name (any of
	// its names).
	Values map[string][]string
	// Dynamic gives a shell command whose output lines are the values of
	// a flag, by flag name (e.g. the devices for --ifname).
	Dynamic map[string]string
	// Files names the flags whose value is a file.
	Files []string
}

// Bash writes a bash completion script for app to w: subcommands, flags
// (of the subcommand being typed after, if any), flag values from spec,
// and file names elsewhere. zsh users load it with bashcompinit.
func Bash(w io.Writer, app *cli.App, spec Spec) error {
	fn := "_pathcap_" + strings.NewReplacer("-", "_", ".", "_").Replace(app.Name)
	var b strings.Builder
	fmt.Fprintf(&b, "# bash completion for %s, written by \"%s completion bash\".\n", app.Name, app.Name)
	fmt.Fprintf(&b, "# Load it with: source <(%s completion bash)\n", app.Name)
	fmt.Fprintf(&b, "%s() {\n", fn)
	b.WriteString("\tlocal cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\" cmd= i\n")
	var cmds []string
	for _, c := range app.Commands {
		if !c.Hidden {
			cmds = append(cmds, c.Name)
		}
	}
	if len(cmds) > 0 {
		fmt.Fprintf(&b, "\tfor ((i = 1; i < COMP_CWORD; i++)); do\n\t\tcase \"${COMP_WORDS[i]}\" in\n\t\t%s) cmd=\"${COMP_WORDS[i]}\"; break ;;\n\t\tesac\n\tdone\n", strings.Join(cmds, "|"))
	}
	// Flag values, for every flag of the app and its commands.
	b.WriteString("\tcase \"$prev\" in\n")
	seen := map[string]bool{}
	all := slices.Clone(app.Flags)
	for _, c := range app.Commands {
		all = append(all, c.Flags...)
	}
	for _, f := range all {
		if _, isBool := f.(*cli.BoolFlag); isBool {
			continue
		}
		names := f.Names()
		key := strings.Join(names, ",")
		if seen[key] {
			continue
		}
		seen[key] = true
		var words []string
		for _, n := range names {
			words = append(words, dashed(n))
		}
		pattern := strings.Join(words, "|")
		switch {
		case anyIn(names, spec.Values) != nil:
			fmt.Fprintf(&b, "\t%s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", pattern, strings.Join(anyIn(names, spec.Values), " "))
		case anyDynamic(names, spec.Dynamic) != "":
			fmt.Fprintf(&b, "\t%s) COMPREPLY=($(compgen -W \"$({ %s; } 2>/dev/null)\" -- \"$cur\")); return ;;\n", pattern, anyDynamic(names, spec.Dynamic))
		case slices.ContainsFunc(names, func(n string) bool { return slices.Contains(spec.Files, n) }):
			fmt.Fprintf(&b, "\t%s) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n", pattern)
		default:
			fmt.Fprintf(&b, "\t%s) return ;;\n", pattern)
		}
	}
	b.WriteString("\tesac\n")
	// Flags of the command being typed.
	b.WriteString("\tif [[ \"$cur\" == -* ]]; then\n\t\tcase \"$cmd\" in\n")
	for _, c := range app.Commands {
		fmt.Fprintf(&b, "\t\t%s) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", c.Name, strings.Join(flagWords(c.Flags), " "))
	}
	fmt.Fprintf(&b, "\t\t*) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n\t\tesac\n\t\treturn\n\tfi\n", strings.Join(flagWords(app.Flags), " "))
	if len(cmds) > 0 {
		fmt.Fprintf(&b, "\tif [[ -z \"$cmd\" && $COMP_CWORD -eq 1 ]]; then\n\t\tCOMPREPLY=($(compgen -W %q -- \"$cur\"))\n\tfi\n", strings.Join(cmds, " "))
	}
	b.WriteString("\tCOMPREPLY+=($(compgen -f -- \"$cur\"))\n}\n")
	fmt.Fprintf(&b, "complete -o filenames -F %s %s\n", fn, app.Name)
	_, err := io.WriteString(w, b.String())
	return err
}

// Command returns the "completion" subcommand that writes app's script.
func Command(spec Spec) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a bash completion script (source <(CMD completion bash); zsh: autoload bashcompinit first)",
		ArgsUsage: "bash",
		Action: func(c *cli.Context) error {
			if sh := c.Args().First(); sh != "bash" && sh != "" {
				return fmt.Errorf("completion for %q: only bash is written (zsh loads it through bashcompinit)", sh)
			}
			return Bash(c.App.Writer, c.App, spec)
		},
	}
}

func dashed(n string) string {
	if len(n) == 1 {
		return "-" + n
	}
	return "--" + n
}

func flagWords(fs []cli.Flag) []string {
	var out []string
	for _, f := range fs {
		for _, n := range f.Names() {
			out = append(out, dashed(n))
		}
	}
	return append(out, "--help")
}

func anyIn(names []string, m map[string][]string) []string {
	for _, n := range names {
		if v, ok := m[n]; ok {
			return v
		}
	}
	return nil
}

func anyDynamic(names []string, m map[string]string) string {
	for _, n := range names {
		if v, ok := m[n]; ok {
			return v
		}
	}
	return ""
}
