package metrics

import (
	"bufio"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// sampleLine is a sample in the text format: name, optional labels, value.
var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*)?\})? (\S+)$`)

func TestExpositionIsValid(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounter("test_requests_total", "Requests by route.\nSecond line.", "route", "code")
	g := r.NewGauge("test_depth", "Queue depth.")
	h := r.NewHistogram("test_latency_seconds", "Latency.", []float64{0.1, 1, 10}, "route")
	e := r.NewHistogram("test_empty", "Never observed.", []float64{1})
	_ = e
	c.Inc("/v1/embeddings", "200")
	c.Add(2, `we"ird\route`, "400")
	g.Set(3)
	for _, v := range []float64{0.05, 0.1, 0.5, 5, 50} {
		h.Observe(v, "/embed")
	}

	var b strings.Builder
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Log("\n" + out)

	typed := map[string]string{}
	values := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		if strings.HasPrefix(line, "# TYPE ") {
			f := strings.Fields(line)
			if len(f) != 4 {
				t.Fatalf("bad TYPE line %q", line)
			}
			typed[f[2]] = f[3]
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("not a valid sample line: %q", line)
		}
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m[1], "_bucket"), "_sum"), "_count")
		if typed[m[1]] == "" && typed[base] == "" {
			t.Fatalf("sample %q before its # TYPE", line)
		}
		v, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			t.Fatalf("bad value in %q", line)
		}
		values[m[1]+m[2]] = v
	}
	checks := map[string]float64{
		`test_requests_total{route="/v1/embeddings",code="200"}`: 1,
		`test_requests_total{route="we\"ird\\route",code="400"}`: 2,
		`test_depth`: 3,
		`test_latency_seconds_bucket{route="/embed",le="0.1"}`:  2, // le is inclusive
		`test_latency_seconds_bucket{route="/embed",le="1"}`:    3,
		`test_latency_seconds_bucket{route="/embed",le="10"}`:   4,
		`test_latency_seconds_bucket{route="/embed",le="+Inf"}`: 5,
		`test_latency_seconds_count{route="/embed"}`:            5,
		`test_latency_seconds_sum{route="/embed"}`:              55.65,
		`test_empty_bucket{le="+Inf"}`:                          0,
		`test_empty_count`:                                      0,
	}
	for k, want := range checks {
		got, ok := values[k]
		if !ok {
			t.Errorf("missing sample %s", k)
			continue
		}
		if got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	for name, kind := range map[string]string{"test_requests_total": "counter", "test_depth": "gauge", "test_latency_seconds": "histogram"} {
		if typed[name] != kind {
			t.Errorf("TYPE %s = %q, want %q", name, typed[name], kind)
		}
	}
	cum, sum, n := h.Snapshot("/embed")
	if n != 5 || sum != 55.65 || len(cum) != 4 || cum[3] != 5 {
		t.Errorf("Snapshot = %v %v %v", cum, sum, n)
	}
}

func TestRegistryRejectsMisuse(t *testing.T) {
	for name, f := range map[string]func(){
		"duplicate":     func() { r := NewRegistry(); r.NewGauge("a", ""); r.NewGauge("a", "") },
		"bad name":      func() { NewRegistry().NewGauge("1a", "") },
		"le label":      func() { NewRegistry().NewHistogram("h", "", []float64{1}, "le") },
		"label count":   func() { NewRegistry().NewCounter("c", "", "x").Inc() },
		"counter down":  func() { NewRegistry().NewCounter("c", "").Add(-1) },
		"unsorted hist": func() { NewRegistry().NewHistogram("h", "", []float64{2, 1}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
