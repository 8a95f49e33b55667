package main

import (
	"bytes"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestTcpdumpOrder(t *testing.T) {
	app := newApp()
	for _, tc := range []struct{ in, want string }{
		{"record tcp port 80 -w out.pcapng -c 10", "record -w out.pcapng -c 10 tcp port 80"},
		{"record -w out.pcapng tcp port 80", "record -w out.pcapng tcp port 80"},
		{"record icmp --track=false --snaplen 64", "record --track=false --snaplen 64 icmp"},
		{"record icmp --track -i eth0", "record --track -i eth0 icmp"},
		{"record host 10.0.0.1 -- -c", "record -- host 10.0.0.1 -c"},
		{"record check --json", "record check --json"},
		{"record --nope icmp", "record --nope icmp"},
		{"record icmp --nope", "record --nope icmp"},
		{"record ip[8] = -1 -c 5", "record -c 5 -- ip[8] = -1"},
		{"record -w - udp -c", "record -w - -c udp"},
		{"record", "record"},
	} {
		got := strings.Join(tcpdumpOrder(app, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestOptionsAfterExpression runs the real command line parser: flags
// after the expression take effect (a bad snap length is reported as
// such, not compiled into the filter).
func TestOptionsAfterExpression(t *testing.T) {
	app := newApp()
	var stderr bytes.Buffer
	app.Writer, app.ErrWriter = &stderr, &stderr
	args := strings.Fields("record tcp port 80 -s 0 -w out.pcapng")
	err := app.Run(tcpdumpOrder(app, args))
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "snap length 0") {
		t.Fatalf("got %v, want the snap length usage error", err)
	}
	if slices.Contains(tcpdumpOrder(app, args)[1:3], "tcp") {
		t.Errorf("expression not moved after the flags")
	}
}

// TestCompletionScript checks that record's completion script is valid
// bash and completes a flag and its values.
func TestCompletionScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	if err := app.Run([]string{"record", "completion", "bash"}); err != nil {
		t.Fatal(err)
	}
	prog := out.String() + "\nCOMP_WORDS=(record --backend kp); COMP_CWORD=2; _pathcap_record; echo \"${COMPREPLY[@]}\"\n"
	got, err := exec.Command(bash, "--norc", "-c", prog).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, got)
	}
	if strings.TrimSpace(string(got)) != "kprobe-multi kprobe" {
		t.Errorf("record --backend kp completes to %q", got)
	}
}
