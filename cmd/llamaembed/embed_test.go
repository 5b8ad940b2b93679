package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"llamaembed/weights/fixture"
)

// embedModelDir is the tiny-llama-a fixture with the Llama 3.1 tokenizer,
// written once for the package's tests.
var embedModelDir = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "llamaembed-embed-test-")
	if err != nil {
		return "", err
	}
	opts := fixture.Tiny()
	opts.Tokenizer = "../../testdata/tokenizer/tokenizer.json"
	return dir, fixture.Write(dir, opts)
})

func tinyModel(t *testing.T) string {
	t.Helper()
	dir, err := embedModelDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := embedModelDir(); err == nil && dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

type refCase = fixture.ReferenceCase

func referenceCases(t *testing.T) []refCase {
	t.Helper()
	ref, err := fixture.LoadReference("../../testdata/tiny-llama-a.json")
	if err != nil {
		t.Fatal(err)
	}
	return ref.Cases
}

type outputLine struct {
	Embedding []float64 `json:"embedding"`
	Tokens    int       `json:"tokens"`
}

// runEmbedCLI runs `llamaembed embed args...` in-process on stdin.
func runEmbedCLI(t *testing.T, stdin string, args ...string) (code int, out []outputLine, stderr string) {
	t.Helper()
	var so, se bytes.Buffer
	code = runMain(append([]string{"embed"}, args...), strings.NewReader(stdin), &so, &se)
	for i, l := range strings.Split(strings.TrimSuffix(so.String(), "\n"), "\n") {
		if l == "" {
			continue
		}
		var o outputLine
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			t.Fatalf("output line %d %q: %v", i+1, l, err)
		}
		out = append(out, o)
	}
	return code, out, se.String()
}

func maxAbsDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

func jsonLine(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// Ids lines and text lines of the reference cases reproduce the reference
// embeddings, in input order, with several lines per Embed call and a
// partial last batch.
func TestEmbedCLIReference(t *testing.T) {
	dir := tinyModel(t)
	cases := referenceCases(t)
	for _, dims := range []int{0, 32, 16} {
		var in strings.Builder
		var want []refCase
		for _, c := range cases {
			if c.Dims != dims {
				continue
			}
			in.WriteString(jsonLine(t, map[string]any{"ids": c.IDs}))
			in.WriteString(jsonLine(t, map[string]any{"text": c.Text}))
			want = append(want, c, c)
		}
		if len(want) == 0 {
			t.Fatalf("no reference case with dims %d", dims)
		}
		code, out, stderr := runEmbedCLI(t, in.String(), "--model", dir, "--device", "cpu", "--dimensions", fmt.Sprint(dims), "--batch", "3")
		if code != 0 {
			t.Fatalf("dims %d: exit %d: %s", dims, code, stderr)
		}
		if len(out) != len(want) {
			t.Fatalf("dims %d: %d output lines for %d input lines", dims, len(out), len(want))
		}
		for i, c := range want {
			if out[i].Tokens != len(c.IDs) {
				t.Errorf("dims %d line %d (%q): tokens %d, want %d", dims, i+1, c.Text, out[i].Tokens, len(c.IDs))
			}
			if d := maxAbsDiff(out[i].Embedding, c.Embedding); d > 1e-5 {
				t.Errorf("dims %d line %d (%q): max abs diff %.3g > 1e-5", dims, i+1, c.Text, d)
			}
		}
	}
}

// --input-type adds the model's prompt to text lines (and not to ids).
func TestEmbedCLIInputType(t *testing.T) {
	dir := tinyModel(t)
	cases := referenceCases(t)
	c := cases[0]
	text, ok := strings.CutPrefix(c.Text, "query: ")
	if !ok {
		t.Fatalf("first reference case %q is not a query", c.Text)
	}
	in := jsonLine(t, map[string]any{"text": text}) + jsonLine(t, map[string]any{"ids": c.IDs})
	code, out, stderr := runEmbedCLI(t, in, "--model", dir, "--device", "cpu", "--input-type", "query")
	if code != 0 || len(out) != 2 {
		t.Fatalf("exit %d, %d lines: %s", code, len(out), stderr)
	}
	for i := range out {
		if d := maxAbsDiff(out[i].Embedding, c.Embedding); d > 1e-5 || out[i].Tokens != len(c.IDs) {
			t.Errorf("line %d: %d tokens, max abs diff %.3g", i+1, out[i].Tokens, d)
		}
	}
}

// --max-seq-len with --truncate END keeps the first tokens of a text; with
// NONE the long line is refused.
func TestEmbedCLITruncate(t *testing.T) {
	dir := tinyModel(t)
	long := referenceCases(t)[7] // 84 tokens
	if len(long.IDs) < 20 {
		t.Fatalf("case 7 has %d tokens", len(long.IDs))
	}
	in := jsonLine(t, map[string]any{"text": long.Text})
	code, out, stderr := runEmbedCLI(t, in, "--model", dir, "--device", "cpu", "--max-seq-len", "10", "--truncate", "END")
	if code != 0 || len(out) != 1 {
		t.Fatalf("END: exit %d, %d lines: %s", code, len(out), stderr)
	}
	if out[0].Tokens != 10 {
		t.Errorf("END: %d tokens, want 10", out[0].Tokens)
	}
	// The first 10 ids, given as ids, embed to the same vector.
	code, same, stderr := runEmbedCLI(t, jsonLine(t, map[string]any{"ids": long.IDs[:10]}), "--model", dir, "--device", "cpu")
	if code != 0 || len(same) != 1 {
		t.Fatalf("ids: exit %d: %s", code, stderr)
	}
	if d := maxAbsDiff(out[0].Embedding, same[0].Embedding); d != 0 {
		t.Errorf("END truncation differs from the first 10 ids by %.3g", d)
	}
	code, _, stderr = runEmbedCLI(t, in, "--model", dir, "--device", "cpu", "--max-seq-len", "10")
	if code == 0 || !strings.Contains(stderr, "line 1:") || !strings.Contains(stderr, "exceeds maximum allowed token size 10") {
		t.Errorf("NONE: exit %d, stderr %q", code, stderr)
	}
}

// A bad line stops the run with its line number and a non-zero exit, after
// the lines before it have been written.
func TestEmbedCLIBadLines(t *testing.T) {
	dir := tinyModel(t)
	good := `{"ids": [128000, 1663, 25]}` + "\n"
	for _, c := range []struct {
		name, bad, want string
	}{
		{"not json", `{"ids": [1, 2`, "line 3: not a JSON object"},
		{"id out of range", `{"ids": [1, 128256]}`, `line 3: "ids"[1] = 128256 is out of range [0, 128256)`},
		{"negative id", `{"ids": [-5]}`, `line 3: "ids"[0] = -5 is out of range`},
		{"empty ids", `{"ids": []}`, `line 3: "ids" is empty`},
		{"fractional id", `{"ids": [1.5]}`, "line 3: not a JSON object"},
		{"both", `{"ids": [1], "text": "x"}`, `line 3: both "ids" and "text"`},
		{"neither", `{}`, `line 3: no "ids" or "text"`},
		{"unknown field", `{"ids": [1], "input": "x"}`, `line 3: not a JSON object with ids or text: json: unknown field "input"`},
		{"empty line", ``, "line 3: empty line"},
		{"two values", `{"ids": [1]} {"ids": [2]}`, "line 3: more than one JSON value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := good + good + c.bad + "\n" + good
			code, out, stderr := runEmbedCLI(t, in, "--model", dir, "--device", "cpu", "--batch", "2")
			if code == 0 {
				t.Fatalf("exit 0 for a bad line; stderr %q", stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q does not contain %q", stderr, c.want)
			}
			if len(out) != 2 {
				t.Errorf("%d output lines before the bad line, want 2", len(out))
			}
		})
	}
}

func TestEmbedCLIFlags(t *testing.T) {
	dir := tinyModel(t)
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no model", nil, 2, "--model is required"},
		{"bad input type", []string{"--model", dir, "--input-type", "doc"}, 2, `--input-type "doc"`},
		{"bad truncate", []string{"--model", dir, "--truncate", "MIDDLE"}, 2, "MIDDLE"},
		{"negative dims", []string{"--model", dir, "--dimensions", "-1"}, 2, "must not be negative"},
		{"dims too large", []string{"--model", dir, "--device", "cpu", "--dimensions", "65"}, 1, "--dimensions 65 is more than the model's 64"},
		{"missing model", []string{"--model", filepath.Join(t.TempDir(), "nope"), "--device", "cpu"}, 1, "nope"},
		{"no such device", []string{"--model", dir, "--device", "tpu"}, 1, `device "tpu"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runEmbedCLI(t, `{"ids": [1]}`+"\n", c.args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, c.code, stderr, c.want)
			}
		})
	}
}

// A model without tokenizer.json still embeds ids; a text line fails naming
// the tokenizer.
func TestEmbedCLINoTokenizer(t *testing.T) {
	dir := t.TempDir()
	opts := fixture.Tiny()
	opts.Layers = 1
	if err := fixture.Write(dir, opts); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runEmbedCLI(t, `{"ids": [1, 2]}`+"\n"+`{"text": "hi"}`+"\n", "--model", dir, "--device", "cpu")
	if code == 0 || len(out) != 1 || !strings.Contains(stderr, `line 2: "text" needs the model's tokenizer`) {
		t.Errorf("exit %d, %d lines, stderr %q", code, len(out), stderr)
	}
}
