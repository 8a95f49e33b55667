package capture

import (
	"errors"
	"testing"
	"time"

	"github.com/cilium/ebpf/asm"
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
		{Backend: "kprobe"},
		{Snaplen: -1},
		{Snaplen: MaxSnaplen + 1},
		{RingBufferSize: 3 << 12},
		{RingBufferSize: 4096, Snaplen: 4096},
	} {
		if _, err := cfg.withDefaults(); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	if _, err := NewRecorder(Config{Backend: "kprobe"}); !errors.Is(err, ErrBackend) {
		t.Errorf("kprobe backend: err %v, want ErrBackend", err)
	}
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
