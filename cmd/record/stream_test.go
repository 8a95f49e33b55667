package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/pcapng"
)

// TestRecordStreamsToStdout runs record -w - the way "record -w - |
// wireshark -k -i -" does: a reader of the pipe gets the section header at
// once and each event within a fraction of a second, while the recording
// goes on; after SIGTERM the stream ends with the statistics and every BPF
// program is gone.
func TestRecordStreamsToStdout(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.BuildCommand(t, "record")
	pair := testenv.NewVethPair(t)
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(bin, "-w", "-", "--ready-file", ready, "--duration", "60s", "host "+pair.IPB)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	before := onSkbPrograms(t)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	type result struct {
		typ pcapng.BlockType
		at  time.Time
		err error
	}
	blocks := make(chan result, 1024)
	go func() {
		r, err := pcapng.NewReader(bufio.NewReader(stdout))
		if err != nil {
			blocks <- result{err: err}
			close(blocks)
			return
		}
		for {
			typ, err := r.Next()
			blocks <- result{typ: typ, at: time.Now(), err: err}
			if err != nil {
				close(blocks)
				return
			}
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("record did not get ready: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	ours := map[int]bool{}
	for id := range onSkbPrograms(t) {
		if !before[id] {
			ours[id] = true
		}
	}
	if len(ours) == 0 {
		t.Fatal("found no BPF program of the recorder")
	}

	// One ping; its first event must reach the reader quickly although
	// the recorder's buffers are far from full.
	sent := time.Now()
	pair.Exec(t, pair.NSA, "ping", "-c", "1", "-W", "2", pair.IPB)
	var firstPacket time.Time
	timeout := time.After(10 * time.Second)
wait:
	for {
		select {
		case b, ok := <-blocks:
			if !ok || b.err != nil {
				t.Fatalf("stream ended before any event: %v\n%s", b.err, stderr.String())
			}
			if b.typ == pcapng.BlockEnhancedPacket {
				firstPacket = b.at
				break wait
			}
		case <-timeout:
			t.Fatalf("no event on the stream 10 s after the ping")
		}
	}
	// The flush interval is 100 ms, the ring buffer is polled every 50 ms;
	// allow for a loaded machine.
	if d := firstPacket.Sub(sent); d > 2*time.Second {
		t.Errorf("first event reached the pipe %v after the ping", d)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var sawStats bool
	for b := range blocks {
		if b.err != nil {
			if b.err != io.EOF {
				t.Errorf("stream after SIGTERM: %v", b.err)
			}
			break
		}
		if b.typ == pcapng.BlockInterfaceStatistics {
			sawStats = true
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("record after SIGTERM: %v\n%s", err, stderr.String())
	}
	if !sawStats {
		t.Error("the stream ended without interface statistics")
	}
	// Every program the recorder loaded is gone with it (the kernel frees
	// them after an RCU grace period: allow a few seconds).
	var left []int
	for end := time.Now().Add(10 * time.Second); ; {
		left = left[:0]
		now := onSkbPrograms(t)
		for id := range ours {
			if now[id] {
				left = append(left, id)
			}
		}
		if len(left) == 0 || time.Now().After(end) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Errorf("BPF programs %v of the recorder are still loaded 10 s after it exited", left)
	}
}

// onSkbPrograms returns the ids of the loaded BPF programs named on_skb.
func onSkbPrograms(t *testing.T) map[int]bool {
	t.Helper()
	testenv.RequireTool(t, "bpftool")
	out, err := exec.Command("bpftool", "prog", "show", "-j").Output()
	if err != nil {
		t.Fatalf("bpftool prog show: %v", err)
	}
	var progs []struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(out, &progs); err != nil {
		t.Fatalf("bpftool prog show -j: %v", err)
	}
	ids := map[int]bool{}
	for _, p := range progs {
		if p.Name == "on_skb" {
			ids[p.ID] = true
		}
	}
	return ids
}
