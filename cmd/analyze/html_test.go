package main

// Tests of analyze html and analyze graph; the page is loaded in headless
// Chromium (Debian's chromium package), the DOT text drawn by Graphviz.

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/pathcap/pathcap/internal/pagecheck"
	"github.com/pathcap/pathcap/internal/testenv"
	"github.com/pathcap/pathcap/internal/testrec"
)

var docsScreenshot = flag.Bool("docs-screenshot", false, "write docs/analyze-html.png, the screenshot of the demo recording's page")

// runApp runs analyze in-process and returns its output and exit status.
func runApp(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	app := newApp(&out, &errb)
	err := app.Run(withDefaultCommand(app, append([]string{"analyze"}, args...)))
	code := exitCode(err, &errb)
	if strings.Contains(errb.String(), "panic") {
		t.Fatalf("analyze %q panicked:\n%s", args, errb.String())
	}
	return out.String(), errb.String(), code
}

func TestHTMLAndGraphUsage(t *testing.T) {
	rec := testrec.Recording(t, "host-veth.pcapng")
	out := filepath.Join(t.TempDir(), "x")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"html", rec}, "html needs -o FILE"},
		{[]string{"html", "-o", out}, "no input files"},
		{[]string{"html", "-o", out, "--collapse", "maybe", rec}, `--collapse "maybe"`},
		{[]string{"html", "-o", out, "--packets", "0", rec}, "--packets 0"},
		{[]string{"graph", "--format", "png", rec}, `--format "png": want dot or svg`},
		{[]string{"graph", "--collapse", "x", rec}, `--collapse "x"`},
		{[]string{"graph"}, "no input files"},
	} {
		_, stderr, code := runApp(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("analyze %q: exit %d, stderr %q; want 2 and one line with %q", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed run wrote its output")
	}
	_, stderr, code := runApp(t, "html", "-o", out, filepath.Join(t.TempDir(), "missing.pcapng"))
	if code != 1 || !strings.Contains(stderr, "missing.pcapng") {
		t.Errorf("missing input: exit %d, %q", code, stderr)
	}
}

// TestHTMLStatsEqualStatsJSON checks that the page holds the output of
// stats --json with the same options and selection.
func TestHTMLStatsEqualStatsJSON(t *testing.T) {
	recs, _ := filepath.Glob(testrec.Recording(t, "*.pcapng"))
	for _, rec := range recs {
		for _, sel := range [][]string{nil, {"--outcome", "dropped,delivered"}, {"--top", "3", "--stacks", "0"}} {
			t.Run(filepath.Base(rec)+strings.Join(sel, ""), func(t *testing.T) {
				page := filepath.Join(t.TempDir(), "r.html")
				args := append([]string{"html", "-o", page}, sel...)
				if _, stderr, code := runApp(t, append(args, rec)...); code != 0 {
					t.Fatalf("html: exit %d: %s", code, stderr)
				}
				statsArgs := append([]string{"stats", "--json", "--stacks", "3"}, sel...)
				stats, stderr, code := runApp(t, append(statsArgs, rec)...)
				if code != 0 {
					t.Fatalf("stats: exit %d: %s", code, stderr)
				}
				b, err := os.ReadFile(page)
				if err != nil {
					t.Fatal(err)
				}
				doc, err := pagecheck.Parse(b)
				if err != nil {
					t.Fatal(err)
				}
				embedded, ok := pagecheck.Embedded(doc, "pathcap-stats")
				if !ok {
					t.Fatal("no statistics in the page")
				}
				var got, want any
				if err := json.Unmarshal(embedded, &got); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal([]byte(stats), &want); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("page statistics differ from stats --json:\n page %s\nstats %s", embedded, stats)
				}
				for _, p := range pagecheck.Compare([]byte(stats), pagecheck.Stats(doc)) {
					t.Error(p)
				}
			})
		}
	}
}

// chromium returns Chromium's command, skipping (failing in CI) without it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.SkipOrFail(t, "chromium not installed (make setup installs Debian's chromium package)")
	return ""
}

// headless runs Chromium without a display on a page; it returns its
// standard output and error.
func headless(t *testing.T, bin string, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
		"--disable-dev-shm-usage", "--disable-extensions", "--user-data-dir=" + t.TempDir(),
		"--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"}, args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %q: %v\n%s", args, err, errb.String())
	}
	return out.String(), errb.String()
}

// consoleMessages returns what the page wrote to the console (the page
// writes nothing: every message is an error) and its uncaught exceptions.
func consoleMessages(stderr string) []string {
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, ":CONSOLE") || strings.Contains(line, "Uncaught") {
			out = append(out, line)
		}
	}
	return out
}

// explorerData is what the tests read of the explorer's packets.
type explorerData struct {
	Packets uint64 `json:"packets"`
	Shown   int    `json:"shown"`
	List    []struct {
		ID     uint64  `json:"id"`
		Hops   [][]any `json:"hops"`
		Clones []struct {
			ID uint64 `json:"id"`
		} `json:"clones"`
	} `json:"list"`
}

// TestHTMLInBrowser loads pages in headless Chromium: the script runs
// without a console message or an uncaught exception, the page's parts
// are there, every figure in the DOM is the one stats --json gives, and a
// packet opened by its address shows its hops and clones.
func TestHTMLInBrowser(t *testing.T) {
	bin := chromium(t)
	for _, c := range []struct {
		name, rec string
		args      []string
	}{
		{"demo", testrec.Recording(t, "host-veth.pcapng"), nil},
		{"functions", testrec.Recording(t, "vm-6.12-kprobe-multi.pcapng"), nil},
		{"sampled", testrec.Recording(t, "vm-6.1-kprobe.pcapng"), []string{"--packets", "5"}},
		{"stacks", testrec.Crafted(t, "stacks.pcapng"), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			page := filepath.Join(dir, "report.html")
			if _, stderr, code := runApp(t, append(append([]string{"html", "-o", page}, c.args...), c.rec)...); code != 0 {
				t.Fatalf("html: exit %d: %s", code, stderr)
			}
			stats, _, code := runApp(t, "stats", "--json", "--stacks", "3", c.rec)
			if code != 0 {
				t.Fatal("stats --json failed")
			}
			src, err := os.ReadFile(page)
			if err != nil {
				t.Fatal(err)
			}
			if len(src) > 10_000_000 {
				t.Errorf("page of %d bytes", len(src))
			}
			srcDoc, _ := pagecheck.Parse(src)
			data, _ := pagecheck.Embedded(srcDoc, "pathcap-packets")
			var ex explorerData
			if err := json.Unmarshal(data, &ex); err != nil {
				t.Fatal(err)
			}
			// Open a packet with clones if there is one.
			open := ex.List[0].ID
			var clone uint64
			for _, p := range ex.List {
				if len(p.Clones) > 0 {
					open, clone = p.ID, p.Clones[0].ID
					break
				}
			}
			dom, stderr := headless(t, bin, "--dump-dom", "file://"+page+"#packet-"+strconv.FormatUint(open, 10))
			if msgs := consoleMessages(stderr); len(msgs) > 0 {
				t.Errorf("console messages:\n%s", strings.Join(msgs, "\n"))
			}
			doc, err := pagecheck.Parse([]byte(dom))
			if err != nil {
				t.Fatal(err)
			}
			root := pagecheck.Find(doc, func(n *html.Node) bool { return n.Data == "html" })[0]
			if v, _ := pagecheck.Attr(root, "data-ready"); v != "1" {
				t.Errorf("the page's script did not finish (data-ready %q)", v)
			}
			if v, ok := pagecheck.Attr(root, "data-js-error"); ok {
				t.Errorf("script error: %s", v)
			}
			for _, id := range []string{"overview", "graph", "drops", "latency", "paths", "devices", "packets", "explorer-list", "packet-detail"} {
				if pagecheck.ByID(doc, id) == nil {
					t.Errorf("no #%s", id)
				}
			}
			checkGraphDOM(t, doc)
			rows := pagecheck.Find(pagecheck.ByID(doc, "explorer-list"), func(n *html.Node) bool {
				_, ok := pagecheck.Attr(n, "data-id")
				return n.Data == "tr" && ok
			})
			if len(rows) != min(len(ex.List), 500) || ex.Shown != len(ex.List) {
				t.Errorf("explorer lists %d packets, its data holds %d (shown %d)", len(rows), len(ex.List), ex.Shown)
			}
			note := pagecheck.Text(pagecheck.ByID(doc, "sample-note"))
			if sampled := uint64(ex.Shown) < ex.Packets; sampled != strings.Contains(note, "Sampled:") {
				t.Errorf("%d of %d packets shown, note %q", ex.Shown, ex.Packets, note)
			}
			for _, p := range pagecheck.Compare([]byte(stats), pagecheck.Stats(doc)) {
				t.Error(p)
			}
			detail := pagecheck.Text(pagecheck.ByID(doc, "packet-detail"))
			if !strings.Contains(detail, fmt.Sprintf("Packet %d", open)) || (clone != 0 && !strings.Contains(detail, fmt.Sprintf("Clone %d", clone))) {
				t.Errorf("packet %d (clone %d) opened by its address shows %.300q", open, clone, detail)
			}
			hopRows := pagecheck.Find(pagecheck.ByID(doc, "packet-detail"), func(n *html.Node) bool {
				return n.Data == "td" && pagecheck.HasClass(n, "hook")
			})
			want := len(ex.List[0].Hops)
			for _, p := range ex.List {
				if p.ID == open {
					want = len(p.Hops)
					break
				}
			}
			if len(hopRows) < want {
				t.Errorf("packet %d shows %d hops, has %d", open, len(hopRows), want)
			}
			if c.name == "demo" {
				screenshot(t, bin, page, dir)
			}
		})
	}
}

// checkGraphDOM checks the drawn graph: nodes and edges as the view says,
// every edge between drawn nodes.
func checkGraphDOM(t *testing.T, doc *html.Node) {
	t.Helper()
	views := pagecheck.Find(doc, func(n *html.Node) bool { return pagecheck.HasClass(n, "graph-view") })
	if len(views) == 0 {
		t.Fatal("no graph")
	}
	for _, v := range views {
		nodes := pagecheck.Find(v, func(n *html.Node) bool { return n.Data == "g" && pagecheck.HasClass(n, "node") })
		edges := pagecheck.Find(v, func(n *html.Node) bool { return n.Data == "g" && pagecheck.HasClass(n, "edge") })
		wantN, _ := pagecheck.Attr(v, "data-nodes")
		wantE, _ := pagecheck.Attr(v, "data-edges")
		if strconv.Itoa(len(nodes)) != wantN || strconv.Itoa(len(edges)) != wantE || len(nodes) == 0 {
			t.Errorf("graph view draws %d nodes and %d edges, says %s and %s", len(nodes), len(edges), wantN, wantE)
		}
		ids := map[string]bool{}
		sinks := 0
		for _, n := range nodes {
			id, _ := pagecheck.Attr(n, "id")
			ids[id] = true
			if pagecheck.HasClass(n, "sink") {
				sinks++
			}
		}
		if sinks == 0 {
			t.Error("no outcome in the graph")
		}
		for _, e := range edges {
			from, _ := pagecheck.Attr(e, "data-from")
			to, _ := pagecheck.Attr(e, "data-to")
			if !ids[from] || !ids[to] {
				t.Errorf("edge %s -> %s between nodes not drawn", from, to)
			}
		}
	}
}

// screenshot takes a screenshot of the page and checks that it shows
// something; with -docs-screenshot it is written to docs/.
func screenshot(t *testing.T, bin, page, dir string) {
	t.Helper()
	shot := filepath.Join(dir, "shot.png")
	headless(t, bin, "--hide-scrollbars", "--window-size=1280,1500", "--screenshot="+shot, "file://"+page)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 1500 {
		t.Errorf("screenshot of %v", b)
	}
	if colors := distinctColors(img); colors < 50 {
		t.Errorf("screenshot has %d colours: blank?", colors)
	}
	if *docsScreenshot {
		out := filepath.Join(testenv.ModuleRoot(t), "docs", "analyze-html.png")
		f.Seek(0, io.SeekStart)
		b, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", out, len(b))
	}
}

func distinctColors(img image.Image) int {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
		}
	}
	return len(seen)
}

// TestGraphCommand writes the graph of each recording as DOT (drawn by
// Graphviz's dot) and as SVG (parsed as XML), with a node for every hook
// of the most common paths and a sink for every outcome.
func TestGraphCommand(t *testing.T) {
	recs, _ := filepath.Glob(testrec.Recording(t, "*.pcapng"))
	for _, rec := range recs {
		t.Run(filepath.Base(rec), func(t *testing.T) {
			stats, _, _ := runApp(t, "stats", "--json", "--top", "0", rec)
			var st struct {
				Outcomes map[string]uint64 `json:"outcomes"`
				Paths    []struct {
					Path string `json:"path"`
				} `json:"paths"`
			}
			if err := json.Unmarshal([]byte(stats), &st); err != nil {
				t.Fatal(err)
			}
			svgFile := filepath.Join(t.TempDir(), "g.svg")
			if _, stderr, code := runApp(t, "graph", "--format", "svg", "--collapse", "no", "-o", svgFile, rec); code != 0 {
				t.Fatalf("graph svg: %s", stderr)
			}
			b, err := os.ReadFile(svgFile)
			if err != nil {
				t.Fatal(err)
			}
			labels, sinks := svgLabels(t, b)
			for _, p := range st.Paths {
				for _, hook := range strings.Split(p.Path, ">") {
					if !labels[hook] {
						t.Errorf("no node for %s", hook)
					}
				}
			}
			for kind := range st.Outcomes {
				found := false
				for s := range sinks {
					if strings.HasPrefix(s, kind) || kind == "transmitted" && s == "forwarded" {
						found = true
					}
				}
				if !found {
					t.Errorf("no sink for %s in %v", kind, sinks)
				}
			}
			dot, stderr, code := runApp(t, "graph", "--format", "dot", rec)
			if code != 0 {
				t.Fatalf("graph dot: %s", stderr)
			}
			dotBin := testenv.RequireTool(t, "dot")
			cmd := exec.Command(dotBin, "-Tsvg")
			cmd.Stdin = strings.NewReader(dot)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil || errb.Len() > 0 {
				t.Fatalf("dot -Tsvg: %v %s", err, errb.String())
			}
			if n := strings.Count(out.String(), `class="node"`); n != strings.Count(dot, " [label=")-strings.Count(dot, " -> ") {
				t.Errorf("dot drew %d nodes", n)
			}
		})
	}
}

// svgLabels returns the labels of the hop nodes and of the sinks of an SVG
// drawing, failing if it is not well-formed XML.
func svgLabels(t *testing.T, b []byte) (hops, sinks map[string]bool) {
	t.Helper()
	hops, sinks = map[string]bool{}, map[string]bool{}
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "g" {
			var class, label string
			for _, a := range se.Attr {
				switch a.Name.Local {
				case "class":
					class = " " + a.Value + " "
				case "data-label":
					label = a.Value
				}
			}
			switch {
			case strings.Contains(class, " sink "):
				sinks[label] = true
			case strings.Contains(class, " node "):
				hops[label] = true
			}
		}
	}
	if len(hops) == 0 || len(sinks) == 0 {
		t.Fatalf("SVG with %d hop nodes and %d sinks", len(hops), len(sinks))
	}
	return hops, sinks
}
