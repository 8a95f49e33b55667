// Package bpf holds pathcap's BPF C programs and the Go bindings that bpf2go
// generates from them.
//
// skb.c is the BTF-typed program (tracepoints, fentry, fexit), skbshared.c
// the raw tracepoint program that tracepoints share on Linux 6.10+, kprobe.c the
// kprobe and kprobe-multi programs, xdp.c the program on the entries and
// exits of traced XDP programs; all include common.h, which holds the record
// layout, the maps, the knobs and the recording logic they share.
//
// The generated files (skb_bpfel.go, skb_bpfel.o, skbshared_bpfel.go, skbshared_bpfel.o, kprobe_bpfel.go,
// kprobe_bpfel.o, xdp_bpfel.go, xdp_bpfel.o) are committed, so building pathcap needs no C compiler.
// Run generate.sh after editing a .c or .h file.
package bpf

//go:generate go tool bpf2go -tags linux -target bpfel -type event -type cpu_state Skb skb.c -- -I. -O2 -g -Wall -Werror
//go:generate go tool bpf2go -tags linux -target bpfel SkbShared skbshared.c -- -I. -O2 -g -Wall -Werror
//go:generate go tool bpf2go -tags linux -target bpfel Kprobe kprobe.c -- -I. -O2 -g -Wall -Werror
//go:generate go tool bpf2go -tags linux -target bpfel Xdp xdp.c -- -I. -O2 -g -Wall -Werror
