package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"llamaembed/model"
	_ "llamaembed/model/cpu" // the CPU backend
)

func init() {
	register("bench", "time forward passes over random token ids and print one JSON line of throughput", runBench)
}

// benchResult is the JSON line bench prints.
type benchResult struct {
	Model         string  `json:"model"`
	Device        string  `json:"device"`
	Batch         int     `json:"batch"`
	Seq           int     `json:"seq"`
	Iters         int     `json:"iters"`
	Threads       int     `json:"threads"`
	TokensPerS    float64 `json:"tokens_per_s"`
	LatencyP50Ms  float64 `json:"latency_p50_ms"`
	LatencyMeanMs float64 `json:"latency_mean_ms"`
	LatencyMinMs  float64 `json:"latency_min_ms"`
	PeakRSSMiB    float64 `json:"peak_rss_mib"`
	LoadSeconds   float64 `json:"load_s"`
}

func runBench(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: llamaembed bench --model MODEL [flags]\n\n"+
			"Embeds --batch random sequences of --seq tokens, --warmup times untimed and --iters\n"+
			"times timed, and prints one JSON line: tokens/s, latency and peak RSS.\n\n")
		fs.PrintDefaults()
	}
	modelSpec := fs.String("model", "", "checkpoint directory or Hugging Face hub id (required)")
	device := fs.String("device", "cpu", "where to run: auto, cpu, cuda or cuda:N")
	batch := fs.Int("batch", 2, "sequences per forward")
	seq := fs.Int("seq", 128, "tokens per sequence")
	iters := fs.Int("iters", 5, "timed forwards")
	warmup := fs.Int("warmup", 1, "untimed forwards first")
	seed := fs.Uint64("seed", 1, "seed of the random token ids")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the timed forwards to this file")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "bench: unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	switch {
	case *modelSpec == "":
		fmt.Fprintln(stderr, "bench: --model is required")
		return errUsage
	case *batch < 1 || *seq < 1 || *iters < 1 || *warmup < 0:
		fmt.Fprintf(stderr, "bench: --batch %d, --seq %d and --iters %d must be at least 1, --warmup %d at least 0\n", *batch, *seq, *iters, *warmup)
		return errUsage
	}

	ctx := context.Background()
	start := time.Now()
	enc, err := model.Load(ctx, *modelSpec, *device, model.Options{MaxBatchTokens: *batch * *seq, MaxSeqLen: *seq})
	if err != nil {
		return err
	}
	defer enc.Close()
	loadTime := time.Since(start)

	vocab := enc.Config().VocabSize
	rng := rand.New(rand.NewPCG(*seed, 0))
	seqs := make([][]int32, *batch)
	for i := range seqs {
		seqs[i] = make([]int32, *seq)
		for j := range seqs[i] {
			seqs[i][j] = int32(rng.IntN(vocab))
		}
	}
	for i := 0; i < *warmup; i++ {
		if _, err := enc.Embed(ctx, seqs, 0); err != nil {
			return fmt.Errorf("warm-up forward: %w", err)
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	lat := make([]time.Duration, *iters)
	var total time.Duration
	for i := range lat {
		t := time.Now()
		if _, err := enc.Embed(ctx, seqs, 0); err != nil {
			return fmt.Errorf("forward %d: %w", i, err)
		}
		lat[i] = time.Since(t)
		total += lat[i]
		slog.Debug("bench forward", "iter", i, "ms", ms(lat[i]))
	}
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	res := benchResult{
		Model:         *modelSpec,
		Device:        enc.Device(),
		Batch:         *batch,
		Seq:           *seq,
		Iters:         *iters,
		Threads:       runtime.GOMAXPROCS(0),
		TokensPerS:    float64(*batch**seq**iters) / total.Seconds(),
		LatencyP50Ms:  ms(median(sorted)),
		LatencyMeanMs: ms(total) / float64(*iters),
		LatencyMinMs:  ms(sorted[0]),
		PeakRSSMiB:    peakRSSMiB(),
		LoadSeconds:   loadTime.Seconds(),
	}
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", line)
	return err
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median of sorted durations (the mean of the middle two for an even count).
func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// peakRSSMiB is the process's maximum resident set (getrusage ru_maxrss, in
// KiB on Linux), or 0 where it cannot be read.
func peakRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}
