package main

import (
	"strings"
	"unicode"

	"github.com/urfave/cli/v2"
)

// tcpdumpOrder lets options follow the filter expression, as tcpdump on
// Linux does (record 'tcp port 80' -w out.pcapng -c 10): it moves every
// flag of app (with its value) in args[1:] in front of the words that are
// not flags, keeping the order within each group. The command line parser
// stops at the first word that is not a flag, which would otherwise make
// "-w" part of the expression.
//
// "--" ends the flags as usual, and a subcommand's command line (record
// check ...) is left alone. A word that starts with "-" and a letter is a
// flag, known or not (the parser reports unknown ones); "-" alone and
// negative numbers are words. When a word after "--" starts with "-", "--"
// is kept in front of the expression so that it is not taken for a flag.
func tcpdumpOrder(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	if app.Command(args[1]) != nil {
		return args
	}
	takesValue := make(map[string]bool)
	for _, f := range app.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	// help and version are added by the parser.
	for _, n := range []string{"help", "h", "version", "v"} {
		takesValue[n] = false
	}
	var flags, words []string
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			words = append(words, rest[i+1:]...)
			break
		}
		name, hasValue := flagName(a)
		if name == "" {
			words = append(words, a)
			continue
		}
		// An unknown flag is moved too, for the parser to report.
		value := takesValue[name]
		flags = append(flags, a)
		if value && !hasValue && i+1 < len(rest) {
			i++
			flags = append(flags, rest[i])
		}
	}
	out := append([]string{args[0]}, flags...)
	for _, w := range words {
		if strings.HasPrefix(w, "-") {
			out = append(out, "--")
			break
		}
	}
	return append(out, words...)
}

// flagName returns the name of a flag word ("-w" and "--write=x" give "w"
// and "write"), whether it carries its value after "=", or "" for a word
// that is not a flag ("-" alone is standard output, not a flag).
func flagName(a string) (name string, hasValue bool) {
	if len(a) < 2 || a[0] != '-' {
		return "", false
	}
	name = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
	if name == "" || !unicode.IsLetter(rune(name[0])) {
		return "", false
	}
	if i := strings.IndexByte(name, '='); i >= 0 {
		return name[:i], true
	}
	return name, false
}
