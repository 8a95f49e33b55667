// Command emptyhooks attaches a reference BPF program to every skb
// tracepoint that record attaches to, and keeps them attached until it is
// interrupted. It gives the references for host impact:
//
//   - by default an empty program (r0 = 0): what a ping flood loses when
//     every hook runs a program that does nothing at all, which no recorder
//     can beat;
//
//   - with -floor, the unavoidable work of recording each hit: reserve a
//     ring buffer record of the recorder's size, copy -snaplen packet bytes
//     from the MAC header into it with one bpf_probe_read_kernel, submit it
//     without a wakeup; a goroutine drains the ring, as a reader must.
//
//     emptyhooks [-floor] [-snaplen N] [-ready FILE]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/pathcap/pathcap/bpf"
	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/refprog"
)

func main() {
	ready := flag.String("ready", "", "create this file once every program is attached")
	floor := flag.Bool("floor", false, "attach the floor program (reserve, copy, submit) instead of an empty one")
	snaplen := flag.Int("snaplen", 128, "packet bytes the floor program copies")
	flag.Parse()
	if err := run(*ready, *floor, *snaplen); err != nil {
		fmt.Fprintln(os.Stderr, "emptyhooks:", err)
		os.Exit(1)
	}
}

func run(ready string, floor bool, snaplen int) error {
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("raise memlock limit: %w", err)
	}
	hooks, err := capture.ListHooks()
	if err != nil {
		return err
	}
	var closers []func() error
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
	}()

	var fl *refprog.Floor
	if floor {
		if fl, err = refprog.NewFloor(int(unsafe.Sizeof(bpf.SkbEvent{})), snaplen, capture.DefaultRingBufferSize); err != nil {
			return err
		}
		closers = append(closers, fl.Close)
	}
	attached := 0
	for _, h := range hooks {
		if h.Kind != capture.HookTracepoint {
			continue
		}
		var prog *ebpf.Program
		if fl != nil {
			prog, err = fl.Program(h.Name, h.SKBArg)
		} else {
			prog, err = refprog.Empty(h.Name)
		}
		if err != nil {
			return err
		}
		closers = append(closers, prog.Close)
		l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return fmt.Errorf("attach program to %s: %w", h.Name, err)
		}
		closers = append(closers, l.Close)
		attached++
	}

	done := make(chan struct{})
	if fl != nil {
		rd, err := ringbuf.NewReader(fl.Ring)
		if err != nil {
			return fmt.Errorf("open ring buffer reader: %w", err)
		}
		go drain(rd, done)
		defer func() { rd.Close(); <-done }()
	} else {
		close(done)
	}
	fmt.Fprintf(os.Stderr, "emptyhooks: %d tracepoints (floor %v)\n", attached, floor)
	if ready != "" {
		if err := os.WriteFile(ready, nil, 0o644); err != nil {
			return err
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}

// drain reads records from rd until it is closed. The floor programs do
// not wake the reader: it polls.
func drain(rd *ringbuf.Reader, done chan<- struct{}) {
	defer close(done)
	var rec ringbuf.Record
	for {
		rd.SetDeadline(time.Now().Add(10 * time.Millisecond))
		err := rd.ReadInto(&rec)
		if errors.Is(err, ringbuf.ErrClosed) {
			return
		}
	}
}
