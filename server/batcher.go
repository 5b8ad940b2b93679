package server

import (
	"context"
	"errors"
	"sync"
	"time"
)

// job is one request's sequences on their way through the model.
type job struct {
	ctx      context.Context
	seqs     [][]int32
	out      [][]float32
	next     int // the next sequence to schedule
	pending  int // sequences scheduled or waiting whose vectors have not come back
	done     chan struct{}
	err      error
	enqueued time.Time
	started  time.Time // when its first sequence went into a batch
	finished time.Time
}

// batchItem is one sequence of a batch and where its vector goes.
type batchItem struct {
	j   *job
	idx int
}

// batcher is the queue between tokenization and the model workers. It packs
// sequences from all waiting requests into batches bounded by maxTokens
// (sequences are concatenated, never padded). Requests are visited round
// robin, one sequence each per turn, so a request with many long inputs
// shares every batch with the requests that arrived after it instead of
// holding them back until it is done.
type batcher struct {
	maxTokens int
	met       *serverMetrics

	mu      sync.Mutex
	jobs    []*job // jobs with sequences still to schedule, in arrival order
	rr      int    // where the next batch starts its round
	waiting int    // sequences not yet in a batch
	closed  bool
	wake    chan struct{}
}

var errClosed = errors.New("server is shut down")

func newBatcher(maxTokens int, met *serverMetrics) *batcher {
	return &batcher{maxTokens: maxTokens, met: met, wake: make(chan struct{}, 1)}
}

// submit queues a request's sequences. The job's done channel closes when
// every vector is in out or err is set.
func (b *batcher) submit(ctx context.Context, seqs [][]int32) *job {
	j := &job{ctx: ctx, seqs: seqs, out: make([][]float32, len(seqs)), pending: len(seqs), done: make(chan struct{}), enqueued: time.Now()}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		j.err = errClosed
		close(j.done)
		return j
	}
	if len(seqs) == 0 {
		close(j.done)
		return j
	}
	b.jobs = append(b.jobs, j)
	b.waiting += len(seqs)
	b.met.queueDepth.Set(float64(b.waiting))
	b.signal()
	return j
}

func (b *batcher) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// next blocks until it can return a non-empty batch, or ctx ends or the
// batcher closes (nil).
func (b *batcher) next(ctx context.Context) []batchItem {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil
		}
		items := b.pack()
		if len(b.jobs) > 0 {
			b.signal() // another worker may take the rest
		}
		b.mu.Unlock()
		if len(items) > 0 {
			return items
		}
		select {
		case <-ctx.Done():
			return nil
		case <-b.wake:
		}
	}
}

// pack builds one batch; b.mu is held. Requests whose client has gone away
// are dropped here, before any compute is spent on them.
func (b *batcher) pack() []batchItem {
	live := b.jobs[:0]
	for _, j := range b.jobs {
		if err := j.ctx.Err(); err != nil {
			dropped := len(j.seqs) - j.next
			b.waiting -= dropped
			b.met.dropped.Add(float64(dropped))
			j.pending -= dropped
			j.next = len(j.seqs)
			b.failLocked(j, err)
			continue
		}
		live = append(live, j)
	}
	clear(b.jobs[len(live):])
	b.jobs = live
	if len(b.jobs) == 0 {
		b.met.queueDepth.Set(float64(b.waiting))
		return nil
	}
	var items []batchItem
	tokens := 0
	now := time.Now()
	start := b.rr % len(b.jobs)
	for progress := true; progress; {
		progress = false
		for k := range b.jobs {
			j := b.jobs[(start+k)%len(b.jobs)]
			if j.next >= len(j.seqs) {
				continue
			}
			n := len(j.seqs[j.next])
			// A sequence over the budget on its own still runs, alone.
			if len(items) > 0 && tokens+n > b.maxTokens {
				continue
			}
			if j.started.IsZero() {
				j.started = now
				b.met.queueSeconds.Observe(now.Sub(j.enqueued).Seconds())
			}
			items = append(items, batchItem{j: j, idx: j.next})
			j.next++
			tokens += n
			progress = true
		}
	}
	b.rr = start + 1
	b.waiting -= len(items)
	kept := b.jobs[:0]
	for _, j := range b.jobs {
		if j.next < len(j.seqs) {
			kept = append(kept, j)
		}
	}
	clear(b.jobs[len(kept):])
	b.jobs = kept
	b.met.queueDepth.Set(float64(b.waiting))
	return items
}

// deliver routes a batch's vectors (or its error) back to the jobs.
func (b *batcher) deliver(items []batchItem, vecs [][]float32, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	for i, it := range items {
		j := it.j
		if err != nil {
			b.failLocked(j, err)
		} else {
			j.out[it.idx] = vecs[i]
		}
		j.pending--
		if j.pending == 0 && j.err == nil {
			j.finished = now
			close(j.done)
		}
	}
}

// failLocked ends a job with err (once); b.mu is held.
func (b *batcher) failLocked(j *job, err error) {
	if j.err != nil {
		return
	}
	j.err = err
	// Close now: the handler must not wait for sequences still in a batch
	// of a job that has already failed. (A job whose done is closed by
	// success has no pending sequences, so it never gets here.)
	close(j.done)
}

// close fails every waiting job and wakes the workers so they exit.
func (b *batcher) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for _, j := range b.jobs {
		b.failLocked(j, errClosed)
	}
	b.jobs = nil
	b.waiting = 0
	b.met.queueDepth.Set(0)
	close(b.wake)
}

// runWorker feeds one encoder from the queue until ctx ends.
func (s *Server) runWorker(ctx context.Context, e Embedder, dims int) {
	for {
		items := s.batch.next(ctx)
		if items == nil {
			return
		}
		if s.beforeBatch != nil {
			s.beforeBatch(len(items))
		}
		seqs := make([][]int32, len(items))
		tokens := 0
		for i, it := range items {
			seqs[i] = it.j.seqs[it.idx]
			tokens += len(seqs[i])
		}
		t0 := time.Now()
		// The batch mixes requests, so no one request's context may cancel
		// it; only shutdown does.
		vecs, err := e.Embed(ctx, seqs, dims)
		d := time.Since(t0)
		if err == nil && len(vecs) != len(seqs) {
			err = errors.New("encoder returned the wrong number of vectors")
		}
		if err != nil {
			s.log.Error("batch failed", "device", e.Device(), "sequences", len(seqs), "tokens", tokens, "err", err)
		}
		s.met.observeBatch(e.Device(), len(seqs), tokens, d)
		s.batch.deliver(items, vecs, err)
	}
}
