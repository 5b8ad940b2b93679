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
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"time"

	"llamaembed/model"
	_ "llamaembed/model/cpu" // the CPU backend
	"llamaembed/tokenizer"
)

func init() {
	register("embed", "embed JSON lines ({\"ids\": [...]} or {\"text\": ...}) from stdin, one embedding per line to stdout", runEmbed)
}

// maxLineBytes bounds one input line, so a runaway input fails clearly
// instead of growing a buffer without end.
const maxLineBytes = 64 << 20

func runEmbed(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("embed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: llamaembed embed --model MODEL [flags] < in.jsonl > out.jsonl\n\n"+
			"Each input line is {\"ids\": [...]} (token ids used exactly as given) or {\"text\": \"...\"}\n"+
			"(tokenized with the model's tokenizer.json, BOS added, prompt per --input-type).\n"+
			"Each output line is {\"embedding\": [...], \"tokens\": N}, in input order.\n\n")
		fs.PrintDefaults()
	}
	modelSpec := fs.String("model", "", "checkpoint directory or Hugging Face hub id org/name[@revision] (required)")
	device := fs.String("device", "auto", "where to run: auto, cpu, cuda or cuda:N")
	dims := fs.Int("dimensions", 0, "truncate embeddings to their first N components before normalising (0: full)")
	inputType := fs.String("input-type", "", `prompt for text lines: "query" or "passage" (empty: the text as given)`)
	truncate := fs.String("truncate", "NONE", "text longer than --max-seq-len: NONE (error), END or START (drop tokens from that end)")
	maxSeqLen := fs.Int("max-seq-len", 0, "maximum tokens of one input (0: the model's maximum)")
	batch := fs.Int("batch", 64, "input lines embedded per call")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "embed: unexpected arguments %q (input comes from stdin)\n", fs.Args())
		return errUsage
	}
	if *modelSpec == "" {
		fmt.Fprintln(stderr, "embed: --model is required")
		return errUsage
	}
	if *dims < 0 || *maxSeqLen < 0 || *batch < 1 {
		fmt.Fprintln(stderr, "embed: --dimensions and --max-seq-len must not be negative, --batch must be positive")
		return errUsage
	}
	if *inputType != "" && *inputType != "query" && *inputType != "passage" {
		fmt.Fprintf(stderr, "embed: --input-type %q: want query or passage\n", *inputType)
		return errUsage
	}
	trunc, err := tokenizer.ParseTruncate(*truncate)
	if err != nil {
		fmt.Fprintf(stderr, "embed: --%v\n", err)
		return errUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	enc, err := model.Load(ctx, *modelSpec, *device, model.Options{MaxSeqLen: *maxSeqLen})
	if err != nil {
		return err
	}
	defer enc.Close()
	slog.Info("model loaded", "model", *modelSpec, "device", enc.Device(), "seconds", time.Since(start).Seconds())
	if hidden := enc.Config().HiddenSize; *dims > hidden {
		return fmt.Errorf("--dimensions %d is more than the model's %d", *dims, hidden)
	}

	j := &embedJob{enc: enc, dims: *dims, inputType: *inputType, trunc: trunc, maxLen: enc.Options().MaxSeqLen}
	out := bufio.NewWriter(stdout)
	err = j.run(ctx, stdin, out, *batch)
	if ferr := out.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write output: %w", ferr)
	}
	return err
}

// embedJob turns input lines into output lines.
type embedJob struct {
	enc       *model.Encoder
	dims      int
	inputType string
	trunc     tokenizer.Truncate
	maxLen    int

	tok    *tokenizer.Tokenizer // loaded on the first text line
	tokErr error
}

// run reads, embeds and writes batches of lines. At a bad line it writes the
// embeddings of the lines before it, then fails naming the line.
func (j *embedJob) run(ctx context.Context, in io.Reader, out *bufio.Writer, batch int) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	var pending [][]int32
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		embs, err := j.enc.Embed(ctx, pending, j.dims)
		if err != nil {
			return err
		}
		for i, e := range embs {
			if err := writeEmbedding(out, e, len(pending[i])); err != nil {
				return err
			}
		}
		pending = pending[:0]
		return out.Flush()
	}
	line := 0
	for sc.Scan() {
		line++
		ids, err := j.parseLine(sc.Bytes())
		if err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return fmt.Errorf("line %d: %w", line, err)
		}
		pending = append(pending, ids)
		if len(pending) == batch {
			if err := flush(); err != nil {
				return fmt.Errorf("lines %d-%d: %w", line-batch+1, line, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		if ferr := flush(); ferr != nil {
			return ferr
		}
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d: longer than %d bytes", line+1, maxLineBytes)
		}
		return fmt.Errorf("read input after line %d: %w", line, err)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("lines %d-%d: %w", line-len(pending)+1, line, err)
	}
	return nil
}

// inputLine is one JSON input object: exactly one of ids and text.
type inputLine struct {
	IDs  []int32 `json:"ids"`
	Text *string `json:"text"`
}

// parseLine decodes and validates one line and returns its token ids.
func (j *embedJob) parseLine(b []byte) ([]int32, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf(`empty line; want a JSON object {"ids": [...]} or {"text": "..."}`)
	}
	var in inputLine
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("not a JSON object with ids or text: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value on the line")
	}
	switch {
	case in.IDs != nil && in.Text != nil:
		return nil, fmt.Errorf(`both "ids" and "text"; give one`)
	case in.IDs != nil:
		return j.checkIDs(in.IDs)
	case in.Text != nil:
		return j.encodeText(*in.Text)
	}
	return nil, fmt.Errorf(`no "ids" or "text"`)
}

func (j *embedJob) checkIDs(ids []int32) ([]int32, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf(`"ids" is empty`)
	}
	if len(ids) > j.maxLen {
		return nil, fmt.Errorf(`"ids" has %d tokens, more than the maximum %d`, len(ids), j.maxLen)
	}
	vocab := j.enc.Config().VocabSize
	for i, id := range ids {
		if id < 0 || int(id) >= vocab {
			return nil, fmt.Errorf(`"ids"[%d] = %d is out of range [0, %d)`, i, id, vocab)
		}
	}
	return ids, nil
}

func (j *embedJob) encodeText(text string) ([]int32, error) {
	if j.tok == nil && j.tokErr == nil {
		j.tok, j.tokErr = tokenizer.LoadDir(j.enc.Dir())
		if j.tokErr != nil {
			j.tokErr = fmt.Errorf(`"text" needs the model's tokenizer: %w`, j.tokErr)
		}
	}
	if j.tokErr != nil {
		return nil, j.tokErr
	}
	var prompt string
	switch j.inputType {
	case "query":
		prompt = j.tok.Prompts().Query
	case "passage":
		prompt = j.tok.Prompts().Passage
	}
	ids, _, err := j.tok.EncodeInput(text, prompt, j.maxLen, j.trunc)
	if err != nil {
		return nil, fmt.Errorf(`"text": %w`, err)
	}
	return j.checkIDs(ids)
}

// writeEmbedding writes {"embedding": [...], "tokens": n} and a newline,
// each component in the shortest form that reads back as the same float32.
func writeEmbedding(w *bufio.Writer, e []float32, tokens int) error {
	buf := make([]byte, 0, 16*len(e)+40)
	buf = append(buf, `{"embedding":[`...)
	for i, v := range e {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("embedding component %d is %v (the model produced a non-finite value)", i, v)
		}
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendFloat(buf, float64(v), 'g', -1, 32)
	}
	buf = append(buf, `],"tokens":`...)
	buf = strconv.AppendInt(buf, int64(tokens), 10)
	buf = append(buf, "}\n"...)
	_, err := w.Write(buf)
	return err
}
