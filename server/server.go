// Package server is the HTTP front of llamaembed: NVIDIA's NIM embedding API
// (POST /v1/embeddings and the /v1 health, model and metadata routes, as
// nv-ingest calls them) and the WAYWO embedding service (POST /embed,
// GET /health).
//
// A request flows TEI-style through four stages: the HTTP handler parses and
// validates it; a tokenization pool turns its texts into token ids; a batch
// queue packs sequences from many requests into batches bounded by a token
// budget (no padding); one model worker per encoder runs the batches and
// routes each vector back to its request.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"llamaembed/weights"
)

// Version is the llamaembed release reported by /v1/version and /v1/metadata.
var Version = "0.1.0"

// Embedder is the model as the server needs it; *model.Encoder satisfies it.
// Embed returns one L2-normalised vector of dims floats per sequence. Each
// Embedder is driven by a single worker goroutine, so it need not be safe
// for concurrent use.
type Embedder interface {
	Embed(ctx context.Context, seqs [][]int32, dims int) ([][]float32, error)
	Config() *weights.Config
	Device() string
}

// Truncate says what to do with an input longer than the sequence limit.
type Truncate int

const (
	TruncateNone  Truncate = iota // reject it (400)
	TruncateEnd                   // drop tokens from the end
	TruncateStart                 // drop tokens from the start
)

// Tokenizer turns a text into the token ids the model sees. Encode prepends
// the prompt and the special tokens; with TruncateNone an input longer than
// maxLen is an *InputTooLongError. It must be safe for concurrent use.
type Tokenizer interface {
	Encode(text, prompt string, maxLen int, trunc Truncate) ([]int32, error)
	// Prompts are the prefixes for queries and for documents ("query: ",
	// "passage: " for the 1b model); both empty for a symmetric model.
	Prompts() (query, passage string)
}

// InputTooLongError is an input of N tokens over the limit of M.
type InputTooLongError struct{ N, M int }

func (e *InputTooLongError) Error() string {
	return fmt.Sprintf("Input length %d exceeds maximum allowed token size %d", e.N, e.M)
}

// Model is what Load produces: the encoders (one per device, each gets its
// own worker) and the tokenizer they share.
type Model struct {
	Embedders []Embedder
	Tokenizer Tokenizer
}

// Config is the server's settings; zero values take the defaults noted.
type Config struct {
	ServedModelName       string // required: the name clients put in "model"
	ModelVersion          string // in /v1/metadata shortName (default "1.0.0")
	MaxSeqLen             int    // tokens per input, after the prompt (default 8192)
	MaxBatchSize          int    // inputs per /v1/embeddings request (default 30)
	MaxBatchTokens        int    // tokens per model batch (default max(8192, MaxSeqLen))
	MaxConcurrentRequests int    // requests admitted at once; past it 429 (default 256)
	MaxDocuments          int    // documents per /embed request (default 1024)
	MaxBodyBytes          int64  // request body limit; past it 413 (default 8 MiB)
	TokenizeWorkers       int    // tokenization goroutines (default GOMAXPROCS)
	APIKey                string // when set, a bearer key is required
	LicenseName           string // for /v1/license and /v1/metadata
	LicenseText           string
	Logger                *slog.Logger
}

func (c *Config) setDefaults() {
	if c.ModelVersion == "" {
		c.ModelVersion = "1.0.0"
	}
	if c.MaxSeqLen <= 0 {
		c.MaxSeqLen = 8192
	}
	if c.MaxBatchSize <= 0 {
		c.MaxBatchSize = 30
	}
	if c.MaxBatchTokens <= 0 {
		c.MaxBatchTokens = max(8192, c.MaxSeqLen)
	}
	if c.MaxConcurrentRequests <= 0 {
		c.MaxConcurrentRequests = 256
	}
	if c.MaxDocuments <= 0 {
		c.MaxDocuments = 1024
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 8 << 20
	}
	if c.TokenizeWorkers <= 0 {
		c.TokenizeWorkers = runtime.GOMAXPROCS(0)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

type state int

const (
	stateLoading state = iota
	stateReady
	stateDraining
	stateFailed
)

// Server is the HTTP service. Create it with New, serve Handler() at once
// (liveness answers while the model loads), then call Load.
type Server struct {
	cfg     Config
	log     *slog.Logger
	met     *serverMetrics
	handler http.Handler
	started time.Time

	mu       sync.Mutex
	state    state
	inflight int
	drained  chan struct{} // closed when draining and inflight reaches 0
	model    *loadedModel
	closed   bool
	stop     context.CancelFunc // stops the workers

	batch   *batcher
	workers sync.WaitGroup

	// beforeBatch, when set (tests only), runs in the worker before each
	// batch goes to the model: tests use it to hold the worker and so build
	// a queue deterministically.
	beforeBatch func(sequences int)
}

type loadedModel struct {
	tok            Tokenizer
	query, passage string
	hidden         int
	asymmetric     bool
	tokenize       *tokenizePool
	devices        []string
}

// New builds a server in the loading state.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.ServedModelName == "" {
		return nil, errors.New("server: ServedModelName is required")
	}
	if cfg.MaxBatchTokens < cfg.MaxSeqLen {
		return nil, fmt.Errorf("server: max batch tokens %d is below max sequence length %d", cfg.MaxBatchTokens, cfg.MaxSeqLen)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, met: newServerMetrics(), started: time.Now()}
	s.batch = newBatcher(cfg.MaxBatchTokens, s.met)
	s.handler = s.routes()
	return s, nil
}

// Handler is the server's HTTP handler: all routes, with request ids,
// logging, metrics and the API key check.
func (s *Server) Handler() http.Handler { return s.handler }

// Load runs load, warms every encoder with one short input, starts one
// model worker per encoder and turns ready. On error the server stays
// unready (503) and the error is returned.
func (s *Server) Load(ctx context.Context, load func(context.Context) (Model, error)) error {
	m, err := load(ctx)
	if err == nil {
		err = s.start(ctx, m)
	}
	if err != nil {
		s.mu.Lock()
		if s.state == stateLoading {
			s.state = stateFailed
		}
		s.mu.Unlock()
		return err
	}
	return nil
}

func (s *Server) start(ctx context.Context, m Model) error {
	if len(m.Embedders) == 0 || m.Tokenizer == nil {
		return errors.New("server: a model needs at least one embedder and a tokenizer")
	}
	cfg := m.Embedders[0].Config()
	if cfg == nil || cfg.HiddenSize <= 0 {
		return errors.New("server: encoder has no hidden size")
	}
	q, p := m.Tokenizer.Prompts()
	lm := &loadedModel{tok: m.Tokenizer, query: q, passage: p, hidden: cfg.HiddenSize, asymmetric: q != p}
	for i, e := range m.Embedders {
		if e.Config().HiddenSize != lm.hidden {
			return fmt.Errorf("server: encoder %d has hidden size %d, encoder 0 has %d", i, e.Config().HiddenSize, lm.hidden)
		}
		lm.devices = append(lm.devices, e.Device())
	}
	// Warm up each encoder (first-call allocations, kernel loads) before
	// readiness so the first client request does not pay for it.
	ids, err := m.Tokenizer.Encode("warm up", p, s.cfg.MaxSeqLen, TruncateEnd)
	if err != nil {
		return fmt.Errorf("server: warm-up tokenization: %w", err)
	}
	for _, e := range m.Embedders {
		t0 := time.Now()
		if _, err := e.Embed(ctx, [][]int32{ids}, lm.hidden); err != nil {
			return fmt.Errorf("server: warm-up on %s: %w", e.Device(), err)
		}
		s.log.Info("encoder warmed up", "device", e.Device(), "took", time.Since(t0))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Checked under the lock that Close also takes, so a drain that began
	// while the model loaded never races with starting the workers.
	if s.state != stateLoading || s.closed {
		return errors.New("server: shut down while loading")
	}
	lm.tokenize = newTokenizePool(m.Tokenizer, s.cfg.TokenizeWorkers)
	wctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	for _, e := range m.Embedders {
		s.workers.Add(1)
		go func() {
			defer s.workers.Done()
			s.runWorker(wctx, e, lm.hidden)
		}()
	}
	s.model = lm
	s.state = stateReady
	s.log.Info("model ready", "served_model_name", s.cfg.ServedModelName, "hidden", lm.hidden, "devices", lm.devices,
		"max_seq_len", s.cfg.MaxSeqLen, "max_batch_tokens", s.cfg.MaxBatchTokens, "asymmetric", lm.asymmetric)
	return nil
}

// Ready reports whether the model is loaded and the server is not draining.
func (s *Server) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == stateReady
}

// Drain turns the server unready, refuses new work (503) and waits for the
// requests in flight to finish or ctx to end. It then stops the workers.
func (s *Server) Drain(ctx context.Context) error {
	s.mu.Lock()
	if s.state != stateDraining {
		s.state = stateDraining
		s.drained = make(chan struct{})
		if s.inflight == 0 {
			close(s.drained)
		}
	}
	drained := s.drained
	n := s.inflight
	s.mu.Unlock()
	s.log.Info("draining", "in_flight", n)
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = fmt.Errorf("drain: %d requests still in flight: %w", s.inFlight(), ctx.Err())
	}
	s.Close()
	return err
}

func (s *Server) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight
}

// Close stops the model workers; requests still queued fail. The server
// cannot be loaded again.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	stop, m := s.stop, s.model
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.batch.close()
	s.workers.Wait()
	if m != nil && m.tokenize != nil {
		m.tokenize.close()
	}
}

// admission is a request's slot: release it when the request is done.
type admission struct {
	s     *Server
	model *loadedModel
	once  sync.Once
}

func (a *admission) release() {
	a.once.Do(func() {
		s := a.s
		s.mu.Lock()
		s.inflight--
		s.met.inFlight.Set(float64(s.inflight))
		if s.state == stateDraining && s.inflight == 0 {
			close(s.drained)
		}
		s.mu.Unlock()
	})
}

// errNotReady and errOverloaded are the admission refusals.
var (
	errLoading  = errors.New("model is not loaded yet")
	errDraining = errors.New("server is shutting down")
	errFull     = errors.New("too many requests in flight")
)

// admit takes a slot for one inference request, or says why not.
func (s *Server) admit() (*admission, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateLoading, stateFailed:
		return nil, errLoading
	case stateDraining:
		return nil, errDraining
	}
	if s.inflight >= s.cfg.MaxConcurrentRequests {
		return nil, errFull
	}
	s.inflight++
	s.met.inFlight.Set(float64(s.inflight))
	return &admission{s: s, model: s.model}, nil
}

func (s *Server) routes() http.Handler {
	r := mux.NewRouter()
	r.Use(s.routeLabel)
	// Probes and scrapes never need the API key.
	r.HandleFunc("/v1/health/live", s.handleLive).Methods(http.MethodGet)
	r.HandleFunc("/v1/health/ready", s.handleReady).Methods(http.MethodGet)
	r.HandleFunc("/health", s.handleWaywoHealth).Methods(http.MethodGet)
	r.HandleFunc("/v1/metrics", s.handleMetrics).Methods(http.MethodGet)
	r.HandleFunc("/metrics", s.handleMetrics).Methods(http.MethodGet)

	r.HandleFunc("/v1/embeddings", s.requireKey(s.handleEmbeddings)).Methods(http.MethodPost)
	r.HandleFunc("/embed", s.requireKey(s.handleWaywoEmbed)).Methods(http.MethodPost)
	r.HandleFunc("/v1/models", s.requireKey(s.handleModels)).Methods(http.MethodGet)
	r.HandleFunc("/v1/metadata", s.requireKey(s.handleMetadata)).Methods(http.MethodGet)
	r.HandleFunc("/v1/version", s.requireKey(s.handleVersion)).Methods(http.MethodGet)
	r.HandleFunc("/v1/license", s.requireKey(s.handleLicense)).Methods(http.MethodGet)

	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, http.StatusNotFound, "not_found_error", "", "not_found", fmt.Sprintf("no route for %s %s", req.Method, req.URL.Path))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "", "method_not_allowed", fmt.Sprintf("method %s is not allowed on %s", req.Method, req.URL.Path))
	})
	return s.observe(r)
}
