package server

import (
	"context"
	"sync"
)

// tokenizePool runs tokenization on a fixed set of goroutines, so a burst
// of requests uses every core without starting a goroutine per text.
type tokenizePool struct {
	tok   Tokenizer
	tasks chan tokenizeTask
	quit  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

type tokenizeTask struct {
	text, prompt string
	maxLen       int
	trunc        Truncate
	out          *[]int32
	err          *error
	done         *sync.WaitGroup
}

func newTokenizePool(tok Tokenizer, workers int) *tokenizePool {
	p := &tokenizePool{tok: tok, tasks: make(chan tokenizeTask), quit: make(chan struct{})}
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				select {
				case t := <-p.tasks:
					*t.out, *t.err = p.tok.Encode(t.text, t.prompt, t.maxLen, t.trunc)
					t.done.Done()
				case <-p.quit:
					return
				}
			}
		}()
	}
	return p
}

// encode tokenizes texts in parallel. It returns the first error in input
// order, with that input's index, or ctx's error if the client went away.
func (p *tokenizePool) encode(ctx context.Context, texts []string, prompt string, maxLen int, trunc Truncate) ([][]int32, int, error) {
	ids := make([][]int32, len(texts))
	errs := make([]error, len(texts))
	var done sync.WaitGroup
	for i, t := range texts {
		done.Add(1)
		select {
		case p.tasks <- tokenizeTask{text: t, prompt: prompt, maxLen: maxLen, trunc: trunc, out: &ids[i], err: &errs[i], done: &done}:
		case <-ctx.Done():
			done.Done() // this text was never handed over
			done.Wait()
			return nil, -1, ctx.Err()
		case <-p.quit:
			done.Done()
			done.Wait()
			return nil, -1, errClosed
		}
	}
	done.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, i, err
		}
	}
	return ids, -1, nil
}

func (p *tokenizePool) close() {
	p.once.Do(func() { close(p.quit) })
	p.wg.Wait()
}
