package main

import (
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"4096": 4096, "64k": 64 << 10, "64K": 64 << 10, "100M": 100 << 20, "100MB": 100 << 20,
		"100MiB": 100 << 20, "1G": 1 << 30, "2t": 2 << 40, " 8 k ": 8 << 10, "0": 0, "10B": 10,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "1.5G", "-1", "10X", "1MM", "99999999999T", "0x10"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestIntervalValue(t *testing.T) {
	for in, want := range map[string]time.Duration{"60": time.Minute, "1s": time.Second, "10m": 10 * time.Minute, "1h30m": 90 * time.Minute} {
		var v intervalValue
		if err := v.Set(in); err != nil || v.d != want {
			t.Errorf("Set(%q) = %v, %v; want %v", in, v.d, err, want)
		}
	}
	for _, in := range []string{"", "soon", "-5", "1x"} {
		var v intervalValue
		if err := v.Set(in); err == nil {
			t.Errorf("Set(%q) = %v, want an error", in, v.d)
		}
	}
}

func TestValidateFiles(t *testing.T) {
	for _, c := range []struct {
		o  options
		ok bool
	}{
		{options{output: "out.pcapng", fileSize: 1 << 20, maxFiles: 3}, true},
		{options{output: "out.pcapng", interval: time.Minute, maxSize: 1 << 30}, true},
		{options{output: "-", maxSize: 1 << 20}, true},
		{options{output: "-", fileSize: 1 << 20}, false},
		{options{output: "", interval: time.Minute}, false},
		{options{output: "", maxSize: 1 << 20}, false},
		{options{output: "out.pcapng", fileSize: 100}, false},
		{options{output: "out.pcapng", interval: 500 * time.Millisecond}, false},
		{options{output: "out.pcapng", maxFiles: 3}, false},
		{options{output: "out.pcapng", fileSize: 1 << 20, maxFiles: -1}, false},
	} {
		err := c.o.validateFiles()
		if (err == nil) != c.ok {
			t.Errorf("%+v: %v", c.o, err)
		}
		if _, usage := err.(usageError); err != nil && !usage {
			t.Errorf("%+v: %v is not a usage error", c.o, err)
		}
	}
}
