package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// embedResult is what the pipeline hands back to a handler.
type embedResult struct {
	vecs   [][]float32 // full-size, L2-normalised, one per text in order
	tokens []int       // tokens per text (prompt and special tokens included)
	timing timing
}

type timing struct {
	start                      time.Time
	tokenize, queue, inference time.Duration
	totalTokens                int
}

// setHeaders writes TEI's timing headers (milliseconds).
func (t timing) setHeaders(w http.ResponseWriter) {
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	h := w.Header()
	h.Set("x-total-time", ms(time.Since(t.start)))
	h.Set("x-tokenization-time", ms(t.tokenize))
	h.Set("x-queue-time", ms(t.queue))
	h.Set("x-inference-time", ms(t.inference))
	h.Set("x-compute-time", ms(t.tokenize+t.inference))
	h.Set("x-compute-tokens", strconv.Itoa(t.totalTokens))
}

// errClientGone means the request's context ended: nothing is written.
var errClientGone = errors.New("client went away")

// embed tokenizes texts on the pool, queues them for the model workers and
// waits for every vector. The error is a *reqError, errClientGone, or
// another error (500).
func (s *Server) embed(ctx context.Context, m *loadedModel, texts []string, prompt string, trunc Truncate) (*embedResult, error) {
	res := &embedResult{timing: timing{start: time.Now()}}
	t0 := time.Now()
	ids, bad, err := m.tokenize.encode(ctx, texts, prompt, s.cfg.MaxSeqLen, trunc)
	res.timing.tokenize = time.Since(t0)
	s.met.tokenizeSecs.Observe(res.timing.tokenize.Seconds())
	if err != nil {
		if ctx.Err() != nil {
			return nil, errClientGone
		}
		if errors.Is(err, errClosed) {
			return nil, admissionError(errDraining)
		}
		var tooLong *InputTooLongError
		if errors.As(err, &tooLong) {
			return nil, badRequest("input", tooLong.Error())
		}
		return nil, badRequest("input", fmt.Sprintf("input %d: %v", bad, err))
	}
	res.tokens = make([]int, len(ids))
	for i, s := range ids {
		res.tokens[i] = len(s)
		res.timing.totalTokens += len(s)
	}
	addLog(ctx, slog.Int("inputs", len(texts)), slog.Int("tokens", res.timing.totalTokens))

	j := s.batch.submit(ctx, ids)
	select {
	case <-j.done:
	case <-ctx.Done():
		return nil, errClientGone
	}
	if j.err != nil {
		if ctx.Err() != nil {
			return nil, errClientGone
		}
		if errors.Is(j.err, errClosed) {
			return nil, admissionError(errDraining)
		}
		return nil, fmt.Errorf("embedding failed: %w", j.err)
	}
	res.vecs = j.out
	res.timing.queue = j.started.Sub(j.enqueued)
	res.timing.inference = j.finished.Sub(j.started)
	return res, nil
}

// readBody reads the request body up to the limit; past it, 413.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *reqError) {
	tooLarge := &reqError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error", code: "request_too_large",
		msg: fmt.Sprintf("request body is larger than the limit of %d bytes", s.cfg.MaxBodyBytes)}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, badRequest("", "reading request body: "+err.Error())
	}
	return body, nil
}
