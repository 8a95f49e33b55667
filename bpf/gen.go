// Package bpf holds pathcap's BPF C programs and the Go bindings that bpf2go
// generates from them.
//
// The generated files (skb_bpfel.go, skb_bpfel.o) are committed, so building
// pathcap needs no C compiler. Run generate.sh after editing a .c file.
package bpf

//go:generate go tool bpf2go -tags linux -target bpfel -type event -type cpu_state Skb skb.c -- -I. -O2 -g -Wall -Werror
