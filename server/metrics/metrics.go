// Package metrics is a small Prometheus text-format (version 0.0.4)
// exposition: counters, gauges and histograms, each with optional labels.
//
// It exists so the server needs no client library: the format is a few
// dozen lines, and the server only ever writes it, never scrapes it.
package metrics

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Registry holds metrics in registration order and writes them as one
// exposition.
type Registry struct {
	mu      sync.Mutex
	metrics []metric
	names   map[string]bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{names: map[string]bool{}} }

type metric interface {
	name() string
	write(w io.Writer)
}

func (r *Registry) add(m metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names[m.name()] {
		panic("metrics: registered twice: " + m.name())
	}
	r.names[m.name()] = true
	r.metrics = append(r.metrics, m)
}

// WriteTo writes every metric in the text exposition format.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	ms := append([]metric(nil), r.metrics...)
	r.mu.Unlock()
	cw := &countingWriter{w: w}
	for _, m := range ms {
		m.write(cw)
	}
	return cw.n, cw.err
}

type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// series is the state shared by every metric kind: a name, help text, label
// names and one value holder per distinct label-value tuple.
type series[V any] struct {
	mu     sync.Mutex
	n      string
	help   string
	labels []string
	values map[string]*V
	keys   map[string][]string
	newV   func() *V
}

func (s *series[V]) name() string { return s.n }

func (s *series[V]) get(lv []string) *V {
	if len(lv) != len(s.labels) {
		panic(fmt.Sprintf("metrics: %s wants %d label values, got %d", s.n, len(s.labels), len(lv)))
	}
	k := strings.Join(lv, "\xff")
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[k]
	if !ok {
		v = s.newV()
		s.values[k] = v
		s.keys[k] = append([]string(nil), lv...)
	}
	return v
}

// sorted returns the label tuples in a stable order, so scrapes diff cleanly.
func (s *series[V]) sorted() []string {
	ks := make([]string, 0, len(s.values))
	for k := range s.values {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (s *series[V]) header(w io.Writer, kind string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", s.n, escapeHelp(s.help), s.n, kind)
}

func newSeries[V any](name, help string, labels []string, newV func() *V) series[V] {
	if !validName(name) {
		panic("metrics: invalid metric name " + strconv.Quote(name))
	}
	for _, l := range labels {
		if !validName(l) || strings.HasPrefix(l, "__") || l == "le" {
			panic("metrics: invalid label name " + strconv.Quote(l))
		}
	}
	return series[V]{n: name, help: help, labels: labels, values: map[string]*V{}, keys: map[string][]string{}, newV: newV}
}

// CounterVec is a monotonically increasing value per label tuple.
type CounterVec struct{ s series[float64] }

// NewCounter registers a counter.
func (r *Registry) NewCounter(name, help string, labels ...string) *CounterVec {
	c := &CounterVec{s: newSeries(name, help, labels, func() *float64 { return new(float64) })}
	r.add(c)
	return c
}

func (c *CounterVec) name() string { return c.s.n }

// Add adds v (which must not be negative) to the series with these label values.
func (c *CounterVec) Add(v float64, labelValues ...string) {
	if v < 0 {
		panic("metrics: counter decreased: " + c.s.n)
	}
	p := c.s.get(labelValues)
	c.s.mu.Lock()
	*p += v
	c.s.mu.Unlock()
}

// Inc adds one.
func (c *CounterVec) Inc(labelValues ...string) { c.Add(1, labelValues...) }

// Value returns the current value for the label values (0 if never touched).
func (c *CounterVec) Value(labelValues ...string) float64 { return scalarValue(&c.s, labelValues) }

func (c *CounterVec) write(w io.Writer) { writeScalars(w, &c.s, "counter") }

// scalarValue reads one value of a counter or gauge.
func scalarValue(s *series[float64], labelValues []string) float64 {
	p := s.get(labelValues)
	s.mu.Lock()
	defer s.mu.Unlock()
	return *p
}

// writeScalars writes a counter or gauge: one line per label tuple, or a
// single 0 for an unlabelled series never touched.
func writeScalars(w io.Writer, s *series[float64], typ string) {
	s.header(w, typ)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.labels) == 0 && len(s.values) == 0 {
		fmt.Fprintf(w, "%s 0\n", s.n)
	}
	for _, k := range s.sorted() {
		fmt.Fprintf(w, "%s%s %s\n", s.n, labelString(s.labels, s.keys[k], "", ""), formatFloat(*s.values[k]))
	}
}

// GaugeVec is a value that can go up and down, per label tuple.
type GaugeVec struct{ s series[float64] }

// NewGauge registers a gauge.
func (r *Registry) NewGauge(name, help string, labels ...string) *GaugeVec {
	g := &GaugeVec{s: newSeries(name, help, labels, func() *float64 { return new(float64) })}
	r.add(g)
	return g
}

func (g *GaugeVec) name() string { return g.s.n }

// Set sets the value.
func (g *GaugeVec) Set(v float64, labelValues ...string) {
	p := g.s.get(labelValues)
	g.s.mu.Lock()
	*p = v
	g.s.mu.Unlock()
}

// Add adds v (may be negative).
func (g *GaugeVec) Add(v float64, labelValues ...string) {
	p := g.s.get(labelValues)
	g.s.mu.Lock()
	*p += v
	g.s.mu.Unlock()
}

// Value returns the current value.
func (g *GaugeVec) Value(labelValues ...string) float64 { return scalarValue(&g.s, labelValues) }

func (g *GaugeVec) write(w io.Writer) { writeScalars(w, &g.s, "gauge") }

// HistogramVec counts observations into cumulative buckets per label tuple.
type HistogramVec struct {
	s       series[histValue]
	buckets []float64
}

type histValue struct {
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

// NewHistogram registers a histogram with the given upper bounds (sorted,
// without +Inf, which is always added).
func (r *Registry) NewHistogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	if !sort.Float64sAreSorted(buckets) || len(buckets) == 0 {
		panic("metrics: histogram buckets must be sorted and non-empty: " + name)
	}
	bs := append([]float64(nil), buckets...)
	h := &HistogramVec{buckets: bs}
	h.s = newSeries(name, help, labels, func() *histValue { return &histValue{counts: make([]uint64, len(bs)+1)} })
	r.add(h)
	return h
}

func (h *HistogramVec) name() string { return h.s.n }

// Observe records one value.
func (h *HistogramVec) Observe(v float64, labelValues ...string) {
	p := h.s.get(labelValues)
	i := sort.SearchFloat64s(h.buckets, v) // first bucket with bound >= v
	h.s.mu.Lock()
	p.counts[i]++
	p.sum += v
	p.count++
	h.s.mu.Unlock()
}

// Buckets returns the upper bounds (without +Inf).
func (h *HistogramVec) Buckets() []float64 { return append([]float64(nil), h.buckets...) }

// Snapshot returns the cumulative bucket counts (the last is +Inf), the sum
// and the count for the label values.
func (h *HistogramVec) Snapshot(labelValues ...string) (cumulative []uint64, sum float64, count uint64) {
	p := h.s.get(labelValues)
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	var acc uint64
	for _, c := range p.counts {
		acc += c
		cumulative = append(cumulative, acc)
	}
	return cumulative, p.sum, p.count
}

func (h *HistogramVec) write(w io.Writer) {
	h.s.header(w, "histogram")
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	keys := h.s.sorted()
	if len(h.s.labels) == 0 && len(keys) == 0 {
		h.s.values[""] = h.s.newV()
		h.s.keys[""] = nil
		keys = []string{""}
	}
	for _, k := range keys {
		p, lv := h.s.values[k], h.s.keys[k]
		var acc uint64
		for i, c := range p.counts {
			acc += c
			le := "+Inf"
			if i < len(h.buckets) {
				le = formatFloat(h.buckets[i])
			}
			fmt.Fprintf(w, "%s_bucket%s %d\n", h.s.n, labelString(h.s.labels, lv, "le", le), acc)
		}
		fmt.Fprintf(w, "%s_sum%s %s\n", h.s.n, labelString(h.s.labels, lv, "", ""), formatFloat(p.sum))
		fmt.Fprintf(w, "%s_count%s %d\n", h.s.n, labelString(h.s.labels, lv, "", ""), p.count)
	}
}

func labelString(names, values []string, extraName, extraValue string) string {
	if len(names) == 0 && extraName == "" {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(escapeLabel(values[i]))
		b.WriteByte('"')
	}
	if extraName != "" {
		if len(names) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(extraName)
		b.WriteString(`="`)
		b.WriteString(escapeLabel(extraValue))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// validName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r == '_' || r == ':' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// ExponentialBuckets returns n bounds start, start*factor, ...
func ExponentialBuckets(start, factor float64, n int) []float64 {
	b := make([]float64, n)
	for i := range b {
		b[i] = start
		start *= factor
	}
	return b
}
