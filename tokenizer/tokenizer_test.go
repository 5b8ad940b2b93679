package tokenizer

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pieces splits text the way the pre-tokenizer does.
func pieces(text string) []string {
	var out []string
	for i := 0; i < len(text); {
		j := nextPiece(text, i)
		out = append(out, text[i:j])
		i = j
	}
	return out
}

func TestPreTokenizerPieces(t *testing.T) {
	tests := []struct {
		text string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"I'm here", []string{"I", "'m", " here"}},
		{"'sabc", []string{"'s", "abc"}},           // the contraction wins over the letter run
		{"DON'T", []string{"DON", "'T"}},           // case-insensitive
		{"we'LL've", []string{"we", "'LL", "'ve"}}, // one contraction at a time
		{"  \n\n  x", []string{"  \n\n", " ", " x"}},
		{"a  b", []string{"a", " ", " b"}}, // \s+(?!\S) leaves the last space to the word
		{"x   ", []string{"x", "   "}},     // at the end the whole run
		{"123456", []string{"123", "456"}},
		{" 123", []string{" ", "123"}},
		{"hi!!!\n\nyo", []string{"hi", "!!!\n\n", "yo"}},
		{" !?", []string{" !?"}},
		{"\t\tfunc", []string{"\t", "\tfunc"}},
		{"a\r\nb", []string{"a", "\r\n", "b"}},
		{"$5", []string{"$", "5"}},
		{"日本語のテキスト", []string{"日本語のテキスト"}},
		{"٣٤٥٦", []string{"٣٤٥", "٦"}},
		{" \u00a0x", []string{" ", "\u00a0x"}},
		{"\n \n x", []string{"\n \n", " x"}},
	}
	for _, tt := range tests {
		if got := pieces(tt.text); !slices.Equal(got, tt.want) {
			t.Errorf("pieces(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestEncodeKnownIDs(t *testing.T) {
	tok := testTokenizer(t)
	tests := []struct {
		text       string
		addSpecial bool
		want       []int32
	}{
		{"Hello world", true, []int32{128000, 9906, 1917}},
		{"Hello world", false, []int32{9906, 1917}},
		{"", true, []int32{128000}},
		{"", false, []int32{}},
		{"<|begin_of_text|>", false, []int32{128000}},
		{"<|begin_of_text|>hi", true, []int32{128000, 128000, 6151}},
		{"  \n\n  x", false, []int32{19124, 220, 865}},
		{"I'M don'T", false, []int32{40, 28703, 1541, 17773}},
	}
	for _, tt := range tests {
		if got := tok.Encode(tt.text, tt.addSpecial); !slices.Equal(got, tt.want) {
			t.Errorf("Encode(%q, %v) = %v, want %v", tt.text, tt.addSpecial, got, tt.want)
		}
	}
	if id, ok := tok.TokenID("<|eot_id|>"); !ok || id != 128009 {
		t.Errorf("TokenID(<|eot_id|>) = %d, %v; want 128009", id, ok)
	}
	if id, ok := tok.TokenID(" world"); !ok || id != 1917 {
		t.Errorf("TokenID(\" world\") = %d, %v; want 1917", id, ok)
	}
	if got := tok.BOS(); !slices.Equal(got, []int32{128000}) {
		t.Errorf("BOS() = %v", got)
	}
	if n := tok.VocabSize(); n != 128256 {
		t.Errorf("VocabSize() = %d, want 128256", n)
	}
	if n := tok.CountTokens("Hello world", true); n != 3 {
		t.Errorf("CountTokens = %d, want 3", n)
	}
}

func TestEncodeInvalidUTF8(t *testing.T) {
	tok := testTokenizer(t)
	// Invalid bytes read as U+FFFD, as a JSON decoder would deliver them.
	got := tok.Encode("a\xffb\xe2\x82", false)
	want := tok.Encode("a\uFFFDb\uFFFD\uFFFD", false)
	if !slices.Equal(got, want) {
		t.Errorf("Encode(invalid UTF-8) = %v, want %v", got, want)
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	tok := testTokenizer(t)
	texts := readJSONLGz[textLine](t, "corpus.jsonl.gz")
	for i := 0; i < len(texts); i += 37 {
		text := texts[i].Text
		if got := tok.Decode(tok.Encode(text, true), true); got != text {
			t.Fatalf("line %d: Decode(Encode(text)) = %q, want %q", i+1, trim(got), trim(text))
		}
	}
	if got := tok.Decode([]int32{128000, 9906, 1917, 128009}, false); got != "<|begin_of_text|>Hello world<|eot_id|>" {
		t.Errorf("Decode with specials = %q", got)
	}
	if got := tok.Decode([]int32{-1, 9906, 1 << 30}, false); got != "Hello" {
		t.Errorf("Decode with out-of-range ids = %q, want %q", got, "Hello")
	}
}

func TestLossyUTF8(t *testing.T) {
	tests := []struct {
		in   []byte
		want string
	}{
		{[]byte("plain"), "plain"},
		{[]byte{0xE2, 0x82, 'a'}, "\uFFFDa"},             // truncated 3-byte sequence: one replacement
		{[]byte{0xFF, 'x'}, "\uFFFDx"},                   // never valid
		{[]byte{0xF0, 0x9F, 0x98}, "\uFFFD"},             // truncated emoji at the end
		{[]byte{0xED, 0xA0, 0x80}, "\uFFFD\uFFFD\uFFFD"}, // surrogate: each byte
		{[]byte{0xC0, 0xAF}, "\uFFFD\uFFFD"},             // overlong
		{[]byte{0xF4, 0x90, 0x80, 0x80}, "\uFFFD\uFFFD\uFFFD\uFFFD"},
		{[]byte{'a', 0xE2, 0x82, 0xAC, 0xE2}, "a€\uFFFD"},
	}
	for _, tt := range tests {
		if got := lossyUTF8(tt.in); got != tt.want {
			t.Errorf("lossyUTF8(% x) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEncodeInput(t *testing.T) {
	tok := testTokenizer(t)
	prompt := "query: "
	long := strings.Repeat("the quick brown fox jumps over the lazy dog ", 20)
	joint := tok.Encode(prompt+long, true)
	promptLen := len(tok.Encode(prompt+"the", true)) // BOS + "query" ":" " the"

	t.Run("fits", func(t *testing.T) {
		for _, text := range []string{"", "hello", long, "<|eot_id|>x"} {
			ids, truncated, err := tok.EncodeInput(text, prompt, 0, TruncateNone)
			if err != nil || truncated {
				t.Fatalf("EncodeInput(%q): truncated %v, err %v", trim(text), truncated, err)
			}
			if want := tok.Encode(prompt+text, true); !slices.Equal(ids, want) {
				t.Errorf("EncodeInput(%q) = %v, want the joint encoding %v", trim(text), ids, want)
			}
		}
	})
	t.Run("none refuses", func(t *testing.T) {
		_, _, err := tok.EncodeInput(long, prompt, 50, TruncateNone)
		var le *LengthError
		if !errors.As(err, &le) || le.Length != len(joint) || le.Max != 50 {
			t.Fatalf("err = %v, want a LengthError{%d, 50}", err, len(joint))
		}
		if want := "Input length " + itoa(len(joint)) + " exceeds maximum allowed token size 50"; err.Error() != want {
			t.Errorf("message %q, want %q", err.Error(), want)
		}
	})
	t.Run("end keeps the beginning", func(t *testing.T) {
		ids, truncated, err := tok.EncodeInput(long, prompt, 50, TruncateEnd)
		if err != nil || !truncated || len(ids) != 50 {
			t.Fatalf("len %d, truncated %v, err %v", len(ids), truncated, err)
		}
		if !slices.Equal(ids, joint[:50]) {
			t.Errorf("got %v, want %v", ids, joint[:50])
		}
	})
	t.Run("start keeps BOS, prompt and the end", func(t *testing.T) {
		ids, truncated, err := tok.EncodeInput(long, prompt, 50, TruncateStart)
		if err != nil || !truncated || len(ids) != 50 {
			t.Fatalf("len %d, truncated %v, err %v", len(ids), truncated, err)
		}
		if !slices.Equal(ids[:promptLen], joint[:promptLen]) {
			t.Errorf("head %v, want %v", ids[:promptLen], joint[:promptLen])
		}
		tail := 50 - promptLen
		if !slices.Equal(ids[promptLen:], joint[len(joint)-tail:]) {
			t.Errorf("tail %v, want %v", ids[promptLen:], joint[len(joint)-tail:])
		}
	})
	t.Run("exact fit is not truncated", func(t *testing.T) {
		ids, truncated, err := tok.EncodeInput(long, prompt, len(joint), TruncateEnd)
		if err != nil || truncated || !slices.Equal(ids, joint) {
			t.Fatalf("truncated %v, err %v", truncated, err)
		}
	})
	t.Run("prompt alone too long", func(t *testing.T) {
		_, _, err := tok.EncodeInput("some text", "a very long instruction prompt: ", 3, TruncateEnd)
		var le *LengthError
		if !errors.As(err, &le) || le.Max != 3 {
			t.Fatalf("err = %v, want a LengthError", err)
		}
	})
	t.Run("no prompt", func(t *testing.T) {
		ids, truncated, err := tok.EncodeInput(long, "", 10, TruncateStart)
		want := append([]int32{128000}, joint[len(joint)-9:]...)
		if err != nil || !truncated || !slices.Equal(ids, want) {
			t.Fatalf("got %v (truncated %v, err %v), want %v", ids, truncated, err, want)
		}
	})
}

func itoa(n int) string {
	var b []byte
	if n == 0 {
		return "0"
	}
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestParseTruncate(t *testing.T) {
	for in, want := range map[string]Truncate{"": TruncateNone, "NONE": TruncateNone, "end": TruncateEnd, "START": TruncateStart} {
		if got, err := ParseTruncate(in); err != nil || got != want {
			t.Errorf("ParseTruncate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseTruncate("LEFT"); err == nil {
		t.Error("ParseTruncate(LEFT) succeeded")
	}
}

// modelDir makes a model directory named name holding a link to the test
// tokenizer.json and, when st is not empty, a config_sentence_transformers.json.
func modelDir(t *testing.T, name, st string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(filepath.Join(testdataDir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	if st != "" {
		if err := os.WriteFile(filepath.Join(dir, "config_sentence_transformers.json"), []byte(st), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadDirPrompts(t *testing.T) {
	tests := []struct {
		name, dir, st string
		want          Prompts
	}{
		{"default", "llama-nemotron-embed-1b-v2", "", DefaultPrompts()},
		{"8B by name", "llama-embed-nemotron-8b", "", Nemotron8BPrompts()},
		{"declared", "m", `{"prompts": {"query": "Q: ", "passage": "P: "}, "default_prompt_name": null}`, Prompts{"Q: ", "P: "}},
		{"document key", "m", `{"prompts": {"query": "Q: ", "document": ""}}`, Prompts{"Q: ", ""}},
		{"only query", "m", `{"prompts": {"query": "Q: "}}`, Prompts{"Q: ", "passage: "}},
		{"no prompts", "m", `{"__version__": {"sentence_transformers": "3.0"}}`, DefaultPrompts()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := LoadDir(modelDir(t, tt.dir, tt.st))
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.Prompts(); got != tt.want {
				t.Errorf("Prompts() = %q, want %q", got, tt.want)
			}
			over := tok.WithPrompts(Prompts{"a", "b"})
			if over.Prompts() != (Prompts{"a", "b"}) || tok.Prompts() != tt.want {
				t.Error("WithPrompts changed the original or did not apply")
			}
			if got := over.Encode("Hello world", true); !slices.Equal(got, []int32{128000, 9906, 1917}) {
				t.Errorf("WithPrompts tokenizer encodes %v", got)
			}
		})
	}
	if _, err := LoadDir(modelDir(t, "bad", `{"prompts": [1]}`)); err == nil || !strings.Contains(err.Error(), "config_sentence_transformers.json") {
		t.Errorf("bad config_sentence_transformers.json: err = %v", err)
	}
}

// TestLoadErrors feeds broken and unsupported tokenizer.json files: each
// must give an error naming what is wrong, never a panic.
func TestLoadErrors(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(testdataDir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	replace := func(old, new string) []byte {
		if !bytes.Contains(orig, []byte(old)) {
			t.Fatalf("test setup: %q not in tokenizer.json", old)
		}
		return bytes.Replace(orig, []byte(old), []byte(new), 1)
	}
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"empty", nil, "json"},
		{"not json", []byte("hello"), "json"},
		{"array", []byte("[]"), "json"},
		{"empty object", []byte("{}"), "model.vocab"},
		{"truncated", orig[:len(orig)/2], "json"},
		{"truncated in vocab", orig[:len(orig)/10], "json"},
		{"other pattern", replace(`\\s+(?!\\S)|\\s+"`, `\\s+"`), "pre_tokenizer"},
		{"normalizer", replace(`"normalizer": null`, `"normalizer": {"type": "NFC"}`), "normalizer"},
		{"wordpiece", replace(`"type": "BPE"`, `"type": "WordPiece"`), "BPE"},
		{"unknown merge part", replace(`"Ġ Ġ",`, `"Ġ NOTATOKENXYZ",`), "merge 0"},
		{"merge without space", replace(`"Ġ Ġ",`, `"ĠĠ",`), "merge 0"},
		{"vocab id not a number", replace(`"!": 0,`, `"!": "zero",`), "vocab"},
		{"vocab id negative", replace(`"!": 0,`, `"!": -5,`), "vocab"},
		{"added token lstrip", replace(`"lstrip": false`, `"lstrip": true`), "lstrip"},
		{"bad template", replace(`"SpecialToken": {`, `"Bogus": {`), "post_processor"},
		{"bad escape", replace(`"Ġ Ġ",`, `"\q",`), "escape"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.data)
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("Load(missing) succeeded")
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("Load(dir): %v", err)
	}
}
