package recording_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pathcap/pathcap/capture"
	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/kmeta"
	"github.com/pathcap/pathcap/pcapng"
)

// verdictEvents writes, for a tc program, entry and exit events of four
// packets (verdicts TC_ACT_OK, TC_ACT_SHOT, TC_ACT_UNSPEC, TC_ACT_SHOT)
// and returns the file.
func verdictEvents(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := mustWriter(t, &buf)
	prog := &capture.BPFProgram{Type: kmeta.ProgTC, ID: 42, Name: "drop_flow", Tag: "3b185187f1855c4c"}
	entry := capture.Hook{Name: "bpf_prog_3b185187f1855c4c_drop_flow", Kind: capture.HookFentry, Prog: prog}
	exit := entry
	exit.Kind = capture.HookFexit
	frame := bytes.Repeat([]byte{0xab}, 60)
	binary.BigEndian.PutUint16(frame[12:], 0x0800)
	for i, ret := range []int64{kmeta.TCActOK, kmeta.TCActShot, kmeta.TCActUnspec, kmeta.TCActShot} {
		id := uint64(i + 1)
		in := capture.Event{Hook: &entry, Time: t0, PacketID: id, NetNS: 1, Ifindex: 2, Protocol: 0x0800, Len: 60, Data: frame}
		out := in
		out.Hook, out.RetVal, out.HasRetVal = &exit, ret, true
		for _, ev := range []*capture.Event{&in, &out} {
			if err := w.WriteEvent(ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(0, t0); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestVerdictOption(t *testing.T) {
	r, err := pcapng.NewReader(bytes.NewReader(verdictEvents(t)))
	if err != nil {
		t.Fatal(err)
	}
	var verdicts []int64
	for i := 0; ; i++ {
		p, err := r.ReadPacket()
		if err != nil {
			break
		}
		var m kmeta.Event
		if err := kmeta.NewParser().Parse(p.Options.Comments[0], &m); err != nil {
			t.Fatal(err)
		}
		if m.ProgType != kmeta.ProgTC || m.Prog != "drop_flow" || m.ProgID != 42 || m.ProgTag != "3b185187f1855c4c" {
			t.Errorf("event %d: comment %q", i, p.Options.Comments[0])
		}
		if m.Kind == kmeta.KindFentry {
			if len(p.Options.Verdicts) != 0 {
				t.Errorf("event %d: an entry has verdicts %x", i, p.Options.Verdicts)
			}
			continue
		}
		if len(p.Options.Verdicts) != 1 || len(p.Options.Verdicts[0]) != 9 || p.Options.Verdicts[0][0] != pcapng.VerdictLinuxTC {
			t.Fatalf("event %d: verdicts %x", i, p.Options.Verdicts)
		}
		v := int64(binary.LittleEndian.Uint64(p.Options.Verdicts[0][1:]))
		if v != m.RetVal {
			t.Errorf("event %d: verdict %d, ret=%d", i, v, m.RetVal)
		}
		verdicts = append(verdicts, v)
	}
	if want := []int64{0, 2, -1, 2}; !slicesEqual(verdicts, want) {
		t.Errorf("verdicts %v, want %v", verdicts, want)
	}
}

func slicesEqual(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestVerdictInTshark checks that stock tshark shows and filters the
// verdicts: frame.verdict.ebpf_tc on every exit, the value the program
// returned.
func TestVerdictInTshark(t *testing.T) {
	tshark := testenv.RequireTool(t, "tshark")
	f := filepath.Join(t.TempDir(), "v.pcapng")
	if err := os.WriteFile(f, verdictEvents(t), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(filter string) []string {
		var stderr bytes.Buffer
		cmd := exec.Command(tshark, "-r", f, "-Y", filter, "-T", "fields", "-e", "frame.number", "-e", "frame.verdict.ebpf_tc")
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark -Y %s: %v\n%s", filter, err, stderr.Bytes())
		}
		return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(out)), "\t", " "))
	}
	all := run("frame.verdict.ebpf_tc")
	t.Logf("tshark -Y frame.verdict.ebpf_tc: %q", all)
	if len(all) != 8 {
		t.Errorf("tshark shows %d fields of the 4 exits, want 8 (number and verdict each): %q", len(all), all)
	}
	shot := run("frame.verdict.ebpf_tc == 2")
	if len(shot) != 4 || shot[0] != "4" || shot[2] != "8" {
		t.Errorf("tshark -Y 'frame.verdict.ebpf_tc == 2' gives %q, want frames 4 and 8", shot)
	}
}
