package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"llamaembed/model"
	_ "llamaembed/model/cpu" // the CPU backend
	"llamaembed/server"
	"llamaembed/tokenizer"
	"llamaembed/weights/hub"
)

func init() {
	register("serve", "serve the NIM embeddings API (/v1/embeddings) and the WAYWO /embed API over HTTP", runServe)
}

// serveListening, when set (tests), is told the address once the listener
// is open.
var serveListening func(addr string)

// serveOptions are the serve flags after the environment defaults.
type serveOptions struct {
	model, host, device, servedName, modelVersion, apiKey        string
	port, maxSeqLen, maxBatchSize, maxBatchTokens, maxConcurrent int
	maxBodyBytes                                                 int64
	drainTimeout                                                 time.Duration
}

// parseServeFlags reads the flags; environment variables named as the NIM
// names them give the defaults, and flags win over them.
func parseServeFlags(args []string, getenv func(string) string, stderr io.Writer) (*serveOptions, error) {
	var envErr error
	envInt := func(name string, def int) int {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			envErr = errors.Join(envErr, fmt.Errorf("environment %s=%q: want a non-negative integer", name, v))
			return def
		}
		return n
	}
	o := &serveOptions{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: llamaembed serve --model MODEL [flags]\n\n"+
			"Serves POST /v1/embeddings (NIM), POST /embed (WAYWO), health, models, metadata and metrics.\n"+
			"Environment defaults (flags win): NIM_HTTP_API_PORT, NIM_TRITON_MAX_BATCH_SIZE, NIM_SERVED_MODEL_NAME,\n"+
			"MODEL_VERSION, MAX_SEQUENCE_LENGTH, NIM_API_KEY; LOG_LEVEL or NIM_LOG_LEVEL set the log level.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.model, "model", "", "checkpoint directory or Hugging Face hub id org/name[@revision] (required)")
	fs.StringVar(&o.host, "host", "0.0.0.0", "address to listen on")
	fs.IntVar(&o.port, "port", envInt("NIM_HTTP_API_PORT", 8000), "port to listen on (env NIM_HTTP_API_PORT)")
	fs.StringVar(&o.device, "device", "auto", "auto, cpu, cuda or cuda:N; a comma-separated list runs one model worker per device")
	fs.StringVar(&o.servedName, "served-model-name", getenv("NIM_SERVED_MODEL_NAME"), "the name clients send as \"model\" (env NIM_SERVED_MODEL_NAME; default: the hub id, or the directory name of a local model)")
	fs.StringVar(&o.modelVersion, "model-version", getenv("MODEL_VERSION"), "version reported in /v1/metadata shortName (env MODEL_VERSION; default 1.0.0)")
	fs.IntVar(&o.maxSeqLen, "max-seq-len", envInt("MAX_SEQUENCE_LENGTH", 8192), "maximum tokens of one input, BOS and prompt included (env MAX_SEQUENCE_LENGTH)")
	fs.IntVar(&o.maxBatchSize, "max-batch-size", envInt("NIM_TRITON_MAX_BATCH_SIZE", 30), "maximum inputs in one /v1/embeddings request (env NIM_TRITON_MAX_BATCH_SIZE)")
	fs.IntVar(&o.maxBatchTokens, "max-batch-tokens", 0, "maximum tokens in one model batch (default: max(8192, --max-seq-len))")
	fs.IntVar(&o.maxConcurrent, "max-concurrent-requests", 256, "requests admitted at once (queued or running); past it 429")
	fs.StringVar(&o.apiKey, "api-key", getenv("NIM_API_KEY"), "require 'Authorization: Bearer KEY' (env NIM_API_KEY; default: none, Authorization ignored)")
	fs.Int64Var(&o.maxBodyBytes, "max-body-bytes", 8<<20, "request body limit; past it 413")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, how long requests in flight may take to finish")
	if err := fs.Parse(args); err != nil {
		return nil, errUsage
	}
	if envErr != nil {
		fmt.Fprintf(stderr, "serve: %v\n", envErr)
		return nil, errUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "serve: unexpected arguments %q\n", fs.Args())
		return nil, errUsage
	}
	var bad []string
	if o.model == "" {
		bad = append(bad, "--model is required")
	}
	if o.port < 0 || o.port > 65535 {
		bad = append(bad, fmt.Sprintf("--port %d is not a port", o.port))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"--max-seq-len", o.maxSeqLen}, {"--max-batch-size", o.maxBatchSize}, {"--max-concurrent-requests", o.maxConcurrent}} {
		if f.v < 1 {
			bad = append(bad, fmt.Sprintf("%s must be at least 1, not %d", f.name, f.v))
		}
	}
	if o.maxBatchTokens == 0 {
		o.maxBatchTokens = max(8192, o.maxSeqLen)
	}
	if o.maxBatchTokens < o.maxSeqLen {
		bad = append(bad, fmt.Sprintf("--max-batch-tokens %d is below --max-seq-len %d: a sequence must fit in one batch", o.maxBatchTokens, o.maxSeqLen))
	}
	if o.maxBodyBytes < 1 || o.drainTimeout < 0 {
		bad = append(bad, "--max-body-bytes must be positive and --drain-timeout not negative")
	}
	if len(bad) > 0 {
		fmt.Fprintf(stderr, "serve: %s\n", strings.Join(bad, "; "))
		return nil, errUsage
	}
	if o.servedName == "" {
		o.servedName = defaultServedName(o.model)
	}
	return o, nil
}

// defaultServedName is the hub id without its revision, or the base name
// of a local directory.
func defaultServedName(spec string) string {
	if hub.IsLocal(spec) {
		abs, err := filepath.Abs(spec)
		if err != nil {
			abs = spec
		}
		return filepath.Base(abs)
	}
	id, _, _ := strings.Cut(spec, "@")
	return id
}

func runServe(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := parseServeFlags(args, os.Getenv, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return serve(ctx, o, stderr)
}

// serve listens at once (liveness answers, readiness is 503), loads the
// model, serves until ctx ends (SIGTERM), then drains: readiness 503, new
// work refused, requests in flight finish within the drain timeout.
func serve(ctx context.Context, o *serveOptions, stderr io.Writer) error {
	srv, err := server.New(server.Config{
		ServedModelName:       o.servedName,
		ModelVersion:          o.modelVersion,
		MaxSeqLen:             o.maxSeqLen,
		MaxBatchSize:          o.maxBatchSize,
		MaxBatchTokens:        o.maxBatchTokens,
		MaxConcurrentRequests: o.maxConcurrent,
		MaxBodyBytes:          o.maxBodyBytes,
		APIKey:                o.apiKey,
		Logger:                slog.Default(),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.host, strconv.Itoa(o.port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// No WriteTimeout: a big batch on a slow device may take long to compute.
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 30 * time.Second, ReadTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	slog.Info("listening", "addr", ln.Addr().String(), "served_model_name", o.servedName, "api_key_required", o.apiKey != "")
	if serveListening != nil {
		serveListening(ln.Addr().String())
	}

	var encoders []*model.Encoder
	defer func() {
		for _, e := range encoders {
			e.Close()
		}
	}()
	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	loaded := make(chan error, 1)
	go func() {
		loaded <- srv.Load(loadCtx, func(ctx context.Context) (server.Model, error) {
			t0 := time.Now()
			dir, err := hub.Resolve(ctx, o.model, hub.Options{Progress: stderr})
			if err != nil {
				return server.Model{}, err
			}
			tok, err := tokenizer.LoadDir(dir)
			if err != nil {
				return server.Model{}, fmt.Errorf("tokenizer: %w", err)
			}
			m := server.Model{Tokenizer: server.FromTokenizer(tok)}
			for _, dev := range strings.Split(o.device, ",") {
				e, err := model.Load(ctx, dir, strings.TrimSpace(dev), model.Options{MaxSeqLen: o.maxSeqLen, MaxBatchTokens: o.maxBatchTokens})
				if err != nil {
					return server.Model{}, err
				}
				encoders = append(encoders, e)
				m.Embedders = append(m.Embedders, e)
			}
			p := tok.Prompts()
			slog.Info("model loaded", "model", o.model, "dir", dir, "seconds", time.Since(t0).Seconds(), "query_prompt", p.Query, "passage_prompt", p.Passage)
			return m, nil
		})
	}()

	for {
		select {
		case err := <-loaded:
			if err != nil {
				shutdownHTTP(hs)
				if ctx.Err() != nil {
					return nil // stopped while loading
				}
				return fmt.Errorf("load model %s: %w", o.model, err)
			}
			loaded = nil
		case err := <-serveErr:
			cancelLoad()
			if loaded != nil {
				<-loaded
			}
			return fmt.Errorf("http server: %w", err)
		case <-ctx.Done():
			slog.Info("shutting down: readiness 503, refusing new work, waiting for requests in flight", "timeout", o.drainTimeout)
			cancelLoad()
			dctx, cancel := context.WithTimeout(context.Background(), o.drainTimeout)
			derr := srv.Drain(dctx)
			cancel()
			if derr != nil {
				slog.Warn("drain incomplete", "err", derr)
			}
			shutdownHTTP(hs)
			if loaded != nil {
				<-loaded // the loader must not outlive the encoders' Close
			}
			slog.Info("stopped")
			return nil
		}
	}
}

// shutdownHTTP closes the listener and lets responses being written finish.
func shutdownHTTP(hs *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		hs.Close()
	}
}
