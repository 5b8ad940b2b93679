package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync"

	"llamaembed/tokenizer"
	"llamaembed/weights/hub"
)

func init() {
	register("tokenize", "JSONL {\"text\": ...} lines to {\"ids\": [...]} lines", runTokenize)
}

func runTokenize(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "model directory or hub id (its tokenizer.json)")
	file := fs.String("tokenizer", "", "path of a tokenizer.json")
	noSpecial := fs.Bool("no-special", false, "do not add BOS (special-token literals in the text still match)")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "tokenizing goroutines")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: llamaembed tokenize (--model MODEL | --tokenizer FILE) [--no-special] < in.jsonl > out.jsonl")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if (*model == "") == (*file == "") || fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	tok, err := loadTokenizerFlag(context.Background(), *model, *file, stderr)
	if err != nil {
		return err
	}
	return tokenizeJSONL(tok, stdin, stdout, !*noSpecial, *workers)
}

// loadTokenizerFlag loads the tokenizer named by a --model (a directory, or
// a hub id fetched like serve does) or a --tokenizer flag; exactly one is set.
func loadTokenizerFlag(ctx context.Context, model, file string, progress io.Writer) (*tokenizer.Tokenizer, error) {
	if file != "" {
		return tokenizer.Load(file)
	}
	dir, err := hub.Resolve(ctx, model, hub.Options{Progress: progress})
	if err != nil {
		return nil, err
	}
	return tokenizer.LoadDir(dir)
}

// tokenizeChunk is a run of input lines tokenized by one worker; chunks are
// written in the order they were read.
type tokenizeChunk struct {
	first int // line number of lines[0], 1-based
	lines [][]byte
	out   []byte
	err   error
	done  chan struct{}
}

const tokenizeChunkLines = 256

// maxTokenizeLine bounds one input line, so that a stream without newlines
// is an error rather than an unbounded allocation.
var maxTokenizeLine = 256 << 20

var errLineTooLong = errors.New("line too long")

// readLine returns the next line with its newline, io.EOF after the last
// one, or errLineTooLong.
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > limit {
			return nil, errLineTooLong
		}
		line = append(line, frag...)
		if err != bufio.ErrBufferFull {
			return line, err
		}
	}
}

// tokenizeJSONL reads {"text": ...} lines and writes one {"ids": [...]} line
// for each, in order, tokenizing on workers goroutines. Blank lines are
// refused: the output must have one line per input line.
func tokenizeJSONL(tok *tokenizer.Tokenizer, r io.Reader, w io.Writer, addSpecial bool, workers int) error {
	if workers < 1 {
		workers = 1
	}
	in := bufio.NewReaderSize(r, 1<<20)
	bw := bufio.NewWriterSize(w, 1<<20)
	work := make(chan *tokenizeChunk, workers*2)
	ordered := make(chan *tokenizeChunk, workers*4)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				c.out, c.err = tokenizeLines(tok, c, addSpecial)
				close(c.done)
			}
		}()
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(work)
		defer close(ordered)
		line := 0
		for {
			c := &tokenizeChunk{first: line + 1, done: make(chan struct{})}
			var err error
			for len(c.lines) < tokenizeChunkLines {
				var b []byte
				b, err = readLine(in, maxTokenizeLine)
				if errors.Is(err, errLineTooLong) {
					err = fmt.Errorf("line %d: %w (more than %d bytes)", line+1, err, maxTokenizeLine)
				}
				if len(b) > 0 && (err == nil || errors.Is(err, io.EOF)) {
					c.lines = append(c.lines, b)
					line++
				}
				if err != nil {
					break
				}
			}
			if len(c.lines) > 0 {
				ordered <- c
				work <- c
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				readErr <- err
				return
			}
		}
	}()
	var firstErr error
	for c := range ordered {
		<-c.done
		if firstErr != nil {
			continue // drain so the reader and workers finish
		}
		if c.err != nil {
			firstErr = c.err
			continue
		}
		if _, err := bw.Write(c.out); err != nil {
			firstErr = fmt.Errorf("write: %w", err)
		}
	}
	wg.Wait()
	if err := <-readErr; err != nil && firstErr == nil {
		firstErr = fmt.Errorf("read: %w", err)
	}
	if firstErr != nil {
		return firstErr
	}
	return bw.Flush()
}

func tokenizeLines(tok *tokenizer.Tokenizer, c *tokenizeChunk, addSpecial bool) ([]byte, error) {
	out := make([]byte, 0, 64*len(c.lines))
	var ids []int32
	for i, line := range c.lines {
		text, err := jsonlText(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", c.first+i, err)
		}
		ids = tok.AppendEncode(ids[:0], text, addSpecial)
		out = append(out, `{"ids":[`...)
		for k, id := range ids {
			if k > 0 {
				out = append(out, ',')
			}
			out = strconv.AppendInt(out, int64(id), 10)
		}
		out = append(out, "]}\n"...)
	}
	return out, nil
}

// jsonlText returns the "text" field of one JSONL line.
func jsonlText(line []byte) (string, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return "", errors.New(`empty line: want {"text": ...}`)
	}
	var v struct {
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(line, &v); err != nil {
		return "", fmt.Errorf("want {\"text\": ...}: %w", err)
	}
	if v.Text == nil {
		return "", errors.New(`missing "text" field`)
	}
	return *v.Text, nil
}
