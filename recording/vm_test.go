package recording_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/kallsyms"
	"github.com/pathcap/pathcap/internal/netdev"
	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/internal/vmtest"
	"github.com/pathcap/pathcap/recording"
)

var updateVM = flag.Bool("update-vm-recordings", false, "record the built-in scenario in the VM kernels into testdata/recordings")

// The backend each VM kernel records with: kprobe-multi where the kernel
// has it, plain kprobes on 6.1, fentry on 5.10 (what auto picks there).
var vmBackends = map[string]string{"5.10": capture.BackendFentry, "6.1": capture.BackendKprobe, "6.12": capture.BackendKprobeMulti}

const (
	envRecordBackend = "PATHCAP_VM_RECORD_BACKEND"
	fileStart        = "pathcap-recording-base64-start"
	fileEnd          = "pathcap-recording-base64-end"
)

// TestVMRecordings records the built-in scenario (ping, UDP to a closed
// port, TCP to a closed port across a veth pair) in each VM kernel with a
// function backend, and writes the files to testdata/recordings, where
// the golden-report test of cmd/analyze checks them. It runs only when
// asked to: go test ./recording -run VMRecordings -update-vm-recordings.
func TestVMRecordings(t *testing.T) {
	if !*updateVM {
		t.Skip("regenerates testdata: run with -update-vm-recordings")
	}
	for _, k := range vmtest.Kernels(t) {
		backend := vmBackends[k.Series]
		if backend == "" {
			continue
		}
		t.Run(k.Series, func(t *testing.T) {
			out := vmtest.RunTestWith(t, k, "github.com/pathcap/pathcap/recording", "^TestInVMRecordScenario$", vmtest.Options{
				Tools: []string{"ping"},
				Env:   map[string]string{envRecordBackend: backend},
			})
			i, j := strings.Index(out, fileStart), strings.Index(out, fileEnd)
			if i < 0 || j < i {
				t.Fatalf("no recording in the VM's output:\n%s", out)
			}
			var b64 strings.Builder
			for _, line := range strings.Split(out[i+len(fileStart):j], "\n") {
				line = strings.TrimSpace(line)
				if line != "" && !strings.ContainsAny(line, " :") {
					b64.WriteString(line)
				}
			}
			data, err := base64.StdEncoding.DecodeString(b64.String())
			if err != nil {
				t.Fatalf("decode the recording: %v", err)
			}
			name := filepath.Join(testenv.ModuleRoot(t), "testdata", "recordings",
				fmt.Sprintf("vm-%s-%s.pcapng", k.Series, backend))
			if err := os.WriteFile(name, data, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s (%d bytes)", name, len(data))
		})
	}
}

// TestInVMRecordScenario runs inside the VM: it records the scenario the
// way record does (capture.Recorder into recording.Writer, device names,
// kallsyms) and prints the file base64-encoded between markers.
func TestInVMRecordScenario(t *testing.T) {
	backend := os.Getenv(envRecordBackend)
	if !vmtest.InVM() || backend == "" {
		t.Skip("runs in the VM, started by TestVMRecordings")
	}
	pair := testenv.NewVethPair(t)
	// Resolve the neighbours first, so that the recorded packets are not
	// held back by ARP.
	pair.Exec(t, pair.NSA, "ping", "-c", "1", "-W", "2", pair.IPB)

	rec, err := capture.NewRecorder(capture.Config{Backend: backend, Snaplen: 128})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	names := netdev.NewResolver()
	defer names.Close()
	table, err := kallsyms.Load()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := recording.NewWriter(&buf, recording.Info{
		Hardware:    "x86_64",
		OS:          "Linux " + os.Getenv(vmtest.EnvKernel),
		Application: "pathcap record (built-in scenario, backend " + backend + ")",
		Comments:    []string{"pathcap recording of the built-in scenario in a VM, backend " + backend},
		Snaplen:     128,
	}, 64<<10, names, symbols{table})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var runErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, runErr = recording.Run(ctx, rec, w, nil, recording.RunOptions{})
	}()
	time.Sleep(200 * time.Millisecond)

	pair.Exec(t, pair.NSA, "ping", "-c", "3", "-i", "0.2", "-W", "2", pair.IPB)
	inNetns(t, pair.NSA, func() {
		if c, err := net.Dial("udp", pair.IPB+":9"); err == nil {
			c.Write([]byte("pathcap"))
			c.Close()
		}
		if c, err := net.DialTimeout("tcp", pair.IPB+":81", time.Second); err == nil {
			c.Close()
		}
	})
	time.Sleep(500 * time.Millisecond)
	cancel()
	wg.Wait()
	if runErr != nil {
		t.Fatal(runErr)
	}
	st, _ := rec.Stats()
	t.Logf("backend %s: %d events, %d lost, %d bytes", rec.Backend(), st.Events, st.Lost, buf.Len())
	enc := base64.StdEncoding.EncodeToString(buf.Bytes())
	var out strings.Builder
	out.WriteString("\n" + fileStart + "\n")
	for len(enc) > 0 {
		n := min(len(enc), 76)
		out.WriteString(enc[:n] + "\n")
		enc = enc[n:]
	}
	out.WriteString(fileEnd + "\n")
	os.Stdout.WriteString(out.String())
}

// symbols adapts a kallsyms table to recording.Symbolizer.
type symbols struct{ t *kallsyms.Table }

func (s symbols) AppendSymbol(dst []byte, addr uint64) ([]byte, bool) {
	sym, ok := s.t.Resolve(addr)
	if !ok {
		return dst, false
	}
	return sym.AppendTo(dst), true
}

// inNetns runs fn on a thread that has entered the named namespace; the
// thread is dropped afterwards.
func inNetns(t *testing.T, ns string, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		fn()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatalf("enter netns %s: %v", ns, err)
	}
}
