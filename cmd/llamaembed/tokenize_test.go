package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var testTokenizerJSON = filepath.Join("..", "..", "testdata", "tokenizer", "tokenizer.json")

func gunzipTestdata(t *testing.T, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "testdata", "tokenizer", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTokenizeCLIParity runs `llamaembed tokenize` over the adversarial list
// and compares its output byte for byte with the Hugging Face ids.
func TestTokenizeCLIParity(t *testing.T) {
	in := gunzipTestdata(t, "adversarial.jsonl.gz")
	want := gunzipTestdata(t, "adversarial.expected.jsonl.gz")
	var out, errOut bytes.Buffer
	if code := runMain([]string{"tokenize", "--tokenizer", testTokenizerJSON}, bytes.NewReader(in), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !bytes.Equal(out.Bytes(), want) {
		got := strings.Split(out.String(), "\n")
		exp := strings.Split(string(want), "\n")
		for i := range min(len(got), len(exp)) {
			if got[i] != exp[i] {
				t.Fatalf("line %d differs (%d vs %d lines): got %.200s, want %.200s", i+1, len(got), len(exp), got[i], exp[i])
			}
		}
		t.Fatalf("output has %d lines, want %d", len(got), len(exp))
	}
}

func TestTokenizeCLI(t *testing.T) {
	tests := []struct {
		name, in string
		args     []string
		code     int
		out, err string
	}{
		{"bos", `{"text": "Hello world"}` + "\n" + `{"text": ""}` + "\n", nil, 0, "{\"ids\":[128000,9906,1917]}\n{\"ids\":[128000]}\n", ""},
		{"no special", `{"text": "Hello world"}`, []string{"--no-special"}, 0, "{\"ids\":[9906,1917]}\n", ""},
		{"special literal", `{"text": "<|begin_of_text|>"}`, []string{"--no-special"}, 0, "{\"ids\":[128000]}\n", ""},
		{"extra fields", `{"src": "x", "text": "Hello"}`, nil, 0, "{\"ids\":[128000,9906]}\n", ""},
		{"one worker", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n", []string{"--workers", "1"}, 0, "{\"ids\":[128000,64]}\n{\"ids\":[128000,65]}\n", ""},
		{"empty input", "", nil, 0, "", ""},
		{"bad json", "{\"text\": \"a\"}\n{\"text\": 5}\n", nil, 1, "", "line 2"},
		{"missing text", "{\"txt\": \"a\"}\n", nil, 1, "", `missing "text"`},
		{"blank line", "{\"text\": \"a\"}\n\n", nil, 1, "", "line 2: empty line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append([]string{"tokenize", "--tokenizer", testTokenizerJSON}, tt.args...)
			code := runMain(args, strings.NewReader(tt.in), &out, &errOut)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %s)", code, tt.code, errOut.String())
			}
			if tt.code == 0 && out.String() != tt.out {
				t.Errorf("stdout %q, want %q", out.String(), tt.out)
			}
			if !strings.Contains(errOut.String(), tt.err) {
				t.Errorf("stderr %q does not mention %q", errOut.String(), tt.err)
			}
		})
	}
}

func TestTokenizeCLILineTooLong(t *testing.T) {
	defer func(n int) { maxTokenizeLine = n }(maxTokenizeLine)
	maxTokenizeLine = 100
	in := `{"text": "ok"}` + "\n" + `{"text": "` + strings.Repeat("x", 200) + `"}` + "\n"
	var out, errOut bytes.Buffer
	code := runMain([]string{"tokenize", "--tokenizer", testTokenizerJSON}, strings.NewReader(in), &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "line 2: line too long") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}

// TestTokenizeCLIModelDir loads the tokenizer from a model directory.
func TestTokenizeCLIModelDir(t *testing.T) {
	dir := t.TempDir()
	abs, err := filepath.Abs(testTokenizerJSON)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := runMain([]string{"tokenize", "--model", dir}, strings.NewReader(`{"text": "Hello world"}`), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if want := "{\"ids\":[128000,9906,1917]}\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
}

func TestTokenizeCLIFlags(t *testing.T) {
	for _, args := range [][]string{
		{"tokenize"},
		{"tokenize", "--model", "m", "--tokenizer", "f"},
		{"tokenize", "--bogus"},
		{"tokenize", "--tokenizer", "f", "extra"},
	} {
		var out, errOut bytes.Buffer
		if code := runMain(args, strings.NewReader(""), &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	var out, errOut bytes.Buffer
	if code := runMain([]string{"tokenize", "--tokenizer", "/nonexistent/tokenizer.json"}, strings.NewReader(""), &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "nonexistent") {
		t.Errorf("missing file: exit %d, stderr %q", code, errOut.String())
	}
}

// FuzzFastText checks that the fast JSONL path, whenever it accepts a line,
// reads the same text encoding/json does.
func FuzzFastText(f *testing.F) {
	for _, s := range []string{
		`{"text": "Hello world"}`, `{"text":""}`, ` { "src" : "x", "text" : "a\nb\t\"c\"\\ \u00e9\u4e2d" } `,
		`{"text": "a", "text": "b"}`, `{"TEXT": "a"}`, `{"text": "a", "Text": "b"}`, `{"n": 1.5e3, "b": true, "z": null, "text": "x"}`,
		`{"text": null}`, `{"text": 5}`, `{"text": "\ud83d\ude00"}`, `{"text": "\ud800"}`, `{"text": "a\u0000b"}`,
		`{"o": {"text": "in"}, "text": "out"}`, `{"text": "x"} trailing`, `{"text": "\q"}`, "{\"text\": \"\xff\"}", `{"text": "x",}`,
		`{"n": 01, "text": "x"}`, `{"n": -, "text": "x"}`, `[1]`, `{}`, `{"text": "unterminated}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		fast, ok := fastText([]byte(line))
		if !ok {
			return
		}
		var v struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json: %v", line, err)
		}
		if v.Text == nil || *v.Text != fast {
			t.Fatalf("%q: fast path %q, encoding/json %v", line, fast, v.Text)
		}
	})
}

// TestFastTextCorpus checks that every corpus line takes the fast path and
// reads what encoding/json reads.
func TestFastTextCorpus(t *testing.T) {
	for _, name := range []string{"corpus.jsonl.gz", "adversarial.jsonl.gz"} {
		lines := bytes.Split(bytes.TrimSpace(gunzipTestdata(t, name)), []byte("\n"))
		slow := 0
		for i, line := range lines {
			var v struct{ Text string }
			if err := json.Unmarshal(line, &v); err != nil {
				t.Fatalf("%s line %d: %v", name, i+1, err)
			}
			fast, ok := fastText(line)
			if !ok {
				slow++
				continue
			}
			if fast != v.Text {
				t.Fatalf("%s line %d: fast path %q, encoding/json %q", name, i+1, fast, v.Text)
			}
		}
		if slow > len(lines)/100 {
			t.Errorf("%s: %d of %d lines missed the fast path", name, slow, len(lines))
		}
	}
}
