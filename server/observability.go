package server

import (
	"net/http"
	"time"

	"llamaembed/server/metrics"
)

// serverMetrics are the Prometheus series the server exports.
type serverMetrics struct {
	reg            *metrics.Registry
	requests       *metrics.CounterVec
	requestSeconds *metrics.HistogramVec
	rejected       *metrics.CounterVec
	inFlight       *metrics.GaugeVec
	queueDepth     *metrics.GaugeVec
	queueSeconds   *metrics.HistogramVec
	tokenizeSecs   *metrics.HistogramVec
	inferenceSecs  *metrics.HistogramVec
	batchSize      *metrics.HistogramVec
	batchTokens    *metrics.HistogramVec
	tokens         *metrics.CounterVec
	sequences      *metrics.CounterVec
	tokensPerSec   *metrics.GaugeVec
	dropped        *metrics.CounterVec
}

var latencyBuckets = metrics.ExponentialBuckets(0.0005, 2, 16) // 0.5 ms .. 16 s

func newServerMetrics() *serverMetrics {
	r := metrics.NewRegistry()
	return &serverMetrics{
		reg:            r,
		requests:       r.NewCounter("llamaembed_http_requests_total", "HTTP requests by route and status code (499: client went away).", "route", "code"),
		requestSeconds: r.NewHistogram("llamaembed_http_request_duration_seconds", "HTTP request latency by route.", latencyBuckets, "route"),
		rejected:       r.NewCounter("llamaembed_requests_rejected_total", "Inference requests refused at admission, by reason.", "reason"),
		inFlight:       r.NewGauge("llamaembed_requests_in_flight", "Inference requests admitted and not yet answered."),
		queueDepth:     r.NewGauge("llamaembed_queue_depth", "Sequences waiting for a batch."),
		queueSeconds:   r.NewHistogram("llamaembed_queue_duration_seconds", "Time from a request's sequences entering the queue to the first of them entering a batch.", latencyBuckets),
		tokenizeSecs:   r.NewHistogram("llamaembed_tokenize_duration_seconds", "Tokenization time per request.", latencyBuckets),
		inferenceSecs:  r.NewHistogram("llamaembed_inference_duration_seconds", "Model time per batch.", latencyBuckets, "device"),
		batchSize:      r.NewHistogram("llamaembed_batch_size", "Sequences per model batch.", []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}, "device"),
		batchTokens:    r.NewHistogram("llamaembed_batch_tokens", "Tokens per model batch.", metrics.ExponentialBuckets(16, 2, 12), "device"),
		tokens:         r.NewCounter("llamaembed_tokens_total", "Tokens embedded.", "device"),
		sequences:      r.NewCounter("llamaembed_sequences_total", "Sequences embedded.", "device"),
		tokensPerSec:   r.NewGauge("llamaembed_tokens_per_second", "Throughput of the last batch (tokens / model time).", "device"),
		dropped:        r.NewCounter("llamaembed_sequences_dropped_total", "Sequences dropped before compute because their client went away."),
	}
}

func (m *serverMetrics) observeBatch(device string, seqs, tokens int, d time.Duration) {
	m.inferenceSecs.Observe(d.Seconds(), device)
	m.batchSize.Observe(float64(seqs), device)
	m.batchTokens.Observe(float64(tokens), device)
	m.tokens.Add(float64(tokens), device)
	m.sequences.Add(float64(seqs), device)
	if d > 0 {
		m.tokensPerSec.Set(float64(tokens)/d.Seconds(), device)
	}
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.met.reg.WriteTo(w)
}
