package extcap

import (
	"reflect"
	"strings"
	"testing"
)

var testArgs = []Arg{
	{Call: "--backend", Display: "Backend", Type: TypeSelector, Values: []Value{{Value: "auto", Display: "auto", Default: true}, {Value: "tracepoint", Display: "tracepoint"}}},
	{Call: "--stack", Display: "Kernel stacks", Type: TypeBoolFlag},
	{Call: "--snaplen", Display: "Snap length", Type: TypeUnsigned, Default: "256", Range: "1,65535", Tooltip: "Bytes"},
	{Call: "--log-file", Display: "Log file", Type: TypeFileSelect, Group: "Debug"},
}

func TestIsCall(t *testing.T) {
	for args, want := range map[string]bool{
		"--extcap-interfaces --extcap-version=4.0":                            true,
		"--capture --extcap-interface pathcap --fifo /tmp/f":                  true,
		"-w out.pcapng tcp port 80":                                           false,
		"-w out.pcapng -- --extcap-interfaces":                                false,
		"check":                                                               false,
		"--extcap-interface=pathcap --extcap-capture-filter=tcp":              true,
		"--extcap-config --extcap-interface pathcap --extcap-reload-option x": true,
	} {
		if got := IsCall(strings.Fields(args)); got != want {
			t.Errorf("IsCall(%s) = %v", args, got)
		}
	}
}

func TestParse(t *testing.T) {
	cases := []struct {
		args []string
		want Request
	}{
		{[]string{"--extcap-interfaces", "--extcap-version=4.0"}, Request{Interfaces: true, HasVersion: true, Version: "4.0"}},
		{[]string{"--extcap-version"}, Request{HasVersion: true}},
		{[]string{"--extcap-dlts", "--extcap-interface", "pathcap"}, Request{DLTs: true, Interface: "pathcap"}},
		{[]string{"--extcap-config", "--extcap-interface=pathcap"}, Request{Config: true, Interface: "pathcap"}},
		{[]string{"--extcap-interface", "pathcap", "--extcap-capture-filter", "tcp port 80"}, Request{Interface: "pathcap", HasFilter: true, Filter: "tcp port 80"}},
		{[]string{"--extcap-interface", "pathcap", "--extcap-capture-filter", ""}, Request{Interface: "pathcap", HasFilter: true}},
		{
			[]string{"--capture", "--extcap-interface", "pathcap", "--extcap-capture-filter", "icmp", "--fifo", "/tmp/f",
				"--backend", "tracepoint", "--stack", "--snaplen=128", "--log-file", "/tmp/l", "--debug", "--extcap-control-in", "/tmp/c"},
			Request{Capture: true, Interface: "pathcap", Fifo: "/tmp/f", HasFilter: true, Filter: "icmp", Options: []Option{
				{Call: "--backend", Value: "tracepoint"}, {Call: "--stack"}, {Call: "--snaplen", Value: "128"}, {Call: "--log-file", Value: "/tmp/l"}}},
		},
		// An --extcap-* argument of a newer Wireshark, with its value after "=".
		{[]string{"--extcap-config", "--extcap-interface", "pathcap", "--extcap-something=1"}, Request{Config: true, Interface: "pathcap"}},
	}
	for _, c := range cases {
		got, err := Parse(c.args, testArgs)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.args, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Parse(%q) =\n%+v\nwant\n%+v", c.args, got, c.want)
		}
	}
	for _, bad := range [][]string{
		{"--capture", "--fifo"},                          // no value
		{"--extcap-interface", "pathcap", "--nope", "1"}, // unknown option
		{"--extcap-interface", "pathcap", "--stack=1"},   // a flag with a value
		{"--extcap-interface", "pathcap", "word"},        // not an option
		{"--snaplen"}, // no value
	} {
		if _, err := Parse(bad, testArgs); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestSentences(t *testing.T) {
	var b strings.Builder
	if err := WriteInterfaces(&b, "0.1.0", []Interface{{Value: "pathcap", Display: "pathcap: kernel packet paths"}}); err != nil {
		t.Fatal(err)
	}
	if err := WriteDLTs(&b, []DLT{{Number: 1, Name: "EN10MB", Display: "Ethernet"}}); err != nil {
		t.Fatal(err)
	}
	if err := WriteConfig(&b, testArgs); err != nil {
		t.Fatal(err)
	}
	want := `extcap {version=0.1.0}
interface {value=pathcap}{display=pathcap: kernel packet paths}
dlt {number=1}{name=EN10MB}{display=Ethernet}
arg {number=0}{call=--backend}{display=Backend}{type=selector}
value {arg=0}{value=auto}{display=auto}{default=true}
value {arg=0}{value=tracepoint}{display=tracepoint}
arg {number=1}{call=--stack}{display=Kernel stacks}{type=boolflag}
arg {number=2}{call=--snaplen}{display=Snap length}{type=unsigned}{tooltip=Bytes}{range=1,65535}{default=256}
arg {number=3}{call=--log-file}{display=Log file}{type=fileselect}{group=Debug}
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	// A brace would end the field early in Wireshark's parser.
	if err := WriteConfig(&b, []Arg{{Call: "--x", Display: "a {b}", Type: TypeString}}); err == nil {
		t.Error("a display with braces was written")
	}
}
