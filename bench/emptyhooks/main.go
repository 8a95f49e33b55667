// Command emptyhooks attaches an empty BPF program (r0 = 0) to every skb
// tracepoint that record attaches to, and keeps them attached until it is
// interrupted. It is the reference for host impact: what a ping flood
// loses when every hook runs a program that does nothing at all, which no
// recorder can beat.
//
//	emptyhooks [-ready FILE]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

	"github.com/pathcap/pathcap/capture"
)

func main() {
	ready := flag.String("ready", "", "create this file once every program is attached")
	flag.Parse()
	if err := run(*ready); err != nil {
		fmt.Fprintln(os.Stderr, "emptyhooks:", err)
		os.Exit(1)
	}
}

func run(ready string) error {
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("raise memlock limit: %w", err)
	}
	hooks, err := capture.ListHooks()
	if err != nil {
		return err
	}
	var closers []func() error
	defer func() {
		for _, c := range closers {
			_ = c()
		}
	}()
	for _, h := range hooks {
		if h.Kind != capture.HookTracepoint {
			continue
		}
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name:         "empty",
			Type:         ebpf.Tracing,
			AttachType:   ebpf.AttachTraceRawTp,
			AttachTo:     h.Name,
			License:      "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		})
		if err != nil {
			return fmt.Errorf("load empty program for %s: %w", h.Name, err)
		}
		closers = append(closers, prog.Close)
		l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return fmt.Errorf("attach empty program to %s: %w", h.Name, err)
		}
		closers = append(closers, l.Close)
	}
	fmt.Fprintf(os.Stderr, "emptyhooks: %d tracepoints\n", len(closers)/2)
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
