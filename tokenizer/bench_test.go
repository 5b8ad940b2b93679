package tokenizer

import (
	"path/filepath"
	"sync"
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

// BenchmarkEncodeParallel is BenchmarkEncode on all cores sharing one
// Tokenizer, as the server uses it.
func BenchmarkEncodeParallel(b *testing.B) {
	tok := testTokenizer(b)
	texts := readJSONLGz[textLine](b, "corpus.jsonl.gz")
	b.ResetTimer()
	var total int64
	b.RunParallel(func(pb *testing.PB) {
		var ids []int32
		i, n := 0, 0
		for pb.Next() {
			ids = tok.AppendEncode(ids[:0], texts[i%len(texts)].Text, true)
			n += len(ids)
			i++
		}
		addInt64(&total, int64(n))
	})
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkLoad is loading the 9 MB tokenizer.json.
func BenchmarkLoad(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := Load(filepath.Join(testdataDir, "tokenizer.json")); err != nil {
			b.Fatal(err)
		}
	}
}

var addMu sync.Mutex

func addInt64(p *int64, v int64) {
	addMu.Lock()
	*p += v
	addMu.Unlock()
}
