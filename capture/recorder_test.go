package capture

import (
	"errors"
	"testing"
	"time"

	"github.com/cilium/ebpf/asm"

	"github.com/pathcap/pathcap/internal/vmtest"
)

func TestNewRecorderAllHooks(t *testing.T) {
	requireRoot(t)
	start := time.Now()
	r, err := NewRecorder(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded and attached %d hooks in %v", len(r.Hooks()), time.Since(start))
	start = time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("closed in %v", time.Since(start))
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Backend: "kprobes"},
		{Backend: BackendKprobe, Exit: true},
		{Stack: true, StackDepth: MaxStackDepth + 1},
		{StackDepth: -1},
		{Stack: true, StackDepth: MaxStackDepth, RingBufferSize: 4096},
		{Snaplen: -1},
		{Snaplen: MaxSnaplen + 1},
		{RingBufferSize: 3 << 12},
		{RingBufferSize: 4096, Snaplen: 4096},
	} {
		if _, err := cfg.withDefaults(); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	if _, err := NewRecorder(Config{Backend: "kprobes"}); !errors.Is(err, ErrBackend) {
		t.Errorf("unknown backend: err %v, want ErrBackend", err)
	}
}

// TestBackendUnavailable asks for each function backend by name where the
// kernel allows none of them (the host: no kprobes, fentry refused under
// lockdown), and expects ErrBackend; auto falls back to tracepoints.
func TestBackendUnavailable(t *testing.T) {
	requireRoot(t)
	requireBTF(t)
	if vmtest.InVM() {
		t.Skip("the VM kernels allow function backends")
	}
	for _, b := range []string{BackendKprobeMulti, BackendKprobe, BackendFentry} {
		if err := haveBackend(b, "ip_rcv", nil, nil); err == nil {
			t.Skipf("this kernel allows %s", b)
		}
	}
	for _, b := range []string{BackendKprobeMulti, BackendKprobe, BackendFentry} {
		r, err := NewRecorder(Config{Backend: b, Hooks: []string{"kfree_skb"}, Functions: "^ip_rcv$"})
		if err == nil {
			r.Close()
			t.Errorf("%s: attached", b)
			continue
		}
		if !errors.Is(err, ErrBackend) {
			t.Errorf("%s: err %v, want ErrBackend", b, err)
		}
	}
	r, err := NewRecorder(Config{Hooks: []string{"kfree_skb"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Backend() != BackendTracepoint || r.BackendNote() == "" {
		t.Errorf("auto: backend %q, note %q; want tracepoint with a note", r.Backend(), r.BackendNote())
	}
	t.Logf("auto: %s (%s)", r.Backend(), r.BackendNote())
}

func TestFilterSeam(t *testing.T) {
	p := newVethPair(t)
	reject := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	hooks := []string{"net_dev_queue", "net_dev_xmit"}
	events, _ := recordWhile(t, p, Config{Hooks: hooks, filter: reject}, 0, func() {
		run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "2", p.ipB)
	})
	if len(events) != 0 {
		t.Errorf("filter rejecting everything: %d events, want 0", len(events))
	}

	// Keep IPv4 ICMP only: EtherType 0x0800 at offset 12 and IP protocol 1
	// at 14+9 of the bytes from the MAC header.
	out := func(ins asm.Instruction, skip int16) asm.Instruction {
		ins.Offset = skip
		return ins
	}
	icmp := asm.Instructions{
		asm.Mov.Imm(asm.R0, 0),
		asm.Mov.Reg(asm.R3, asm.R1),
		asm.Add.Imm(asm.R3, 24),
		out(asm.JGT.Reg(asm.R3, asm.R2, ""), 5),
		asm.LoadMem(asm.R3, asm.R1, 12, asm.Half),
		out(asm.JNE.Imm(asm.R3, 0x0008, ""), 3),
		asm.LoadMem(asm.R3, asm.R1, 23, asm.Byte),
		out(asm.JNE.Imm(asm.R3, 1, ""), 1),
		asm.Mov.Imm(asm.R0, 1),
		asm.Return(),
	}
	events, _ = recordWhile(t, p, Config{Hooks: hooks, filter: icmp}, 0, func() {
		run(t, "ip", "netns", "exec", p.nsA, "ping", "-c", "1", "-W", "2", p.ipB)
	})
	if len(events) == 0 {
		t.Fatal("filter keeping ICMP: no events")
	}
	for _, e := range events {
		if ip := e.ipv4(); ip == nil || ip[9] != 1 {
			t.Errorf("filter keeping ICMP: %s recorded %x", e.hook, e.data)
		}
	}
	t.Logf("filter keeping ICMP: %d events", len(events))
}

// TestProgressReports: NewRecorder reports every tracepoint program it
// loads (one per tracepoint, or one per argument layout where the kernel
// lets a program be shared), ending at the total, and never more than the
// total.
func TestProgressReports(t *testing.T) {
	requireRoot(t)
	requireBTF(t)
	var got []Progress
	r, err := NewRecorder(Config{Backend: BackendTracepoint, Progress: func(p Progress) { got = append(got, p) }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(got) == 0 {
		t.Fatal("no progress reported")
	}
	seen := map[int]bool{}
	for _, p := range got {
		if p.Step != stepTracepoints || p.Done < 1 || p.Done > p.Total || seen[p.Done] {
			t.Errorf("report %+v (of %d)", p, len(got))
		}
		seen[p.Done] = true
	}
	last := got[len(got)-1]
	if last.Total != len(r.progs) || len(seen) != last.Total {
		t.Errorf("%d reports, last %+v, for %d programs (%d hooks): want one per program", len(got), last, len(r.progs), len(r.Hooks()))
	}
	t.Logf("%d reports, last %+v", len(got), last)
	checkSharedPrograms(t, r)
}
