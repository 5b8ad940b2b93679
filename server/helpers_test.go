package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"llamaembed/model"
	_ "llamaembed/model/cpu" // registers the "cpu" backend
	"llamaembed/tokenizer"
	"llamaembed/weights/fixture"
)

// The tests run the real encoder (CPU backend) and the real tokenizer on
// the tiny fixture model, generated once per test binary.
var (
	fixtureDir string
	sharedEnc  *model.Encoder
	sharedTok  *tokenizer.Tokenizer
)

const testMaxSeqLen = 128 // small, so truncation is cheap to reach

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "llamaembed-server-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		fixtureDir = filepath.Join(dir, "tiny-llama-a")
		opts := fixture.Tiny()
		opts.Tokenizer = filepath.Join("..", "testdata", "tokenizer", "tokenizer.json")
		if err := fixture.Write(fixtureDir, opts); err != nil {
			fmt.Fprintln(os.Stderr, "write fixture:", err)
			return 1
		}
		sharedEnc, err = model.Load(context.Background(), fixtureDir, "cpu", model.Options{MaxSeqLen: testMaxSeqLen, MaxBatchTokens: 4096})
		if err != nil {
			fmt.Fprintln(os.Stderr, "load encoder:", err)
			return 1
		}
		defer sharedEnc.Close()
		if sharedTok, err = tokenizer.LoadDir(fixtureDir); err != nil {
			fmt.Fprintln(os.Stderr, "load tokenizer:", err)
			return 1
		}
		return m.Run()
	}())
}

// testServer is a server on 127.0.0.1 with its base URL.
type testServer struct {
	*Server
	URL     string
	entered *atomic.Int32 // batches that reached the worker's hold
}

// hold, when passed to startServer, blocks the model worker before each
// batch until the channel is closed.
type serverOpts struct {
	cfg    Config
	hold   chan struct{}
	noLoad bool
	tok    *tokenizer.Tokenizer // default: sharedTok (prompts "query: ", "passage: ")
}

func startServer(t *testing.T, o serverOpts) *testServer {
	t.Helper()
	cfg := o.cfg
	if cfg.ServedModelName == "" {
		cfg.ServedModelName = "tiny-llama-a"
	}
	if cfg.MaxSeqLen == 0 {
		cfg.MaxSeqLen = testMaxSeqLen
	}
	if cfg.MaxBatchTokens == 0 {
		cfg.MaxBatchTokens = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger(t)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	entered := new(atomic.Int32)
	if o.hold != nil {
		hold := o.hold
		s.beforeBatch = func(int) {
			entered.Add(1)
			<-hold
		}
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		if o.hold != nil {
			select {
			case <-o.hold:
			default:
				close(o.hold)
			}
		}
		ts.Close()
		s.Close()
	})
	if !o.noLoad {
		tok := o.tok
		if tok == nil {
			tok = sharedTok
		}
		loadModelWith(t, s, tok)
	}
	return &testServer{Server: s, URL: ts.URL, entered: entered}
}

func loadModel(t *testing.T, s *Server) { loadModelWith(t, s, sharedTok) }

func loadModelWith(t *testing.T, s *Server, tok *tokenizer.Tokenizer) {
	t.Helper()
	err := s.Load(context.Background(), func(context.Context) (Model, error) {
		return Model{Embedders: []Embedder{sharedEnc}, Tokenizer: FromTokenizer(tok)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// response is an HTTP answer with its decoded JSON body.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func do(t *testing.T, method, url string, body any, header ...string) response {
	t.Helper()
	return doCtx(t, context.Background(), method, url, body, header...)
}

func doCtx(t *testing.T, ctx context.Context, method, url string, body any, header ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v: %s", method, url, err, raw)
		}
	}
	return r
}

// embeddingsOf decodes the float embeddings of a /v1/embeddings answer,
// checking the envelope fields on the way.
func embeddingsOf(t *testing.T, r response, wantModel string, n int) [][]float32 {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	var body struct {
		Object string `json:"object"`
		Model  string `json:"model"`
		Data   []struct {
			Object    string    `json:"object"`
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(r.raw, &body); err != nil {
		t.Fatalf("decode: %v: %s", err, r.raw)
	}
	if body.Object != "list" || body.Model != wantModel || len(body.Data) != n {
		t.Fatalf("envelope: object %q model %q data %d, want list %q %d", body.Object, body.Model, len(body.Data), wantModel, n)
	}
	out := make([][]float32, n)
	for i, d := range body.Data {
		if d.Object != "embedding" || d.Index != i {
			t.Fatalf("data[%d]: object %q index %d", i, d.Object, d.Index)
		}
		out[i] = d.Embedding
	}
	return out
}

// direct is the embedding computed without the server: the tokenizer and
// the encoder called directly, truncated and normalised to dims.
func direct(t *testing.T, text, prompt string, dims int) []float32 {
	t.Helper()
	ids, _, err := sharedTok.EncodeInput(text, prompt, testMaxSeqLen, tokenizer.TruncateEnd)
	if err != nil {
		t.Fatal(err)
	}
	v, err := sharedEnc.Embed(context.Background(), [][]int32{ids}, dims)
	if err != nil {
		t.Fatal(err)
	}
	return v[0]
}

func maxAbsDiff(a []float32, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-b[i]))
	}
	return d
}

func to64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkError checks a NIM error body: status, param, a message fragment,
// and the top-level detail copy.
func checkError(t *testing.T, r response, status int, param, fragment string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	e, ok := r.body["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object: %s", r.raw)
	}
	msg, _ := e["message"].(string)
	if !bytes.Contains([]byte(msg), []byte(fragment)) {
		t.Errorf("message %q does not contain %q", msg, fragment)
	}
	if r.body["detail"] != msg {
		t.Errorf("detail %v != message %q", r.body["detail"], msg)
	}
	if _, ok := e["type"].(string); !ok {
		t.Errorf("error.type missing: %s", r.raw)
	}
	if _, ok := e["code"].(string); !ok {
		t.Errorf("error.code missing: %s", r.raw)
	}
	gotParam, _ := e["param"].(string)
	if gotParam != param {
		t.Errorf("param %q, want %q", gotParam, param)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// quietLogger sends the server's log to the test log only with -v.
func quietLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
