package tokenizer

import (
	"path/filepath"
	"sync/atomic"
	"testing"
)

// BenchmarkEncode is the tokenizer alone (no JSON) over the parity corpus on
// one goroutine; it reports tokens/s and input MB/s.
func BenchmarkEncode(b *testing.B) {
	tok := testTokenizer(b)
	texts := readJSONLGz[textLine](b, "corpus.jsonl.gz")
	bytes := 0
	for _, t := range texts {
		bytes += len(t.Text)
	}
	b.SetBytes(int64(bytes))
	b.ResetTimer()
	tokens := 0
	var ids []int32
	for i := 0; i < b.N; i++ {
		for _, t := range texts {
			ids = tok.AppendEncode(ids[:0], t.Text, true)
			tokens += len(ids)
		}
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkEncodeParallel is BenchmarkEncode with the corpus shared out
// over all cores, one Tokenizer for all, as the server uses it.
func BenchmarkEncodeParallel(b *testing.B) {
	tok := testTokenizer(b)
	texts := readJSONLGz[textLine](b, "corpus.jsonl.gz")
	bytes := 0
	for _, t := range texts {
		bytes += len(t.Text)
	}
	b.SetBytes(int64(bytes))
	b.ResetTimer()
	var tokens atomic.Int64
	for i := 0; i < b.N; i++ {
		parallelEach(len(texts), func(k int) {
			tokens.Add(int64(len(tok.Encode(texts[k].Text, true))))
		})
	}
	b.ReportMetric(float64(tokens.Load())/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkLoad is loading the 9 MB tokenizer.json.
func BenchmarkLoad(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := Load(filepath.Join(testdataDir, "tokenizer.json")); err != nil {
			b.Fatal(err)
		}
	}
}
