// Package pagecheck is for tests: it reads what an "analyze html" page
// shows, from its source or from the DOM a browser made of it, and
// compares its statistics with those of "analyze stats --json". A figure
// on the page is an element with data-stat (the field's path in the
// statistics JSON, "drops.0.locations.1.count") and data-value (the value
// there); its text is the value as shown.
package pagecheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/html"

	"github.com/pathcap/pathcap/paths/render"
)

// Stat is a figure shown on the page.
type Stat struct {
	Path, Value, Text string
}

// Parse parses a page.
func Parse(b []byte) (*html.Node, error) {
	return html.Parse(bytes.NewReader(b))
}

// Attr returns an element's attribute, and whether it has it.
func Attr(n *html.Node, name string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val, true
		}
	}
	return "", false
}

// Find returns the elements for which match is true, in document order.
func Find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

// ByID returns the element with the id, or nil.
func ByID(doc *html.Node, id string) *html.Node {
	found := Find(doc, func(n *html.Node) bool { v, _ := Attr(n, "id"); return v == id })
	if len(found) == 0 {
		return nil
	}
	return found[0]
}

// HasClass reports whether an element has a class.
func HasClass(n *html.Node, class string) bool {
	v, _ := Attr(n, "class")
	return slices.Contains(strings.Fields(v), class)
}

// Text returns an element's text.
func Text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// Stats returns the figures the page shows.
func Stats(doc *html.Node) []Stat {
	var out []Stat
	for _, n := range Find(doc, func(n *html.Node) bool { _, ok := Attr(n, "data-stat"); return ok }) {
		path, _ := Attr(n, "data-stat")
		v, _ := Attr(n, "data-value")
		out = append(out, Stat{Path: path, Value: v, Text: Text(n)})
	}
	return out
}

// Leaves flattens a JSON document into its leaves: path ("a.0.b") to the
// value's text (a number as written, a string as it is, true or false).
func Leaves(doc []byte) (map[string]string, error) {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("statistics JSON: %w", err)
	}
	out := map[string]string{}
	var walk func(string, any)
	walk = func(path string, v any) {
		join := func(k string) string {
			if path == "" {
				return k
			}
			return path + "." + k
		}
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				walk(join(k), c)
			}
		case []any:
			for i, c := range v {
				walk(join(strconv.Itoa(i)), c)
			}
		case json.Number:
			out[path] = v.String()
		case string:
			out[path] = v
		case bool:
			out[path] = strconv.FormatBool(v)
		case nil:
			out[path] = "null"
		}
	}
	walk("", v)
	return out, nil
}

// Compare checks the figures a page shows against the statistics JSON:
// every figure is a field of the JSON with its value, shown as the value
// (numbers with or without thousands separators, latencies as
// render.FormatDuration writes them, strings as they are), and every
// field of the JSON is shown. It returns what is wrong, nothing when the
// page shows the statistics exactly.
func Compare(statsJSON []byte, shown []Stat) []string {
	leaves, err := Leaves(statsJSON)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	seen := map[string]bool{}
	for _, s := range shown {
		want, ok := leaves[s.Path]
		if !ok {
			problems = append(problems, fmt.Sprintf("the page shows %s = %q, which the statistics do not have", s.Path, s.Value))
			continue
		}
		seen[s.Path] = true
		if s.Value != want {
			problems = append(problems, fmt.Sprintf("%s: the page has %q, the statistics %q", s.Path, s.Value, want))
			continue
		}
		if text := strings.TrimSpace(s.Text); !shownAs(s.Path, want, text) {
			problems = append(problems, fmt.Sprintf("%s = %s is shown as %q", s.Path, want, text))
		}
	}
	var missing []string
	for path := range leaves {
		if !seen[path] {
			missing = append(missing, path)
		}
	}
	slices.Sort(missing)
	for _, path := range missing {
		problems = append(problems, fmt.Sprintf("the page does not show %s = %s", path, leaves[path]))
	}
	return problems
}

// shownAs reports whether text shows the value of path.
func shownAs(path, value, text string) bool {
	last := path[strings.LastIndexByte(path, '.')+1:]
	switch {
	case path == "first" || path == "last":
		return text != ""
	case strings.HasSuffix(last, "_ns"):
		ns, err := strconv.ParseInt(value, 10, 64)
		return err == nil && text == render.FormatDuration(ns)
	}
	if _, err := strconv.ParseUint(value, 10, 64); err == nil && last != "dev" && last != "reason" && last != "location" && last != "path" && last != "netns_name" {
		return strings.ReplaceAll(text, ",", "") == value
	}
	return value == "" || text == value
}

// Embedded returns the text of the <script> element with the id (the
// page's data), and whether there is one.
func Embedded(doc *html.Node, id string) ([]byte, bool) {
	n := ByID(doc, id)
	if n == nil || n.Data != "script" {
		return nil, false
	}
	return []byte(Text(n)), true
}
