package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"llamaembed/weights"
	"llamaembed/weights/fixture"
)

func init() {
	register("mkmodel", "write a deterministic random-weight fixture model (config.json + safetensors)", runMkmodel)
}

func runMkmodel(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkmodel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: llamaembed mkmodel [flags] OUT_DIR\n\n"+
			"Writes a fixture model whose weights are a pure function of (tensor name, index, seed).\n"+
			"Flags given override the preset; with no --preset the defaults make tiny-llama-a.\n\n")
		fs.PrintDefaults()
	}
	def := fixture.Tiny()
	preset := fs.String("preset", "tiny", "starting shapes: "+strings.Join(fixture.PresetNames(), ", "))
	hidden := fs.Int("hidden", def.Hidden, "hidden_size")
	layers := fs.Int("layers", def.Layers, "num_hidden_layers")
	heads := fs.Int("heads", def.Heads, "num_attention_heads")
	kv := fs.Int("kv", def.KVHeads, "num_key_value_heads")
	headDim := fs.Int("head-dim", 0, "head_dim (0: hidden/heads)")
	inter := fs.Int("inter", def.Inter, "intermediate_size")
	vocab := fs.Int("vocab", def.Vocab, "vocab_size")
	maxPos := fs.Int("max-position", def.MaxPositionEmbeddings, "max_position_embeddings")
	seed := fs.Uint64("seed", def.Seed, "weight seed")
	dtype := fs.String("dtype", "bf16", "stored dtype: bf16, f16 or f32")
	shards := fs.Int("shards", 1, "number of safetensors shards (more than 1 adds model.safetensors.index.json)")
	prefix := fs.Bool("prefix", false, `store tensor names with a "model." prefix`)
	theta := fs.Float64("rope-theta", def.RopeTheta, "rope_theta")
	scaling := fs.String("rope-scaling", "llama3", "rope_scaling type: llama3 or none")
	factor := fs.Float64("rope-factor", def.RopeScaling.Factor, "llama3 factor")
	low := fs.Float64("rope-low", def.RopeScaling.LowFreqFactor, "llama3 low_freq_factor")
	high := fs.Float64("rope-high", def.RopeScaling.HighFreqFactor, "llama3 high_freq_factor")
	orig := fs.Int("rope-original", def.RopeScaling.OriginalMaxPositionEmbeddings, "llama3 original_max_position_embeddings")
	eps := fs.Float64("eps", def.Eps, "rms_norm_eps")
	tok := fs.String("tokenizer", "", "a tokenizer.json to copy into the model")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	out := fs.Arg(0)

	o, err := fixture.Preset(*preset)
	if err != nil {
		return err
	}
	var flagErr error
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "hidden":
			o.Hidden = *hidden
		case "layers":
			o.Layers = *layers
		case "heads":
			o.Heads = *heads
		case "kv":
			o.KVHeads = *kv
		case "head-dim":
			o.HeadDim = *headDim
		case "inter":
			o.Inter = *inter
		case "vocab":
			o.Vocab = *vocab
		case "max-position":
			o.MaxPositionEmbeddings = *maxPos
		case "seed":
			o.Seed = *seed
		case "dtype":
			o.DType, err = weights.ParseDType(*dtype)
			if err != nil {
				flagErr = fmt.Errorf("--dtype: %w", err)
			}
		case "shards":
			o.Shards = *shards
		case "prefix":
			o.Prefix = *prefix
		case "rope-theta":
			o.RopeTheta = *theta
		case "eps":
			o.Eps = *eps
		case "tokenizer":
			o.Tokenizer = *tok
		}
	})
	if flagErr != nil {
		return flagErr
	}
	if *shards < 1 {
		return fmt.Errorf("--shards must be at least 1, got %d", *shards)
	}
	// A preset's head_dim is derived from its shapes; changing the shapes
	// without --head-dim derives it again.
	if !flagSet(fs, "head-dim") && (flagSet(fs, "hidden") || flagSet(fs, "heads")) {
		o.HeadDim = 0
	}
	switch *scaling {
	case "none":
		if flagSet(fs, "rope-factor") || flagSet(fs, "rope-low") || flagSet(fs, "rope-high") || flagSet(fs, "rope-original") {
			return fmt.Errorf("--rope-scaling none takes no --rope-factor/--rope-low/--rope-high/--rope-original")
		}
		o.RopeScaling = nil
	case "llama3":
		if o.RopeScaling == nil {
			o.RopeScaling = &weights.RopeScaling{Type: "llama3", Factor: *factor, LowFreqFactor: *low, HighFreqFactor: *high, OriginalMaxPositionEmbeddings: *orig}
		}
		rs := *o.RopeScaling
		if flagSet(fs, "rope-factor") {
			rs.Factor = *factor
		}
		if flagSet(fs, "rope-low") {
			rs.LowFreqFactor = *low
		}
		if flagSet(fs, "rope-high") {
			rs.HighFreqFactor = *high
		}
		if flagSet(fs, "rope-original") {
			rs.OriginalMaxPositionEmbeddings = *orig
		}
		o.RopeScaling = &rs
	default:
		return fmt.Errorf("--rope-scaling must be llama3 or none, got %q", *scaling)
	}

	start := time.Now()
	o.Progress = func(written, total int64) {
		slog.Info("mkmodel: writing", "dir", out, "done_gib", fmt.Sprintf("%.2f", float64(written)/(1<<30)),
			"total_gib", fmt.Sprintf("%.2f", float64(total)/(1<<30)))
	}
	if err := fixture.Write(out, o); err != nil {
		return err
	}
	var total int64
	files, _ := filepath.Glob(filepath.Join(out, "*.safetensors"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			total += st.Size()
		}
	}
	fmt.Fprintf(stdout, "wrote %s: %d safetensors file(s), %.1f MiB, in %s\n", out, len(files), float64(total)/(1<<20), time.Since(start).Round(time.Millisecond))
	return nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
