// Command load drives a running llamaembed server (or any NIM-compatible
// embedding endpoint) with closed-loop clients and reports requests/s and
// latency percentiles per concurrency level, plus how the server batched
// the work (the llamaembed_batch_size histogram from /metrics, as the
// difference over each level).
//
//	go run ./bench/load --url http://127.0.0.1:8000 --model tiny --clients 1,16,64 --duration 10s
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
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// texts are request inputs of mixed lengths (a few to ~100 tokens).
var texts = []string{
	"how do I reset my password?",
	"To reset your password, open Settings, choose Security, and follow the instructions sent to your email address.",
	"What is the population of Pittsburgh?",
	"The quick brown fox jumps over the lazy dog. " + strings.Repeat("It keeps running through the field until the sun sets. ", 6),
	"¿Dónde está la estación de tren más cercana?",
	"Matryoshka embeddings keep the most important information in the leading dimensions.",
}

type result struct {
	latency time.Duration
	err     error
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8000", "server base URL")
	model := fs.String("model", "", "served model name (default: the first of GET /v1/models)")
	clientsFlag := fs.String("clients", "1,16,64", "comma-separated concurrency levels")
	duration := fs.Duration("duration", 10*time.Second, "how long each level runs")
	inputs := fs.Int("inputs", 1, "inputs per request")
	inputType := fs.String("input-type", "passage", "input_type to send")
	if err := fs.Parse(args); err != nil {
		return err
	}
	levels, err := parseLevels(*clientsFlag)
	if err != nil {
		return err
	}
	base := strings.TrimRight(*url, "/")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0}, Timeout: time.Minute}
	if *model == "" {
		if *model, err = firstModel(client, base); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "server %s, model %s, %d input(s)/request, %s per level\n\n", base, *model, *inputs, *duration)
	fmt.Fprintf(out, "| clients | requests | errors | req/s | p50 ms | p99 ms | batches | mean seqs/batch | batch-size histogram (le: count) |\n")
	fmt.Fprintf(out, "|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range levels {
		before, err := scrapeBatchSizes(client, base)
		if err != nil {
			return err
		}
		res, wall := drive(client, base, *model, *inputType, *inputs, c, *duration)
		after, err := scrapeBatchSizes(client, base)
		if err != nil {
			return err
		}
		var lat []time.Duration
		errs := 0
		var firstErr error
		for _, r := range res {
			if r.err != nil {
				errs++
				if firstErr == nil {
					firstErr = r.err
				}
				continue
			}
			lat = append(lat, r.latency)
		}
		slices.Sort(lat)
		d := after.minus(before)
		fmt.Fprintf(out, "| %d | %d | %d | %.1f | %.2f | %.2f | %.0f | %.2f | %s |\n",
			c, len(res), errs, float64(len(lat))/wall.Seconds(), ms(percentile(lat, 50)), ms(percentile(lat, 99)),
			d.count, d.mean(), d.String())
		if firstErr != nil {
			fmt.Fprintf(out, "first error at %d clients: %v\n", c, firstErr)
		}
	}
	return nil
}

func parseLevels(s string) ([]int, error) {
	var levels []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 4096 {
			return nil, fmt.Errorf("--clients: %q is not a concurrency between 1 and 4096", f)
		}
		levels = append(levels, n)
	}
	return levels, nil
}

func firstModel(c *http.Client, base string) (string, error) {
	resp, err := c.Get(base + "/v1/models")
	if err != nil {
		return "", fmt.Errorf("GET /v1/models: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Data) == 0 {
		return "", fmt.Errorf("GET /v1/models: no model in the answer (status %s)", resp.Status)
	}
	return body.Data[0].ID, nil
}

// drive runs `clients` closed-loop clients for d and returns every result.
func drive(c *http.Client, base, model, inputType string, inputs, clients int, d time.Duration) ([]result, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var all []result
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []result
			for i := 0; ctx.Err() == nil; i++ {
				in := make([]string, inputs)
				for k := range in {
					in[k] = texts[(w+i+k)%len(texts)]
				}
				body, _ := json.Marshal(map[string]any{"model": model, "input": in, "input_type": inputType, "encoding_format": "float"})
				start := time.Now()
				err := post(ctx, c, base+"/v1/embeddings", body, inputs)
				if ctx.Err() != nil && err != nil {
					break // cut off by the end of the level, not a server error
				}
				mine = append(mine, result{latency: time.Since(start), err: err})
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, time.Since(t0)
}

func post(ctx context.Context, c *http.Client, url string, body []byte, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var r struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	if len(r.Data) != want {
		return fmt.Errorf("got %d embeddings, want %d", len(r.Data), want)
	}
	return nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// histogram is llamaembed_batch_size summed over devices: cumulative counts
// by upper bound.
type histogram struct {
	bounds []string
	cum    map[string]float64
	count  float64
	sum    float64
}

func (h histogram) minus(o histogram) histogram {
	d := histogram{bounds: h.bounds, cum: map[string]float64{}, count: h.count - o.count, sum: h.sum - o.sum}
	for _, b := range h.bounds {
		d.cum[b] = h.cum[b] - o.cum[b]
	}
	return d
}

func (h histogram) mean() float64 {
	if h.count == 0 {
		return 0
	}
	return h.sum / h.count
}

// String lists the non-cumulative count per bucket, skipping empty ones.
func (h histogram) String() string {
	var parts []string
	prev := 0.0
	for _, b := range h.bounds {
		n := h.cum[b] - prev
		prev = h.cum[b]
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s: %.0f", b, n))
		}
	}
	return strings.Join(parts, ", ")
}

func scrapeBatchSizes(c *http.Client, base string) (histogram, error) {
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		return histogram{}, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	h := histogram{cum: map[string]float64{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		// The value follows the last space; label values may hold spaces.
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest := line[:sp], line[sp+1:]
		v, err := strconv.ParseFloat(rest, 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(name, "llamaembed_batch_size_bucket{"):
			i := strings.Index(name, `le="`)
			if i < 0 {
				continue
			}
			le := name[i+4 : len(name)-2]
			if _, seen := h.cum[le]; !seen {
				h.bounds = append(h.bounds, le)
			}
			h.cum[le] += v
		case strings.HasPrefix(name, "llamaembed_batch_size_count"):
			h.count += v
		case strings.HasPrefix(name, "llamaembed_batch_size_sum"):
			h.sum += v
		}
	}
	if err := sc.Err(); err != nil {
		return h, err
	}
	if len(h.bounds) == 0 && resp.StatusCode != http.StatusOK {
		return h, errors.New("GET /metrics: " + resp.Status)
	}
	return h, nil
}
