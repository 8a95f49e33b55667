package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pathcap/pathcap/internal/testenv"
)

// bpfKinds are the kinds of BPF objects, as bpftool names them.
var bpfKinds = []string{"prog", "map", "link", "btf"}

// bpfIDs are BPF object ids by kind.
type bpfIDs map[string]map[int]bool

func newBPFIDs() bpfIDs {
	ids := bpfIDs{}
	for _, k := range bpfKinds {
		ids[k] = map[int]bool{}
	}
	return ids
}

func (b bpfIDs) String() string {
	var parts []string
	for _, k := range bpfKinds {
		parts = append(parts, fmt.Sprintf("%d %ss %v", len(b[k]), k, slices.Sorted(maps.Keys(b[k]))))
	}
	return strings.Join(parts, ", ")
}

// addHeldBy adds the BPF objects that process pid holds through file
// descriptors, from /proc/PID/fdinfo (a link's fdinfo names its program
// too). Descriptors closed meanwhile are skipped.
func (b bpfIDs) addHeldBy(pid int) {
	infos, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fdinfo/*", pid))
	for _, p := range infos {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			kind, ok := map[string]string{"prog_id": "prog", "map_id": "map", "link_id": "link", "btf_id": "btf"}[k]
			if !ok {
				continue
			}
			if id, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				b[kind][id] = true
			}
		}
	}
}

// bpftoolObject is what this test reads of a `bpftool KIND show -j` entry.
type bpftoolObject struct {
	ID     int   `json:"id"`
	MapIDs []int `json:"map_ids"`
	Kernel bool  `json:"kernel"` // BTF of the kernel or a module
}

// bpftoolShow returns the objects of a kind that exist now.
func bpftoolShow(t *testing.T, kind string) []bpftoolObject {
	t.Helper()
	out, err := exec.Command("bpftool", kind, "show", "-j").Output()
	if err != nil {
		t.Fatalf("bpftool %s show: %v", kind, err)
	}
	var objs []bpftoolObject
	if len(bytes.TrimSpace(out)) > 0 {
		if err := json.Unmarshal(out, &objs); err != nil {
			t.Fatalf("bpftool %s show -j: %v", kind, err)
		}
	}
	return objs
}

// liveBPF returns the ids of every BPF object that exists now, the
// kernel's own BTF left out.
func liveBPF(t *testing.T) bpfIDs {
	t.Helper()
	ids := newBPFIDs()
	for _, k := range bpfKinds {
		for _, o := range bpftoolShow(t, k) {
			if !o.Kernel {
				ids[k][o.ID] = true
			}
		}
	}
	return ids
}

// addProgMaps adds the maps that the programs in b use (bpftool), such as
// each program's own constants, which no descriptor of the process holds.
func (b bpfIDs) addProgMaps(t *testing.T) {
	t.Helper()
	for _, p := range bpftoolShow(t, "prog") {
		if b["prog"][p.ID] {
			for _, m := range p.MapIDs {
				b["map"][m] = true
			}
		}
	}
	live := liveBPF(t)
	for id := range b["btf"] {
		if !live["btf"][id] {
			delete(b["btf"], id) // the kernel's BTF, or gone already
		}
	}
}

// traceState is what outlives a process if it leaves something behind
// outside BPF ids: tracefs probe events and bpffs pins.
func traceState(t *testing.T) []string {
	t.Helper()
	var state []string
	for _, f := range []string{"/sys/kernel/tracing/kprobe_events", "/sys/kernel/tracing/uprobe_events",
		"/sys/kernel/debug/tracing/kprobe_events", "/sys/kernel/debug/tracing/uprobe_events"} {
		if b, err := os.ReadFile(f); err == nil {
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if line != "" {
					state = append(state, f+": "+line)
				}
			}
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		// ... mount point (field 5) ... " - " fstype ...
		pre, post, ok := strings.Cut(line, " - ")
		fields := strings.Fields(pre)
		if !ok || len(fields) < 5 || !strings.HasPrefix(post, "bpf ") {
			continue
		}
		_ = filepath.WalkDir(fields[4], func(p string, d fs.DirEntry, err error) error {
			if err == nil && p != fields[4] {
				state = append(state, "pinned: "+p)
			}
			return nil
		})
	}
	return state
}

// checkGone waits until no object of held exists any more (the kernel
// frees them after a grace period) and no tracefs probe event or bpffs
// pin appeared since before; it fails t with what is left after 10 s.
func checkGone(t *testing.T, held bpfIDs, before []string) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		left = left[:0]
		live := liveBPF(t)
		for _, k := range bpfKinds {
			for id := range held[k] {
				if live[k][id] {
					left = append(left, fmt.Sprintf("%s %d", k, id))
				}
			}
		}
		for _, s := range traceState(t) {
			if !slices.Contains(before, s) {
				left = append(left, s)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("left behind 10 s after record ended: %s", strings.Join(left, "; "))
	}
	out, err := exec.Command("bpftool", "perf", "show", "-j").Output()
	if err == nil && bytes.Contains(out, []byte(`"prog_id"`)) {
		var attached []struct {
			PID    int `json:"pid"`
			ProgID int `json:"prog_id"`
		}
		if json.Unmarshal(out, &attached) == nil {
			for _, a := range attached {
				if held["prog"][a.ProgID] {
					t.Errorf("program %d still attached through a perf event of pid %d", a.ProgID, a.PID)
				}
			}
		}
	}
}

// TestRecordLeavesNoBPFObjects checks that no BPF program, map, link or
// BTF object of record outlives it, nor a tracefs probe event or a bpffs
// pin: after a clean exit (SIGINT), after SIGKILL, and after attaching
// failed half way, for lack of file descriptors in the middle of the
// tracepoints, and at a function backend this kernel refuses after the
// tracepoints were attached. The objects are those the record process held
// (its /proc/PID/fdinfo) and the maps of its programs, so tests running
// beside this one do not disturb it.
func TestRecordLeavesNoBPFObjects(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "bpftool")
	bash := testenv.RequireTool(t, "bash")
	bin := testenv.BuildCommand(t, "record")

	// running: start, wait for ready, collect what the process holds, end it.
	for _, end := range []struct {
		name   string
		signal syscall.Signal
	}{{"clean exit", syscall.SIGINT}, {"SIGKILL", syscall.SIGKILL}} {
		t.Run(end.name, func(t *testing.T) {
			before := traceState(t)
			rec := startRecord(t, bin, "--hooks", "net_dev_queue,netif_receive_skb")
			held := newBPFIDs()
			held.addHeldBy(rec.cmd.Process.Pid)
			held.addProgMaps(t)
			if len(held["prog"]) < 2 || len(held["link"]) < 2 || len(held["map"]) < 5 {
				t.Fatalf("record holds too little: %v", held)
			}
			t.Logf("record holds %v", held)
			// Traffic on lo, then a pause for the writer's flush (every
			// 100 ms): what was flushed must survive even SIGKILL.
			testenv.Run(t, "ping", "-c", "2", "-i", "0.2", "127.0.0.1")
			time.Sleep(500 * time.Millisecond)
			if err := rec.cmd.Process.Signal(end.signal); err != nil {
				t.Fatal(err)
			}
			err := rec.cmd.Wait()
			if end.signal == syscall.SIGINT && err != nil {
				t.Fatalf("record after SIGINT: %v\n%s", err, rec.stderr.String())
			}
			checkGone(t, held, before)
			packets, tail := readablePackets(t, rec.file)
			if packets < 4 || (end.signal == syscall.SIGINT && tail != nil) {
				t.Errorf("%d packet blocks readable after %s (then %v), want the pings' 4 or more", packets, end.name, tail)
			}
		})
	}

	// failing: run a record that fails while attaching, collecting the
	// objects it holds every few milliseconds.
	for _, tc := range []struct {
		name string
		cmd  func(out string) *exec.Cmd
		want string // in the message
	}{{
		name: "attach fails half way: no file descriptor left",
		// The programs are all loaded before the first is attached:
		// the limit is one under which the loads succeed and the
		// attachments run out.
		cmd: func(out string) *exec.Cmd {
			return exec.Command(bash, "-c", fmt.Sprintf(`ulimit -n %d && exec "$@"`, halfWayLimit(t, bash, bin)), "bash", bin, "--backend", "tracepoint", "-w", out, "--duration", "60s")
		},
		want: "attach hook",
	}, {
		name: "attach fails half way: the function backend after the tracepoints",
		cmd: func(out string) *exec.Cmd {
			return exec.Command(bin, "--backend", "fentry", "--functions", "^ip_rcv$", "--hooks", "net_dev_queue,netif_receive_skb", "-w", out, "--duration", "60s")
		},
		want: "attach backend fentry",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			before := traceState(t)
			out := filepath.Join(t.TempDir(), "rec.pcapng")
			cmd := tc.cmd(out)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			held := newBPFIDs()
			var err error
		sample:
			for deadline := time.After(60 * time.Second); ; {
				held.addHeldBy(cmd.Process.Pid)
				select {
				case err = <-done:
					break sample
				case <-deadline:
					_ = cmd.Process.Kill()
					t.Fatalf("record still runs after 60 s:\n%s", stderr.String())
				case <-time.After(5 * time.Millisecond):
				}
			}
			if err == nil {
				if strings.Contains(tc.name, "backend") {
					t.Skipf("the fentry backend attaches on this kernel: no failure to provoke:\n%s", stderr.String())
				}
				t.Fatalf("record did not fail:\n%s", stderr.String())
			}
			t.Logf("record: %v: %s", err, strings.TrimSpace(stderr.String()))
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr lacks %q", tc.want)
			}
			// Half way: programs were loaded, and the message says that
			// an attachment failed. The links made before it live for
			// a few milliseconds only and are often gone before a
			// sample sees them: then the system-wide checks below
			// (the kernel's tracing state, bpftool perf show) are what
			// shows that none is left.
			if len(held["prog"]) < 2 {
				t.Fatalf("record failed before loading its programs (seen: %v): not half way", held)
			}
			if len(held["link"]) == 0 {
				t.Logf("no link sampled while record attached: they lived less than the 5 ms between samples")
			}
			t.Logf("record held, while attaching: %v", held)
			checkGone(t, held, before)
			if _, err := os.Stat(out); err == nil {
				t.Errorf("the output of the failed recording was left: %s", out)
			}
		})
	}
}

// halfWayLimit returns an open-file limit under which record, with every
// tracepoint, loads its programs and then runs out of descriptors while
// attaching them (the number depends on the kernel's tracepoints and on
// how many maps each concurrent load clones for a moment): it tries
// limits from 48 up in steps of 4. The window between the loads' peak and
// what the attachments need is narrower than it looks (one descriptor
// per hook, but the concurrent loads hold clones of the shared maps at
// their peak): steps of 16 stepped over it once the netfilter and
// fingerprint maps were added.
func halfWayLimit(t *testing.T, bash, bin string) int {
	t.Helper()
	// The largest limit that still fails while attaching: at the
	// smallest one the first attachment may fail, and then no link was
	// made (the loads open descriptors on goroutines, so the numbers
	// vary a little from run to run).
	var last, found string
	best := 0
	for n := 48; n <= 512; n += 4 {
		out, err := exec.Command(bash, "-c", fmt.Sprintf(`ulimit -n %d && exec "$@"`, n), "bash", bin, "--backend", "tracepoint", "-w", "/dev/null", "--duration", "1ms").CombinedOutput()
		if err == nil {
			break
		}
		last = string(out)
		if strings.Contains(last, "attach hook") && strings.Contains(last, "too many open files") {
			best, found = n, strings.TrimSpace(last)
		}
	}
	if best == 0 {
		t.Fatalf("no open-file limit makes record fail while attaching; last failure: %s", last)
	}
	t.Logf("open-file limit %d: %s", best, found)
	return best
}
