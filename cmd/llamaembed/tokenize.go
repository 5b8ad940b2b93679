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
	"strings"
	"sync"
	"unicode/utf8"

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

// jsonlText returns the "text" field of one JSONL line. Lines of the usual
// shape take a fast path; anything it does not handle goes to encoding/json,
// which also words the errors.
func jsonlText(line []byte) (string, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return "", errors.New(`empty line: want {"text": ...}`)
	}
	if text, ok := fastText(line); ok {
		return text, nil
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

// fastText reads {"text": "..."} with other fields allowed, when the object
// is flat (string, number, true/false/null values), keys are plain, and
// every string is valid UTF-8 with only simple escapes; ok is false for
// everything else, including errors, so encoding/json decides those. Like
// encoding/json, the last "text" wins.
func fastText(b []byte) (text string, ok bool) {
	i := 0
	skip := func() {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
	}
	// str reads a JSON string at b[i] and returns its value.
	str := func() (string, bool) {
		if i >= len(b) || b[i] != '"' {
			return "", false
		}
		i++
		start := i
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return "", false
		}
		raw := b[start : start+q]
		if bytes.IndexByte(raw, '\\') < 0 {
			for _, c := range raw {
				if c < 0x20 {
					return "", false
				}
			}
			if !utf8.Valid(raw) {
				return "", false
			}
			i = start + q + 1
			return string(raw), true
		}
		out := make([]byte, 0, len(raw)+16)
		for i < len(b) {
			c := b[i]
			switch {
			case c == '"':
				i++
				if !utf8.Valid(out) {
					return "", false
				}
				return string(out), true
			case c < 0x20:
				return "", false
			case c != '\\':
				out = append(out, c)
				i++
				continue
			}
			if i+1 >= len(b) {
				return "", false
			}
			switch e := b[i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'n':
				out = append(out, '\n')
			case 't':
				out = append(out, '\t')
			case 'r':
				out = append(out, '\r')
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'u':
				if i+6 > len(b) {
					return "", false
				}
				v, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 32)
				if err != nil || v >= 0xD800 && v <= 0xDFFF {
					return "", false // surrogates: leave them to encoding/json
				}
				out = utf8.AppendRune(out, rune(v))
				i += 4
			default:
				return "", false
			}
			i += 2
		}
		return "", false
	}
	skip()
	if i >= len(b) || b[i] != '{' {
		return "", false
	}
	i++
	found := false
	for {
		skip()
		key, ok := str()
		if !ok {
			return "", false
		}
		skip()
		if i >= len(b) || b[i] != ':' {
			return "", false
		}
		i++
		skip()
		if key != "text" && strings.EqualFold(key, "text") {
			return "", false // encoding/json matches keys case-insensitively
		}
		if key == "text" {
			if text, ok = str(); !ok {
				return "", false
			}
			found = true
		} else if i < len(b) && b[i] == '"' {
			if _, ok := str(); !ok {
				return "", false
			}
		} else {
			// A number or literal: up to the next ',' or '}'. Anything
			// nested or odd goes to encoding/json.
			start := i
			for i < len(b) && b[i] != ',' && b[i] != '}' {
				if c := b[i]; c == '{' || c == '[' || c == '"' {
					return "", false
				}
				i++
			}
			if !json.Valid(bytes.TrimSpace(b[start:i])) {
				return "", false
			}
		}
		skip()
		if i >= len(b) {
			return "", false
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] != '}' {
			return "", false
		}
		i++
		skip()
		// A JSON null "text" is not a string: let encoding/json refuse it.
		return text, found && i == len(b)
	}
}
