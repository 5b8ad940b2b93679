package tokenizer

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// testdataDir holds tokenizer.json and the parity corpus (CORPUS.md).
const testdataDir = "../testdata/tokenizer"

var (
	loadOnce sync.Once
	loaded   *Tokenizer
	loadErr  error
)

// testTokenizer loads testdata/tokenizer/tokenizer.json once per test binary.
func testTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	loadOnce.Do(func() { loaded, loadErr = Load(filepath.Join(testdataDir, "tokenizer.json")) })
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

// readJSONLGz decodes every line of a gzipped JSONL file into a T.
func readJSONLGz[T any](t testing.TB, name string) []T {
	t.Helper()
	f, err := os.Open(filepath.Join(testdataDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var out []T
	for line := 1; sc.Scan(); line++ {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s line %d: %v", name, line, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

type textLine struct {
	Text string `json:"text"`
	Src  string `json:"src"`
}

type idsLine struct {
	IDs []int32 `json:"ids"`
}

// parallelEach runs fn(i) for i in [0, n) on all cores.
func parallelEach(n int, fn func(i int)) {
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				fn(i)
			}
		}(w)
	}
	wg.Wait()
}

// checkParity encodes every text of corpus and compares with the ids the
// Hugging Face library produced, with and without special tokens.
func checkParity(t *testing.T, corpus, expected string, minLines int) {
	tok := testTokenizer(t)
	texts := readJSONLGz[textLine](t, corpus)
	want := readJSONLGz[idsLine](t, expected)
	if len(texts) != len(want) {
		t.Fatalf("%s has %d lines, %s %d", corpus, len(texts), expected, len(want))
	}
	if len(texts) < minLines {
		t.Fatalf("%s has %d lines, want at least %d", corpus, len(texts), minLines)
	}
	bos := tok.BOS()
	var mu sync.Mutex
	var bad []string
	tokens := 0
	parallelEach(len(texts), func(i int) {
		got := tok.Encode(texts[i].Text, true)
		noSpecial := tok.Encode(texts[i].Text, false)
		okPlain := len(want[i].IDs) >= len(bos) && slices.Equal(noSpecial, want[i].IDs[len(bos):])
		mu.Lock()
		defer mu.Unlock()
		tokens += len(got)
		if !slices.Equal(got, want[i].IDs) || !okPlain {
			bad = append(bad, fmt.Sprintf("line %d (%s, %d bytes): %s", i+1, texts[i].Src, len(texts[i].Text), firstDiff(got, want[i].IDs)))
		}
	})
	slices.Sort(bad)
	for _, b := range bad[:min(len(bad), 10)] {
		t.Error(b)
	}
	t.Logf("%s: %d/%d texts identical to Hugging Face tokenizers (%d tokens)", corpus, len(texts)-len(bad), len(texts), tokens)
	if len(bad) > 0 {
		t.Fatalf("%d of %d texts differ", len(bad), len(texts))
	}
}

func firstDiff(got, want []int32) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	lo := max(0, i-3)
	return fmt.Sprintf("first difference at token %d: got %v, want %v (lengths %d, %d)",
		i, got[lo:min(len(got), i+5)], want[lo:min(len(want), i+5)], len(got), len(want))
}

func TestParityCorpus(t *testing.T) {
	checkParity(t, "corpus.jsonl.gz", "corpus.expected.jsonl.gz", 20000)
}

func TestParityAdversarial(t *testing.T) {
	checkParity(t, "adversarial.jsonl.gz", "adversarial.expected.jsonl.gz", 1000)
}

func TestParityDecode(t *testing.T) {
	tok := testTokenizer(t)
	type decodeLine struct {
		IDs  []int32 `json:"ids"`
		Skip bool    `json:"skip"`
		Text string  `json:"text"`
	}
	rows := readJSONLGz[decodeLine](t, "decode.jsonl.gz")
	if len(rows) < 1000 {
		t.Fatalf("decode.jsonl.gz has %d lines, want at least 1000", len(rows))
	}
	bad := 0
	for i, r := range rows {
		if got := tok.Decode(r.IDs, r.Skip); got != r.Text {
			if bad++; bad <= 5 {
				t.Errorf("line %d: Decode(%v, %v) = %q, want %q", i+1, r.IDs[:min(len(r.IDs), 8)], r.Skip, trim(got), trim(r.Text))
			}
		}
	}
	t.Logf("decode: %d/%d identical to Hugging Face tokenizers", len(rows)-bad, len(rows))
}

func trim(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// TestConcurrentEncode checks that many goroutines sharing one Tokenizer get
// what one goroutine gets (run with -race to check the sharing itself).
func TestConcurrentEncode(t *testing.T) {
	tok := testTokenizer(t)
	texts := readJSONLGz[textLine](t, "corpus.jsonl.gz")[:600]
	want := make([][]int32, len(texts))
	for i, x := range texts {
		want[i] = tok.Encode(x.Text, true)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := range texts {
				i := (k*7 + g*31) % len(texts)
				if got := tok.Encode(texts[i].Text, true); !slices.Equal(got, want[i]) {
					errs <- fmt.Sprintf("goroutine %d, text %d: %s", g, i, firstDiff(got, want[i]))
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
