package paths

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/pathcap/pathcap/internal/testrec"
)

var update = flag.Bool("update", false, "rewrite the crafted recordings in testdata/crafted")

// testdataFiles are the crafted recordings kept in testdata/crafted (the
// cmd/analyze tests use them), each made by this package's helpers.
func testdataFiles(t *testing.T) map[string]func(name string) {
	evs := scenario()
	cut5 := 0
	for i, e := range evs {
		if e.id == 5 && e.hook == "netif_rx" {
			cut5 = i
		}
	}
	u := udp4Frame("10.9.0.1", "10.9.0.2", 5000, 53, dnsQuery())
	return map[string]func(string){
		// The scenario: every outcome kind, NAT, clones, IPv6,
		// out-of-order events, an id back after the window.
		"scenario.pcapng": func(name string) { writeRecording(t, name, "alpha", evs) },
		// The same recording in three rotated parts, cut inside
		// packets 1 and 5.
		"scenario-part1.pcapng": func(name string) { writeRecording(t, name, "alpha", evs[:4]) },
		"scenario-part2.pcapng": func(name string) { writeRecording(t, name, "alpha", evs[4:cut5]) },
		"scenario-part3.pcapng": func(name string) { writeRecording(t, name, "alpha", evs[cut5:]) },
		// Three UDP packets to a closed port recorded with kernel
		// stacks (record --stack), by the recorder's writer; and the
		// same recording in two rotated parts, the first holding every
		// stack definition.
		"stacks.pcapng": func(name string) { stackRecording(t, name) },
		"stacks-part1.pcapng": func(name string) {
			whole := stackRecording(t, filepath.Join(t.TempDir(), "stacks.pcapng"))
			rotate(t, whole, []string{name, filepath.Join(t.TempDir(), "part2")}, 5)
		},
		"stacks-part2.pcapng": func(name string) {
			whole := stackRecording(t, filepath.Join(t.TempDir(), "stacks.pcapng"))
			rotate(t, whole, []string{filepath.Join(t.TempDir(), "part1"), name}, 5)
		},
		// Another host's recording at the same time whose ids collide
		// with the scenario's (1 and 5).
		"other-host.pcapng": func(name string) {
			writeRecording(t, name, "beta", []ev{
				srv(ev{id: 1, at: ms(1) + us(1), hook: "netif_receive_skb", data: u}),
				srv(ev{id: 1, at: ms(1) + us(9), hook: "kfree_skb", reason: "NO_SOCKET", loc: "__udp4_lib_rcv+0x4bc", data: u}),
				srv(ev{id: 5, at: ms(5) + us(2), hook: "netif_receive_skb", data: u}),
			})
		},
	}
}

// TestTestdata checks that the committed recordings analyze exactly like
// the ones the helpers make now (go test -run TestTestdata -update
// rewrites them).
func TestTestdata(t *testing.T) {
	tmp := t.TempDir()
	for base, write := range testdataFiles(t) {
		committed := testrec.Crafted(t, base)
		if *update {
			write(committed)
			continue
		}
		fresh := filepath.Join(tmp, base)
		write(fresh)
		if _, err := os.Stat(committed); err != nil {
			t.Fatalf("%v (go test ./paths -run TestTestdata -update writes it)", err)
		}
		if got, want := dump(analyze(t, Options{}, nil, committed)), dump(analyze(t, Options{}, nil, fresh)); got != want {
			t.Errorf("%s is out of date (go test ./paths -run TestTestdata -update rewrites it)", committed)
		}
	}
	if *update {
		return
	}
	whole := dump(analyze(t, Options{}, nil, testrec.Crafted(t, "scenario.pcapng")))
	parts := dump(analyze(t, Options{}, nil, testrec.Crafted(t, "scenario-part3.pcapng"), testrec.Crafted(t, "scenario-part1.pcapng"), testrec.Crafted(t, "scenario-part2.pcapng")))
	if whole != parts {
		t.Error("the rotated parts analyze differently from the whole")
	}
	both := analyze(t, Options{}, nil, testrec.Crafted(t, "scenario.pcapng"), testrec.Crafted(t, "other-host.pcapng"))
	if len(both) != 15+2 {
		t.Errorf("scenario and other host: %d packets, want 17", len(both))
	}
}
