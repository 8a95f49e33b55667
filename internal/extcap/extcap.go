// Package extcap implements the program's side of Wireshark's extcap
// interface (extcap(4)): Wireshark runs the program with --extcap-*
// arguments to list its interfaces, their link types and the options of
// their configuration dialog, to check a capture filter, and finally with
// --capture --fifo PATH to capture into a named pipe that Wireshark reads.
//
// The package parses such a command line into a Request and writes the
// sentences Wireshark reads back (interface, dlt, arg, value). What the
// interfaces are and how they capture is the caller's.
package extcap

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The arguments Wireshark passes.
const (
	ArgInterfaces    = "--extcap-interfaces"
	ArgVersion       = "--extcap-version"
	ArgDLTs          = "--extcap-dlts"
	ArgConfig        = "--extcap-config"
	ArgInterface     = "--extcap-interface"
	ArgCaptureFilter = "--extcap-capture-filter"
	ArgCapture       = "--capture"
	ArgFifo          = "--fifo"
)

// IsCall reports whether args (without the program name) are an extcap
// call: whether one of them is an --extcap-* argument. Every call
// Wireshark makes has one (a capture names its interface with
// --extcap-interface).
func IsCall(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if strings.HasPrefix(a, "--extcap-") {
			return true
		}
	}
	return false
}

// Request is one extcap call.
type Request struct {
	Interfaces bool   // --extcap-interfaces: list the interfaces
	Version    string // --extcap-version=V: Wireshark's version (alone: print ours)
	HasVersion bool   // --extcap-version was given, with or without a value
	DLTs       bool   // --extcap-dlts: the link types of Interface
	Config     bool   // --extcap-config: the dialog options of Interface
	Capture    bool   // --capture: capture on Interface into Fifo
	Interface  string // --extcap-interface
	Fifo       string // --fifo
	// Filter is the capture filter (--extcap-capture-filter). Without
	// Capture, the call asks whether it is valid.
	Filter    string
	HasFilter bool
	// Options are the configuration options given, by their call
	// (--snaplen), with their values ("" for flags), in order.
	Options []Option
}

// Option is a configuration option of a call.
type Option struct {
	Call  string // e.g. "--snaplen"
	Value string // "" for a flag
}

// Parse parses an extcap command line (without the program name). args
// describes the configuration options the interface offers: options of
// type boolflag are flags, every other takes a value, given as --call=V
// or as --call V. Other --extcap-* arguments that Wireshark may add
// (--extcap-control-in, --extcap-control-out, --extcap-reload-option)
// take a value and are ignored, as are --debug and --debug-file; any other
// argument is an error.
func Parse(args []string, options []Arg) (Request, error) {
	var r Request
	flag := map[string]bool{}
	known := map[string]bool{}
	for _, o := range options {
		known[o.Call] = true
		flag[o.Call] = o.Type == TypeBoolFlag
	}
	for i := 0; i < len(args); i++ {
		name, value, hasValue := strings.Cut(args[i], "=")
		if !strings.HasPrefix(name, "--") {
			return r, fmt.Errorf("unexpected argument %q", args[i])
		}
		// takeValue returns the option's value: after "=" or the next
		// argument.
		takeValue := func() (string, error) {
			if hasValue {
				return value, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("%s needs a value", name)
			}
			i++
			return args[i], nil
		}
		var err error
		switch name {
		case ArgInterfaces:
			r.Interfaces = true
		case ArgDLTs:
			r.DLTs = true
		case ArgConfig:
			r.Config = true
		case ArgCapture:
			r.Capture = true
		case ArgVersion:
			// Wireshark passes --extcap-version=4.0; alone, it asks
			// for ours.
			r.HasVersion, r.Version = true, value
		case ArgInterface:
			r.Interface, err = takeValue()
		case ArgFifo:
			r.Fifo, err = takeValue()
		case ArgCaptureFilter:
			r.HasFilter = true
			r.Filter, err = takeValue()
		case "--debug":
		case "--debug-file", "--extcap-control-in", "--extcap-control-out", "--extcap-reload-option":
			_, err = takeValue()
		default:
			switch {
			case !known[name]:
				if strings.HasPrefix(name, "--extcap-") {
					// A newer Wireshark's argument: skip its value
					// when it has one (--name=value).
					continue
				}
				err = fmt.Errorf("unknown option %s", name)
			case flag[name]:
				if hasValue {
					err = fmt.Errorf("%s takes no value", name)
				}
				r.Options = append(r.Options, Option{Call: name})
			default:
				var v string
				if v, err = takeValue(); err == nil {
					r.Options = append(r.Options, Option{Call: name, Value: v})
				}
			}
		}
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// Interface is a capture interface the program offers.
type Interface struct {
	Value   string // the interface name Wireshark passes back
	Display string // what Wireshark shows
}

// DLT is the link-layer type of an interface's packets.
type DLT struct {
	Number  int    // the LINKTYPE_ value
	Name    string // e.g. EN10MB
	Display string
}

// Argument types of the configuration dialog (extcap(4)).
const (
	TypeString     = "string"
	TypeUnsigned   = "unsigned"
	TypeInteger    = "integer"
	TypeBoolFlag   = "boolflag" // a check box: the bare flag when checked
	TypeSelector   = "selector"
	TypeFileSelect = "fileselect"
)

// Arg is an option of the configuration dialog.
type Arg struct {
	Call    string // e.g. --snaplen
	Display string
	Type    string
	Tooltip string
	Default string // "" for none
	Range   string // "MIN,MAX" for numbers, "" for none
	Group   string // the dialog tab, "" for the first
	// Values are the choices of a selector.
	Values []Value
}

// Value is one choice of a selector.
type Value struct {
	Value   string
	Display string
	Default bool
}

// WriteInterfaces writes the answer to --extcap-interfaces: the
// program's version and its interfaces.
func WriteInterfaces(w io.Writer, version string, ifaces []Interface) error {
	var b strings.Builder
	if err := sentence(&b, "extcap", "version", version); err != nil {
		return err
	}
	for _, i := range ifaces {
		if err := sentence(&b, "interface", "value", i.Value, "display", i.Display); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteVersion writes the answer to --extcap-version alone.
func WriteVersion(w io.Writer, version string) error {
	var b strings.Builder
	if err := sentence(&b, "extcap", "version", version); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteDLTs writes the answer to --extcap-dlts.
func WriteDLTs(w io.Writer, dlts []DLT) error {
	var b strings.Builder
	for _, d := range dlts {
		if err := sentence(&b, "dlt", "number", strconv.Itoa(d.Number), "name", d.Name, "display", d.Display); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteConfig writes the answer to --extcap-config: one arg sentence per
// option, numbered in order, and a value sentence per selector choice.
func WriteConfig(w io.Writer, args []Arg) error {
	var b strings.Builder
	for n, a := range args {
		kv := []string{"number", strconv.Itoa(n), "call", a.Call, "display", a.Display, "type", a.Type}
		for _, opt := range [][2]string{{"tooltip", a.Tooltip}, {"range", a.Range}, {"default", a.Default}, {"group", a.Group}} {
			if opt[1] != "" {
				kv = append(kv, opt[0], opt[1])
			}
		}
		if err := sentence(&b, "arg", kv...); err != nil {
			return err
		}
		for _, v := range a.Values {
			kv := []string{"arg", strconv.Itoa(n), "value", v.Value, "display", v.Display}
			if v.Default {
				kv = append(kv, "default", "true")
			}
			if err := sentence(&b, "value", kv...); err != nil {
				return err
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// errBadField is returned for a field Wireshark's parser would split.
var errBadField = errors.New("braces and line breaks cannot be written in an extcap sentence")

// sentence appends one line: the keyword, then {key=value} for each pair.
func sentence(b *strings.Builder, keyword string, kv ...string) error {
	b.WriteString(keyword)
	b.WriteByte(' ')
	for i := 0; i+1 < len(kv); i += 2 {
		if strings.ContainsAny(kv[i], "{}=\n\r") || strings.ContainsAny(kv[i+1], "{}\n\r") {
			return fmt.Errorf("%s %s=%q: %w", keyword, kv[i], kv[i+1], errBadField)
		}
		fmt.Fprintf(b, "{%s=%s}", kv[i], kv[i+1])
	}
	b.WriteByte('\n')
	return nil
}
