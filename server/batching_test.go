package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentMixedRequests sends 100 requests at once, mixing input
// counts, input types, dimensions, encodings and both APIs, and checks that
// each gets its own embeddings. The worker is held until the requests have
// queued up, so the batcher must merge requests into shared batches.
func TestConcurrentMixedRequests(t *testing.T) {
	hold := make(chan struct{})
	ts := startServer(t, serverOpts{hold: hold, cfg: Config{MaxConcurrentRequests: 200}})

	words := strings.Fields("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango")
	type call struct {
		path string
		body map[string]any
		want [][]float32
	}
	calls := make([]call, 100)
	for i := range calls {
		n := 1 + i%4
		texts := make([]string, n)
		for k := range texts {
			texts[k] = fmt.Sprintf("request %d input %d: %s %s", i, k, words[(i+k)%len(words)], strings.Repeat(words[(i*7+k)%len(words)]+" ", i%9))
		}
		if i%10 == 9 {
			calls[i] = call{path: "/embed", body: map[string]any{"documents": texts}}
			for _, tx := range texts {
				calls[i].want = append(calls[i].want, direct(t, tx, "passage: ", 64))
			}
			continue
		}
		inputType, prompt := "query", "query: "
		if i%2 == 1 {
			inputType, prompt = "passage", "passage: "
		}
		dims := []int{64, 32, 8, 1}[i%4]
		enc := []string{"float", "base64"}[i%3%2]
		calls[i] = call{path: "/v1/embeddings", body: map[string]any{"model": "tiny-llama-a", "input": texts, "input_type": inputType, "dimensions": dims, "encoding_format": enc}}
		for _, tx := range texts {
			calls[i].want = append(calls[i].want, direct(t, tx, prompt, dims))
		}
	}

	results := make([]response, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = do(t, "POST", ts.URL+c.path, c.body)
		}()
	}
	// The first batch holds the worker; wait for the rest to queue behind it.
	waitFor(t, "requests to queue", func() bool { return ts.met.queueDepth.Value() > 100 })
	close(hold)
	wg.Wait()

	for i, r := range results {
		c := calls[i]
		var got [][]float32
		if c.path == "/embed" {
			var body struct {
				Embeddings [][]float32 `json:"embeddings"`
			}
			if r.status != 200 || json.Unmarshal(r.raw, &body) != nil {
				t.Fatalf("call %d: %d %s", i, r.status, r.raw)
			}
			got = body.Embeddings
		} else if c.body["encoding_format"] == "base64" {
			if r.status != 200 {
				t.Fatalf("call %d: %d %s", i, r.status, r.raw)
			}
			for _, d := range r.body["data"].([]any) {
				vals := decodeBase64Values(t, d.(map[string]any)["embedding"].(string), "float")
				v := make([]float32, len(vals))
				for k, x := range vals {
					v[k] = float32(x)
				}
				got = append(got, v)
			}
		} else {
			got = embeddingsOf(t, r, "tiny-llama-a", len(c.want))
		}
		if len(got) != len(c.want) {
			t.Fatalf("call %d: %d embeddings, want %d", i, len(got), len(c.want))
		}
		for k := range got {
			if d := maxAbsDiff(got[k], to64(c.want[k])); d > 1e-5 {
				t.Errorf("call %d input %d: differs from its own embedding by %.3g", i, k, d)
			}
		}
	}
	cum, sum, n := ts.met.batchSize.Snapshot(sharedEnc.Device())
	if n == 0 || sum/float64(n) < 4 {
		t.Errorf("batches did not merge requests: %v sequences in %v batches (%v)", sum, n, cum)
	}
	t.Logf("%v sequences in %d batches", sum, n)
}

// TestCancelledRequestIsDroppedBeforeCompute holds the worker, queues a
// request, cancels it on the client side and checks that its sequences are
// dropped, never computed, while the other requests are answered.
func TestCancelledRequestIsDroppedBeforeCompute(t *testing.T) {
	hold := make(chan struct{})
	ts := startServer(t, serverOpts{hold: hold})
	dev := sharedEnc.Device()

	first := make(chan response, 1)
	go func() {
		first <- do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a", "input": "first", "input_type": "query"})
	}()
	waitFor(t, "the first request to reach the worker", func() bool { return ts.entered.Load() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() {
		body := strings.NewReader(`{"model":"tiny-llama-a","input":["a","b","c","d","e"],"input_type":"query"}`)
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/embeddings", body)
		_, err := http.DefaultClient.Do(req)
		cancelled <- err
	}()
	waitFor(t, "the second request to queue", func() bool { return ts.met.queueDepth.Value() == 5 })
	cancel()
	if err := <-cancelled; err == nil {
		t.Fatal("cancelled request got an answer")
	}
	// The server notices the closed connection and ends the handler.
	waitFor(t, "the server to see the client leave", func() bool { return ts.inFlight() == 1 })

	third := make(chan response, 1)
	go func() {
		third <- do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a", "input": "third", "input_type": "query"})
	}()
	waitFor(t, "the third request to queue", func() bool { return ts.met.queueDepth.Value() == 6 })
	close(hold)
	for _, c := range []chan response{first, third} {
		if r := <-c; r.status != 200 {
			t.Fatalf("status %d %s", r.status, r.raw)
		}
	}
	waitFor(t, "the dropped sequences to be counted", func() bool { return ts.met.dropped.Value() == 5 })
	if got := ts.met.sequences.Value(dev); got != 2 {
		t.Errorf("computed %v sequences, want 2 (first and third; the cancelled five dropped)", got)
	}
	if got := ts.met.requests.Value("/v1/embeddings", "499"); got != 1 {
		t.Errorf("499 count %v, want 1", got)
	}
}

// TestOverloadAnswers429 fills the admission limit while the worker is
// held, then checks the next request is refused with 429 and Retry-After,
// and the admitted ones complete.
func TestOverloadAnswers429(t *testing.T) {
	hold := make(chan struct{})
	ts := startServer(t, serverOpts{hold: hold, cfg: Config{MaxConcurrentRequests: 3}})
	req := map[string]any{"model": "tiny-llama-a", "input": "x", "input_type": "query"}
	admitted := make(chan response, 3)
	for range 3 {
		go func() { admitted <- do(t, "POST", ts.URL+"/v1/embeddings", req) }()
	}
	waitFor(t, "three requests in flight", func() bool { return ts.inFlight() == 3 })
	r := do(t, "POST", ts.URL+"/v1/embeddings", req)
	checkError(t, r, 429, "", "queue is full")
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if r := do(t, "POST", ts.URL+"/embed", map[string]any{"documents": []string{"x"}}); r.status != 429 || r.body["detail"] == nil || r.header.Get("Retry-After") == "" {
		t.Errorf("/embed over the limit: %d %s", r.status, r.raw)
	}
	close(hold)
	for range 3 {
		if r := <-admitted; r.status != 200 {
			t.Errorf("admitted request: %d %s", r.status, r.raw)
		}
	}
	if got := ts.met.rejected.Value("queue_full"); got != 2 {
		t.Errorf("rejected counter %v, want 2", got)
	}
	embeddingsOf(t, do(t, "POST", ts.URL+"/v1/embeddings", req), "tiny-llama-a", 1)
}

// TestGracefulDrain starts a drain with requests in flight: readiness turns
// 503 at once, new work is refused with 503, and the requests in flight
// still complete before Drain returns.
func TestGracefulDrain(t *testing.T) {
	hold := make(chan struct{})
	ts := startServer(t, serverOpts{hold: hold})
	req := map[string]any{"model": "tiny-llama-a", "input": []string{"in", "flight"}, "input_type": "passage"}
	inflight := make(chan response, 4)
	for range 4 {
		go func() { inflight <- do(t, "POST", ts.URL+"/v1/embeddings", req) }()
	}
	waitFor(t, "four requests in flight", func() bool { return ts.inFlight() == 4 })

	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		drained <- ts.Drain(ctx)
	}()
	waitFor(t, "readiness to turn 503", func() bool { return do(t, "GET", ts.URL+"/v1/health/ready", nil).status == 503 })
	checkError(t, do(t, "POST", ts.URL+"/v1/embeddings", req), 503, "", "shutting down")
	if r := do(t, "POST", ts.URL+"/embed", map[string]any{"documents": []string{"x"}}); r.status != 503 {
		t.Errorf("/embed while draining: %d %s", r.status, r.raw)
	}
	if r := do(t, "GET", ts.URL+"/v1/health/live", nil); r.status != 200 {
		t.Errorf("live while draining: %d", r.status)
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned with requests in flight: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(hold)
	for range 4 {
		r := <-inflight
		embeddingsOf(t, r, "tiny-llama-a", 2)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
}

// TestDrainTimeout bounds the wait: a request stuck in the model does not
// hold Drain past its context.
func TestDrainTimeout(t *testing.T) {
	hold := make(chan struct{})
	ts := startServer(t, serverOpts{hold: hold})
	go do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a", "input": "stuck", "input_type": "query"})
	waitFor(t, "one request in flight", func() bool { return ts.inFlight() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	go func() {
		time.Sleep(300 * time.Millisecond)
		close(hold)
	}()
	if err := ts.Drain(ctx); err == nil || !strings.Contains(err.Error(), "1 requests still in flight") {
		t.Fatalf("Drain = %v, want a timeout naming the request in flight", err)
	}
}

// TestLongRequestDoesNotStarveShortOnes queues a request of many long
// inputs (several batches' worth) ahead of a short request: the short one
// must be answered while the long one is still being computed.
func TestLongRequestDoesNotStarveShortOnes(t *testing.T) {
	hold := make(chan struct{})
	// 256-token batches: the long request's 30 inputs of ~100 tokens need
	// about 15 batches.
	ts := startServer(t, serverOpts{hold: hold, cfg: Config{MaxBatchTokens: 256}})
	long := make([]string, 30)
	for i := range long {
		long[i] = fmt.Sprintf("document %d: %s", i, strings.Repeat("lorem ipsum dolor sit amet ", 18))
	}
	var mu sync.Mutex
	var order []string
	finish := func(name string) {
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		embeddingsOf(t, do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a", "input": long, "input_type": "passage", "truncate": "END"}), "tiny-llama-a", 30)
		finish("long")
	}()
	waitFor(t, "the long request to fill the first batch", func() bool { return ts.entered.Load() == 1 && ts.met.queueDepth.Value() == 28 })
	go func() {
		defer wg.Done()
		embeddingsOf(t, do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a", "input": "short", "input_type": "query"}), "tiny-llama-a", 1)
		finish("short")
	}()
	waitFor(t, "the short request to queue", func() bool { return ts.met.queueDepth.Value() == 29 })
	close(hold)
	wg.Wait()
	if len(order) != 2 || order[0] != "short" {
		t.Errorf("completion order %v: the short request waited for the long one", order)
	}
	_, _, batches := ts.met.batchSize.Snapshot(sharedEnc.Device())
	if batches < 10 {
		t.Errorf("only %d batches: the token budget did not split the long request", batches)
	}
	// Every batch kept to the 256-token budget (256 is a bucket bound).
	cum, _, n := ts.met.batchTokens.Snapshot(sharedEnc.Device())
	bounds := ts.met.batchTokens.Buckets()
	for i, b := range bounds {
		if b == 256 && cum[i] != n {
			t.Errorf("%d of %d batches over 256 tokens", n-cum[i], n)
		}
	}
}
