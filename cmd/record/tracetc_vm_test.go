package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/internal/vmtest"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/paths"
	"github.com/pathcap/pathcap/paths/render"
)

// envTCObject names, in the VM, the object of capture/testdata/tc_drop_flow.c
// that TestVMTraceTCRecord compiled on the host.
const envTCObject = "PATHCAP_VM_TC_OBJECT"

// TestVMTraceTCRecord runs TestInVMTraceTCRecord in the 6.12 VM: record
// --trace-tc end to end, the command's own code path, and the analysis of
// its file.
func TestVMTraceTCRecord(t *testing.T) {
	clang := testenv.RequireTool(t, "clang")
	ks := vmtest.KernelsSeries(t, "6.12")
	dir := filepath.Join(t.TempDir(), "tcobj")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-c", "../../capture/testdata/tc_drop_flow.c", "-o", filepath.Join(dir, "tc_drop_flow.o")}
	if runtime.GOARCH == "amd64" {
		args = append(args, "-I/usr/include/x86_64-linux-gnu")
	}
	if out, err := exec.Command(clang, args...).CombinedOutput(); err != nil {
		t.Fatalf("clang: %v\n%s", err, out)
	}
	for _, k := range ks {
		out := vmtest.RunTestWith(t, k, "github.com/pathcap/pathcap/cmd/record", "^TestInVMTraceTCRecord$", vmtest.Options{
			Tools: []string{"tc"},
			Env:   map[string]string{envTCObject: "/work/tcobj/tc_drop_flow.o"},
			Dirs:  []string{dir},
		})
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "tracetc_vm_test.go") || strings.HasPrefix(strings.TrimSpace(line), "--- ") {
				t.Log(strings.TrimSpace(line))
			}
		}
	}
}

// TestInVMTraceTCRecord attaches tc_drop_flow to a veth's ingress, runs
// record --trace-tc -w FILE (its run function, as the command line does)
// while 6 UDP datagrams go to the dropped port and 4 to another, and
// analyzes the file: exactly the datagrams the clsact qdisc dropped are
// "dropped (TC_INGRESS) by tc program drop_flow", no other packet of the
// flows is dropped, and every exit carries its verdict.
func TestInVMTraceTCRecord(t *testing.T) {
	if !vmtest.InVM() {
		t.Skip("runs inside a VM, from TestVMTraceTCRecord")
	}
	const dropPort, passPort, dropN, passN = 9999, 7012, 6, 4
	p := testenv.NewVethPair(t)
	spec, err := ebpf.LoadCollectionSpec(os.Getenv(envTCObject))
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Variables["drop_port"].Set(uint16(dropPort)); err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	bpffs := t.TempDir()
	if err := unix.Mount("bpf", bpffs, "bpf", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(bpffs, unix.MNT_DETACH)
	pin := filepath.Join(bpffs, "drop")
	if err := coll.Programs["drop_flow"].Pin(pin); err != nil {
		t.Fatal(err)
	}
	p.Exec(t, p.NSB, "tc", "qdisc", "add", "dev", p.DevB, "clsact")
	p.Exec(t, p.NSB, "tc", "filter", "add", "dev", p.DevB, "ingress", "prio", "1", "bpf", "object-pinned", pin, "direct-action")
	p.Exec(t, p.NSA, "ping", "-c", "1", "-W", "2", p.IPB)

	dir := t.TempDir()
	file, ready := filepath.Join(dir, "tc.pcapng"), filepath.Join(dir, "ready")
	o := options{output: file, snaplen: capture.DefaultSnaplen, backend: capture.BackendTracepoint, readyFile: ready,
		ringSize: capture.DefaultRingBufferSize, track: true, stackDepth: capture.DefaultStackDepth,
		probeReads: capture.ProbeReadsAuto, traceTC: true, bpfProgs: []string{"drop_flow"}}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, o, &bytes.Buffer{}, &stderr) }()
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("record --trace-tc ended before it was ready: %v\n%s", err, stderr.String())
		default:
		}
		if time.Since(start) > 2*time.Minute {
			cancel()
			t.Fatalf("record --trace-tc not ready after 2 minutes:\n%s", stderr.String())
		}
	}
	before := qdiscDropsOf(t, p)
	var ln net.PacketConn
	if err := testenv.InNamespace(p.NSB, func() error {
		var err error
		ln, err = net.ListenPacket("udp", net.JoinHostPort(p.IPB, fmt.Sprint(passPort)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, d := range []struct{ port, n int }{{dropPort, dropN}, {passPort, passN}} {
		if err := testenv.InNamespace(p.NSA, func() error {
			c, err := net.Dial("udp", net.JoinHostPort(p.IPB, fmt.Sprint(d.port)))
			if err != nil {
				return err
			}
			defer c.Close()
			for range d.n {
				if _, err := c.Write([]byte("pathcap")); err != nil {
					return err
				}
				time.Sleep(20 * time.Millisecond)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 100)
	for range passN {
		ln.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := ln.ReadFrom(buf); err != nil {
			t.Fatalf("read the passed datagrams: %v", err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	drops := qdiscDropsOf(t, p) - before
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("record --trace-tc: %v\n%s", err, stderr.String())
	}
	t.Logf("record's messages:\n%s", stderr.String())

	in, err := paths.Open([]string{file})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	byProgram, otherDrops, verdicts := 0, 0, 0
	var example string
	if err := paths.Process(in, paths.Options{}, nil, func(pk *paths.Packet) error {
		port := uint16(0)
		for _, h := range pk.Hops {
			if h.Flow.DstPort == dropPort || h.Flow.DstPort == passPort {
				port = h.Flow.DstPort
			}
			if h.Meta.ProgType == kmeta.ProgTC && h.Meta.HasRetVal {
				verdicts++
			}
		}
		if port == 0 {
			return nil
		}
		o := &pk.Outcome
		switch {
		case o.Kind == paths.Dropped && o.Program == "drop_flow" && port == dropPort:
			byProgram++
			example = render.OutcomeText(o)
		case o.Kind == paths.Dropped:
			otherDrops++
			t.Errorf("packet %d to port %d: %s", pk.ID, port, render.OutcomeText(o))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: clsact qdisc drops %d; analyze: %d packets %q, %d other drops; %d tc verdicts recorded", os.Getenv(vmtest.EnvKernel), drops, byProgram, example, otherDrops, verdicts)
	if drops != dropN || int64(byProgram) != drops {
		t.Errorf("analyze found %d packets dropped by the tc program, the qdisc dropped %d of %d sent", byProgram, drops, dropN)
	}
	if example != "" && !strings.HasPrefix(example, "dropped (TC_INGRESS) by tc program drop_flow") {
		t.Errorf("outcome text %q", example)
	}
	if verdicts < dropN+passN {
		t.Errorf("%d verdicts recorded, want at least %d", verdicts, dropN+passN)
	}
}

// qdiscDropsOf returns the drops of the clsact qdisc on B's device.
func qdiscDropsOf(t *testing.T, p *testenv.VethPair) int64 {
	t.Helper()
	out := p.Exec(t, p.NSB, "tc", "-s", "-j", "qdisc", "show", "dev", p.DevB)
	var qs []struct {
		Kind  string `json:"kind"`
		Drops *int64 `json:"drops"`
	}
	if err := json.Unmarshal([]byte(out), &qs); err != nil {
		t.Fatalf("parse tc -j qdisc output: %v\n%s", err, out)
	}
	for _, q := range qs {
		if q.Kind == "clsact" && q.Drops != nil {
			return *q.Drops
		}
	}
	t.Fatalf("no clsact qdisc with statistics on %s:\n%s", p.DevB, out)
	return 0
}
