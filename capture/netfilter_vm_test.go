package capture_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	"github.com/pathcap/pathcap/recording"
)

// nftCounterRe finds the packet count of a rule's counter in nft's
// listing.
var nftCounterRe = regexp.MustCompile(`counter packets (\d+)`)

// nftDropCount returns the packets the counter of the drop rule of chain
// input of table inet NAME in namespace ns has counted: the kernel's own
// count, the oracle.
func nftDropCount(t *testing.T, p *testenv.VethPair, ns, table string) int {
	t.Helper()
	out := p.Exec(t, ns, "nft", "list", "chain", "inet", table, "input")
	m := nftCounterRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no counter in nft's listing:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestInVMNetfilter puts an nftables table in B (inet family, a base chain
// on the input hook whose rule counts and drops UDP to port 9999) and
// records with the kprobe and the fentry backend while A sends 6
// datagrams to 9999 and 4 to 7012 (read by a socket in B). Oracles: the
// rule's counter (on 5.10, which keeps counters in a module the VM lacks:
// a socket on 9999 that reads nothing) and the datagrams read. Where the kernel allows fexit on
// nf_tables (Linux 5.11+ with BTF for modules) the exits of nft_do_chain
// carry the chain's names and verdicts: drop exactly as often as the
// counter counted, accept for every datagram read; everywhere, fentry's
// entries of nf_hook_slow carry the input hook and family ip. analyze
// says "by nftables table inet pathcap_nf chain input (hook ip input)" for
// exactly the counted drops, and names no chain where the kernel gives
// no chain.
func TestInVMNetfilter(t *testing.T) {
	if !vmtest.InVM() {
		t.Skip("runs inside a VM (see TestVMFunctionBackends)")
	}
	const table, dropPort, passPort, dropN, passN = "pathcap_nf", 9999, 7012, 6, 4
	p := testenv.NewVethPair(t)
	// Module BTF appeared in Linux 5.11; the VMs' 5.10 has none. Its
	// nftables keeps counters in a module (nft_counter) the VM does not
	// carry: there the oracle is a socket on the dropped port that reads
	// nothing.
	named := !strings.HasPrefix(os.Getenv(vmtest.EnvKernel), "5.10")
	rule := []string{"nft", "add", "rule", "inet", table, "input", "udp", "dport", strconv.Itoa(dropPort), "counter", "drop"}
	if !named {
		rule = slices.Delete(rule, len(rule)-2, len(rule)-1)
	}
	p.Exec(t, p.NSB, "nft", "add", "table", "inet", table)
	p.Exec(t, p.NSB, "nft", "add", "chain", "inet", table, "input", "{ type filter hook input priority 0 ; policy accept ; }")
	p.Exec(t, p.NSB, rule[0], rule[1:]...)
	p.Exec(t, p.NSA, "ping", "-c", "1", "-W", "2", p.IPB)

	enableRunStats(t)
	for _, backend := range []string{capture.BackendKprobe, capture.BackendFentry} {
		t.Run(backend, func(t *testing.T) {
			r, err := capture.NewRecorder(capture.Config{Backend: backend,
				Functions: "^(ip_rcv|nf_hook_slow|ip_local_deliver|__udp4_lib_rcv|kfree_skbmem)$"})
			if err != nil {
				t.Fatalf("record with %s: %v", backend, err)
			}
			defer r.Close()
			hooked := false
			for _, h := range r.Hooks() {
				hooked = hooked || h.NFTChain
			}
			t.Logf("notes: %q; nft_do_chain's exit hooked: %v", r.Notes(), hooked)
			// bpf_probe_read_kernel call sites in what the kernel runs
			// (docs/BACKENDS.md): nft_do_chain's exit reads the chain's
			// handle and table and, once per chain, its names.
			if sites, err := r.ProbeReadSites(); err != nil {
				t.Error(err)
			} else {
				t.Logf("bpf_probe_read_kernel call sites per program kind: %v", sites)
				if named && sites[capture.HookFexit] != 1+2+5 {
					t.Errorf("fexit programs: %d call sites, want 8 (the bytes, the chain's handle and table, its names once)", sites[capture.HookFexit])
				}
			}
			if hooked != named {
				t.Fatalf("nft_do_chain's exit hooked: %v, want %v on Linux %s", hooked, named, os.Getenv(vmtest.EnvKernel))
			}
			if !named && !strings.Contains(strings.Join(r.Notes(), "\n"), "nftables chains are not named") {
				t.Errorf("no note says why chains are not named: %q", r.Notes())
			}
			file := filepath.Join(t.TempDir(), "nf.pcapng")
			f, err := os.Create(file)
			if err != nil {
				t.Fatal(err)
			}
			w, err := recording.NewWriter(f, recording.Info{Hardware: "x86_64", OS: "Linux " + os.Getenv(vmtest.EnvKernel), Application: "pathcap test", Snaplen: capture.DefaultSnaplen}, 0, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			// By packet id: its port (from the hooks with bytes) and what
			// nft_do_chain's exits said; an exit after a free inside the
			// chain has no bytes, only the entry's id.
			type seen struct {
				port          uint16
				drops, accept int
			}
			var mu sync.Mutex
			byID := map[uint64]*seen{}
			hookHits := 0
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- r.Run(ctx, func(e *capture.Event) error {
					if e.NetNS != p.InodeB {
						return w.WriteEvent(e)
					}
					mu.Lock()
					defer mu.Unlock()
					s := byID[e.PacketID]
					if s == nil {
						s = &seen{}
						byID[e.PacketID] = s
					}
					port := udpDstPort(e)
					if port != 0 {
						s.port = port
					}
					switch {
					case e.Hook.NFTChain && e.Hook.Kind == capture.HookFexit:
						if e.NFTTable != table || e.NFTChain != "input" || kmeta.NFFamilyName(e.NFTFamily) != "inet" || e.NFHook != 1 || e.NFProto != 2 {
							t.Errorf("nft_do_chain exit: table %q chain %q family %d hook %d pf %d", e.NFTTable, e.NFTChain, e.NFTFamily, e.NFHook, e.NFProto)
						}
						// Freed inside the chain (Linux 6.4+ and
						// backports): the verdict is NF_STOLEN.
						switch kmeta.NFVerdictName(uint32(e.RetVal)) {
						case kmeta.NFDrop, "stolen":
							s.drops++
						case kmeta.NFAccept:
							s.accept++
						}
					case e.Hook.NFState && e.Hook.Kind == capture.HookFentry && (port == dropPort || port == passPort):
						if !e.NF || e.NFHook != 1 || e.NFProto != 2 {
							t.Errorf("nf_hook_slow: netfilter fields %v hook %d pf %d, want hook 1 (input) pf 2 (ip)", e.NF, e.NFHook, e.NFProto)
						}
						hookHits++
					}
					return w.WriteEvent(e)
				})
			}()
			before := 0
			if named {
				before = nftDropCount(t, p, p.NSB, table)
			}
			var ln, dropLn net.PacketConn
			if err := testenv.InNamespace(p.NSB, func() error {
				var err error
				if ln, err = net.ListenPacket("udp", net.JoinHostPort(p.IPB, fmt.Sprint(passPort))); err != nil {
					return err
				}
				dropLn, err = net.ListenPacket("udp", net.JoinHostPort(p.IPB, fmt.Sprint(dropPort)))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			defer dropLn.Close()
			sendUDPTo(t, p.NSA, net.JoinHostPort(p.IPB, fmt.Sprint(dropPort)), dropN)
			sendUDPTo(t, p.NSA, net.JoinHostPort(p.IPB, fmt.Sprint(passPort)), passN)
			buf := make([]byte, 100)
			read := 0
			for range passN {
				ln.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, _, err := ln.ReadFrom(buf); err != nil {
					t.Fatalf("read the passed datagrams: %v", err)
				}
				read++
			}
			time.Sleep(300 * time.Millisecond)
			// The rule dropped every datagram to its port: the socket
			// there reads none.
			dropLn.SetReadDeadline(time.Now())
			if _, _, err := dropLn.ReadFrom(buf); err == nil {
				t.Fatalf("a datagram to :%d reached its socket: the rule did not drop it", dropPort)
			}
			counted := dropN
			if named {
				counted = nftDropCount(t, p, p.NSB, table) - before
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			logRunCosts(t, r, backend, func(h *capture.Hook) bool { return h.NFTChain || h.NFState })
			if err := w.Close(0, time.Now()); err != nil {
				t.Fatal(err)
			}
			f.Close()
			chainDrops, chainAccepts := 0, 0
			for _, s := range byID {
				switch {
				case s.port == dropPort && s.drops == 1 && s.accept == 0:
					chainDrops++
				case s.port == passPort && s.accept == 1 && s.drops == 0:
					chainAccepts++
				case s.drops+s.accept > 0:
					t.Errorf("a packet to port %d: %d drop and %d accept verdicts", s.port, s.drops, s.accept)
				}
			}
			oracle := fmt.Sprintf("rule counter +%d", counted)
			if !named {
				oracle = fmt.Sprintf("the socket on :%d read none", dropPort)
			}
			t.Logf("%s %s: sent %d to :%d, %d to :%d; %s, read %d; recorded: nft_do_chain %d drop, %d accept; nf_hook_slow %d with hook input",
				os.Getenv(vmtest.EnvKernel), backend, dropN, dropPort, passN, passPort, oracle, read, chainDrops, chainAccepts, hookHits)
			if counted != dropN || read != passN {
				t.Fatalf("oracles disagree with what was sent: counter %d of %d, read %d of %d", counted, dropN, read, passN)
			}
			// The kprobe program does not read nf_hook_slow's hook state
			// (docs/BACKENDS.md); fentry's nf_hook_slow carries it.
			if backend == capture.BackendFentry && hookHits < dropN+passN {
				t.Errorf("%d nf_hook_slow events of the datagrams carry the input hook, want %d", hookHits, dropN+passN)
			}
			if named && (chainDrops != counted || chainAccepts != read) {
				t.Errorf("nft_do_chain exits: %d drop, %d accept; the counter counted %d, %d were read", chainDrops, chainAccepts, counted, read)
			}

			in, err := paths.Open([]string{file})
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			byChain, example := 0, ""
			if err := paths.Process(in, paths.Options{}, nil, func(pk *paths.Packet) error {
				port := uint16(0)
				for _, h := range pk.Hops {
					if h.Flow.DstPort == dropPort || h.Flow.DstPort == passPort {
						port = h.Flow.DstPort
					}
				}
				o := &pk.Outcome
				text := render.OutcomeText(o)
				switch {
				case port == dropPort && o.Kind == paths.Dropped && o.NFTTable == table && o.NFTChain == "input" && o.NFHook == "input":
					byChain++
					example = text
				case port == dropPort && o.Kind == paths.Dropped && !named && o.NFTTable == "":
					example = text
				case port == dropPort:
					var hops []string
					for _, h := range pk.Hops {
						hops = append(hops, h.Meta.Kind+":"+h.Meta.Hook+" "+h.Meta.NFVerdict)
					}
					t.Errorf("packet %d to :%d: %s; hops %q", pk.ID, port, text, hops)
				case port == passPort && o.Kind == paths.Dropped:
					t.Errorf("packet %d to :%d, which was read: %s", pk.ID, port, text)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			t.Logf("analyze: %d drops put on the chain, e.g. %q", byChain, example)
			if named && byChain != counted {
				t.Errorf("analyze put %d drops on chain inet %s input, the counter counted %d", byChain, table, counted)
			}
		})
	}
}

// enableRunStats turns the kernel's BPF run statistics on until t ends
// (each program run then costs two clock reads more).
func enableRunStats(t *testing.T) {
	t.Helper()
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Fatalf("enable BPF statistics: %v", err)
	}
	t.Cleanup(func() { c.Close() })
}

// logRunCosts logs the runs and mean ns per run of the programs of r's
// hooks that pick selects (docs/BACKENDS.md quotes these lines).
func logRunCosts(t *testing.T, r *capture.Recorder, what string, pick func(*capture.Hook) bool) {
	t.Helper()
	var parts []string
	for _, h := range r.Hooks() {
		if !pick(&h) {
			continue
		}
		runs, total, ok := r.HookRuns(&h)
		if !ok || runs == 0 {
			parts = append(parts, fmt.Sprintf("%s:%s no runs counted", h.Kind, h.Name))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s:%s %d runs, %d ns/run", h.Kind, h.Name, runs, total.Nanoseconds()/int64(runs)))
	}
	// For scale (the VMs emulate the CPU, so only ratios mean something):
	// the program of a tracepoint every received packet passes.
	for _, h := range r.Hooks() {
		if h.Kind == capture.HookTracepoint && h.Name == "netif_receive_skb" {
			if runs, total, ok := r.HookRuns(&h); ok && runs > 0 {
				parts = append(parts, fmt.Sprintf("for scale tp:netif_receive_skb %d runs, %d ns/run", runs, total.Nanoseconds()/int64(runs)))
			}
		}
	}
	t.Logf("cost on %s (%s): %s", os.Getenv(vmtest.EnvKernel), what, strings.Join(parts, "; "))
}
