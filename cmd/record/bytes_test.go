package main

import (
	"strings"
	"testing"

	"github.com/pathcap/pathcap/capture"
)

// TestBytesMode: --bytes all and changed are what they say; auto is
// changed with a function backend asked for by name and all with
// tracepoints only; anything else is a usage error.
func TestBytesMode(t *testing.T) {
	for _, tc := range []struct {
		bytes, backend string
		want           bool
	}{
		{bytesAll, capture.BackendKprobeMulti, false},
		{bytesChanged, capture.BackendTracepoint, true},
		{bytesAuto, capture.BackendTracepoint, false},
		{bytesAuto, capture.BackendKprobeMulti, true},
		{bytesAuto, capture.BackendKprobe, true},
		{bytesAuto, capture.BackendFentry, true},
		{"", capture.BackendTracepoint, false},
	} {
		o := options{bytes: tc.bytes, backend: tc.backend}
		if got := o.bytesChanged(); got != tc.want {
			t.Errorf("--bytes %q --backend %s: changed %v, want %v", tc.bytes, tc.backend, got, tc.want)
		}
	}
	o := options{bytes: "some", backend: capture.BackendAuto, snaplen: 256, probeReads: capture.ProbeReadsAuto}
	if err := o.validate(); err == nil || !strings.Contains(err.Error(), "--bytes") {
		t.Errorf("--bytes some: %v, want an error about --bytes", err)
	}
}
