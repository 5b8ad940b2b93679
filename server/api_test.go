package server

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"testing"

	"llamaembed/tokenizer"
	"llamaembed/weights/fixture"
)

// refCase is one case of testdata/tiny-llama-a.json: embeddings computed in
// float64 by the reference implementation.
type refCase = fixture.ReferenceCase

func loadReference(t *testing.T) []refCase {
	t.Helper()
	ref, err := fixture.LoadReference("../testdata/tiny-llama-a.json")
	if err != nil {
		t.Fatal(err)
	}
	return ref.Cases
}

func TestLifecycleBeforeAndAfterLoad(t *testing.T) {
	ts := startServer(t, serverOpts{noLoad: true})

	if r := do(t, "GET", ts.URL+"/v1/health/live", nil); r.status != 200 || r.body["live"] != true {
		t.Errorf("live while loading: %d %s", r.status, r.raw)
	}
	if r := do(t, "GET", ts.URL+"/v1/health/ready", nil); r.status != 503 || r.body["ready"] != false {
		t.Errorf("ready while loading: %d %s", r.status, r.raw)
	}
	r := do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a", "input": "x", "input_type": "query"})
	checkError(t, r, 503, "", "not loaded")
	r = do(t, "POST", ts.URL+"/embed", map[string]any{"documents": []string{"x"}})
	if r.status != 503 || r.body["detail"] != "Model not loaded" {
		t.Errorf("/embed while loading: %d %s", r.status, r.raw)
	}
	if r := do(t, "GET", ts.URL+"/health", nil); r.status != 200 || r.body["model_loaded"] != false || r.body["status"] != "healthy" {
		t.Errorf("/health while loading: %d %s", r.status, r.raw)
	}

	loadModel(t, ts.Server)

	r = do(t, "GET", ts.URL+"/v1/health/ready", nil)
	if r.status != 200 || string(r.raw) != `{"message":"ready","object":"health.response","ready":true}`+"\n" {
		t.Errorf("ready after load: %d %s", r.status, r.raw)
	}
	if r := do(t, "GET", ts.URL+"/health", nil); r.status != 200 || string(r.raw) != `{"model_loaded":true,"status":"healthy"}`+"\n" {
		t.Errorf("/health after load: %d %s", r.status, r.raw)
	}
}

// TestEmbeddingsMatchReference checks the served embeddings, Matryoshka
// truncation included, against the float64 reference of tiny-llama-a, and
// the usage counts against the reference token ids.
func TestEmbeddingsMatchReference(t *testing.T) {
	ts := startServer(t, serverOpts{})
	checked := 0
	for _, c := range loadReference(t) {
		var inputType, text string
		switch {
		case strings.HasPrefix(c.Text, "query: "):
			inputType, text = "query", strings.TrimPrefix(c.Text, "query: ")
		case strings.HasPrefix(c.Text, "passage: "):
			inputType, text = "passage", strings.TrimPrefix(c.Text, "passage: ")
		default:
			continue // no prompt: not expressible on an asymmetric model
		}
		if len(c.IDs) > testMaxSeqLen {
			continue
		}
		req := map[string]any{"model": "tiny-llama-a", "input": []string{text}, "input_type": inputType}
		if c.Dims != 0 {
			req["dimensions"] = c.Dims
		}
		r := do(t, "POST", ts.URL+"/v1/embeddings", req)
		got := embeddingsOf(t, r, "tiny-llama-a", 1)[0]
		if d := maxAbsDiff(got, c.Embedding); d > 1e-4 {
			t.Errorf("%q dims %d: max abs diff %.3g from the reference", c.Text, c.Dims, d)
		}
		usage := r.body["usage"].(map[string]any)
		if usage["prompt_tokens"] != float64(len(c.IDs)) || usage["total_tokens"] != float64(len(c.IDs)) {
			t.Errorf("%q: usage %v, want %d tokens", c.Text, usage, len(c.IDs))
		}
		checked++
	}
	if checked < 5 {
		t.Fatalf("only %d reference cases checked", checked)
	}
}

func TestModelNameSuffixSetsInputType(t *testing.T) {
	ts := startServer(t, serverOpts{})
	text := "how do I reset my password?"
	byField := embeddingsOf(t, do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a", "input": text, "input_type": "query"}), "tiny-llama-a", 1)[0]
	bySuffix := embeddingsOf(t, do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a-query", "input": text}), "tiny-llama-a-query", 1)[0]
	passage := embeddingsOf(t, do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a-passage", "input": text}), "tiny-llama-a-passage", 1)[0]
	if maxAbsDiff(bySuffix, to64(byField)) != 0 {
		t.Error("-query suffix differs from input_type query")
	}
	if maxAbsDiff(passage, to64(direct(t, text, "passage: ", 64))) > 1e-6 {
		t.Error("-passage suffix is not the passage embedding")
	}
	if maxAbsDiff(passage, to64(byField)) < 1e-3 {
		t.Error("query and passage embeddings are the same: the prompt is not applied")
	}
	checkError(t, do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "other-model", "input": text, "input_type": "query"}), 404, "model", "other-model")
	checkError(t, do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a-document", "input": text, "input_type": "query"}), 404, "model", "does not exist")
	checkError(t, do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a-query", "input": text, "input_type": "passage"}), 400, "input_type", "contradicts")
}

func TestValidationErrors(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: Config{MaxBatchSize: 3}})
	ok := func(extra map[string]any) map[string]any {
		m := map[string]any{"model": "tiny-llama-a", "input": []string{"a"}, "input_type": "query"}
		for k, v := range extra {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	cases := []struct {
		name     string
		body     any
		status   int
		param    string
		fragment string
	}{
		{"not json", "{not json", 400, "", "not a JSON object"},
		{"array body", `["a"]`, 400, "", "not a JSON object"},
		{"trailing data", `{"model":"tiny-llama-a","input":"a","input_type":"query"} {}`, 400, "", "after the JSON object"},
		{"unknown field", ok(map[string]any{"temperature": 0.5}), 400, "temperature", "unknown field 'temperature'"},
		{"missing model", ok(map[string]any{"model": nil}), 400, "model", "'model' is required"},
		{"model not string", ok(map[string]any{"model": 7}), 400, "model", "must be a string"},
		{"missing input", ok(map[string]any{"input": nil}), 400, "input", "'input' is required"},
		{"input number", ok(map[string]any{"input": 5}), 400, "input", "string or a non-empty array"},
		{"input empty array", ok(map[string]any{"input": []string{}}), 400, "input", "empty array"},
		{"input token ids", ok(map[string]any{"input": []int{1, 2}}), 400, "input", "'input[0]' must be a string"},
		{"input null item", `{"model":"tiny-llama-a","input":["a",null],"input_type":"query"}`, 400, "input", "'input[1]' must be a string"},
		{"input null", `{"model":"tiny-llama-a","input":null,"input_type":"query"}`, 400, "input", "string or a non-empty array"},
		{"too many inputs", ok(map[string]any{"input": []string{"a", "b", "c", "d"}}), 400, "input", "4 items, more than the maximum batch size of 3"},
		{"missing input_type", ok(map[string]any{"input_type": nil}), 400, "input_type", "'input_type' parameter is required for asymmetric models"},
		{"bad input_type", ok(map[string]any{"input_type": "document"}), 400, "input_type", "'query' or 'passage'"},
		{"input_type number", ok(map[string]any{"input_type": 1}), 400, "input_type", "must be a string"},
		{"bad encoding_format", ok(map[string]any{"encoding_format": "hex"}), 400, "encoding_format", "'float' or 'base64'"},
		{"bad truncate", ok(map[string]any{"truncate": "MIDDLE"}), 400, "truncate", "'NONE', 'START' or 'END'"},
		{"lower-case truncate", ok(map[string]any{"truncate": "end"}), 400, "truncate", "'NONE', 'START' or 'END'"},
		{"dimensions zero", ok(map[string]any{"dimensions": 0}), 400, "dimensions", "at least 1"},
		{"dimensions negative", ok(map[string]any{"dimensions": -4}), 400, "dimensions", "at least 1"},
		{"dimensions too big", ok(map[string]any{"dimensions": 65}), 400, "dimensions", "between 1 and 64"},
		{"dimensions fraction", ok(map[string]any{"dimensions": 2.5}), 400, "dimensions", "must be an integer"},
		{"dimensions string", ok(map[string]any{"dimensions": "8"}), 400, "dimensions", "must be an integer"},
		{"bad embedding_type", ok(map[string]any{"embedding_type": "int4"}), 400, "embedding_type", "one of float, int8, uint8, binary, ubinary"},
		{"user not string", ok(map[string]any{"user": 12}), 400, "user", "must be a string"},
		{"image modality", ok(map[string]any{"modality": "image"}), 400, "modality", "only the 'text' modality"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkError(t, do(t, "POST", ts.URL+"/v1/embeddings", c.body), c.status, c.param, c.fragment)
		})
	}
	// Fields that are accepted: user (ignored), modality text, nulls.
	r := do(t, "POST", ts.URL+"/v1/embeddings", ok(map[string]any{"user": "someone", "modality": []string{"text"}, "dimensions": nil, "truncate": "NONE", "embedding_type": "float", "encoding_format": "float"}))
	embeddingsOf(t, r, "tiny-llama-a", 1)
}

func TestTruncation(t *testing.T) {
	ts := startServer(t, serverOpts{})
	long := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 40)
	full, _, err := sharedTok.EncodeInput(long, "passage: ", 0, tokenizer.TruncateNone)
	if err != nil {
		t.Fatal(err)
	}
	if len(full) <= testMaxSeqLen {
		t.Fatalf("test input has %d tokens, not over %d", len(full), testMaxSeqLen)
	}
	req := map[string]any{"model": "tiny-llama-a", "input": []string{"short one", long}, "input_type": "passage"}
	checkError(t, do(t, "POST", ts.URL+"/v1/embeddings", req), 400, "input", fmt.Sprintf("Input length %d exceeds maximum allowed token size %d", len(full), testMaxSeqLen))
	req["truncate"] = "NONE"
	checkError(t, do(t, "POST", ts.URL+"/v1/embeddings", req), 400, "input", fmt.Sprintf("Input length %d exceeds maximum allowed token size %d", len(full), testMaxSeqLen))

	for _, mode := range []struct {
		name string
		tr   tokenizer.Truncate
	}{{"END", tokenizer.TruncateEnd}, {"START", tokenizer.TruncateStart}} {
		req["truncate"] = mode.name
		r := do(t, "POST", ts.URL+"/v1/embeddings", req)
		got := embeddingsOf(t, r, "tiny-llama-a", 2)
		ids, _, err := sharedTok.EncodeInput(long, "passage: ", testMaxSeqLen, mode.tr)
		if err != nil {
			t.Fatal(err)
		}
		want, err := sharedEnc.Embed(t.Context(), [][]int32{ids}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(got[1], to64(want[0])); d > 1e-6 {
			t.Errorf("truncate %s: differs from the encoder on the truncated ids by %.3g", mode.name, d)
		}
		short, _, _ := sharedTok.EncodeInput("short one", "passage: ", 0, tokenizer.TruncateNone)
		if u := r.body["usage"].(map[string]any); u["prompt_tokens"] != float64(testMaxSeqLen+len(short)) {
			t.Errorf("truncate %s: usage %v, want %d", mode.name, u, testMaxSeqLen+len(short))
		}
	}
}

// TestEncodingsAndEmbeddingTypes checks base64 against float bit for bit,
// and each quantised type against its definition applied to the float
// embedding, in JSON and in base64.
func TestEncodingsAndEmbeddingTypes(t *testing.T) {
	ts := startServer(t, serverOpts{})
	texts := []string{"how do I reset my password?", "Matryoshka dolls nest inside each other."}
	for _, dims := range []int{64, 20} {
		base := map[string]any{"model": "tiny-llama-a", "input": texts, "input_type": "passage", "dimensions": dims}
		floats := embeddingsOf(t, do(t, "POST", ts.URL+"/v1/embeddings", base), "tiny-llama-a", 2)
		for _, v := range floats {
			if len(v) != dims {
				t.Fatalf("dims %d: got %d values", dims, len(v))
			}
			n := 0.0
			for _, x := range v {
				n += float64(x) * float64(x)
			}
			if math.Abs(n-1) > 1e-5 {
				t.Errorf("dims %d: norm² %v, want 1", dims, n)
			}
		}
		for _, et := range []string{"float", "int8", "uint8", "binary", "ubinary"} {
			for _, enc := range []string{"float", "base64"} {
				req := map[string]any{"embedding_type": et, "encoding_format": enc}
				for k, v := range base {
					req[k] = v
				}
				r := do(t, "POST", ts.URL+"/v1/embeddings", req)
				if r.status != 200 {
					t.Fatalf("%s/%s: %d %s", et, enc, r.status, r.raw)
				}
				data := r.body["data"].([]any)
				for i, d := range data {
					emb := d.(map[string]any)["embedding"]
					want := expectedValues(floats[i], et)
					var got []float64
					if enc == "base64" {
						s, ok := emb.(string)
						if !ok {
							t.Fatalf("%s/base64: embedding is %T", et, emb)
						}
						got = decodeBase64Values(t, s, et)
					} else {
						for _, x := range emb.([]any) {
							got = append(got, x.(float64))
						}
					}
					if len(got) != len(want) {
						t.Fatalf("%s/%s dims %d: %d values, want %d", et, enc, dims, len(got), len(want))
					}
					for k := range want {
						// JSON carries float32 values in their shortest form.
						if float32(got[k]) != float32(want[k]) {
							t.Fatalf("%s/%s dims %d input %d: value %d = %v, want %v", et, enc, dims, i, k, got[k], want[k])
						}
					}
				}
			}
		}
	}
}

// expectedValues applies the documented definitions, written independently
// of quantize.go.
func expectedValues(v []float32, et string) []float64 {
	var out []float64
	switch et {
	case "float":
		for _, x := range v {
			out = append(out, float64(x))
		}
	case "int8":
		for _, x := range v {
			out = append(out, math.Max(-128, math.Min(127, math.RoundToEven(float64(x)*127))))
		}
	case "uint8":
		for _, x := range v {
			out = append(out, math.Max(0, math.Min(255, math.RoundToEven((float64(x)+1)*127.5))))
		}
	case "ubinary", "binary":
		for i := 0; i < len(v); i += 8 {
			b := 0
			for k := 0; k < 8; k++ {
				b <<= 1
				if i+k < len(v) && v[i+k] > 0 {
					b |= 1
				}
			}
			if et == "binary" {
				b -= 128
			}
			out = append(out, float64(b))
		}
	}
	return out
}

func decodeBase64Values(t *testing.T, s, et string) []float64 {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("bad base64: %v", err)
	}
	var out []float64
	switch et {
	case "float":
		if len(b)%4 != 0 {
			t.Fatalf("float base64 of %d bytes", len(b))
		}
		for i := 0; i < len(b); i += 4 {
			out = append(out, float64(math.Float32frombits(binary.LittleEndian.Uint32(b[i:]))))
		}
	case "int8", "binary":
		for _, x := range b {
			out = append(out, float64(int8(x)))
		}
	default:
		for _, x := range b {
			out = append(out, float64(x))
		}
	}
	return out
}

func TestBodyLimit(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: Config{MaxBodyBytes: 1024}})
	big := map[string]any{"model": "tiny-llama-a", "input": strings.Repeat("a", 2000), "input_type": "query"}
	checkError(t, do(t, "POST", ts.URL+"/v1/embeddings", big), 413, "", "larger than the limit of 1024 bytes")
	r := do(t, "POST", ts.URL+"/embed", map[string]any{"documents": []string{strings.Repeat("a", 2000)}})
	if r.status != 413 || !strings.Contains(fmt.Sprint(r.body["detail"]), "1024") {
		t.Errorf("/embed over the limit: %d %s", r.status, r.raw)
	}
	embeddingsOf(t, do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a", "input": "a", "input_type": "query"}), "tiny-llama-a", 1)
}

func TestAPIKey(t *testing.T) {
	open := startServer(t, serverOpts{})
	req := map[string]any{"model": "tiny-llama-a", "input": "a", "input_type": "query"}
	// Without a configured key any Authorization is accepted and ignored.
	embeddingsOf(t, do(t, "POST", open.URL+"/v1/embeddings", req, "Authorization", "Bearer whatever"), "tiny-llama-a", 1)

	ts := startServer(t, serverOpts{cfg: Config{APIKey: "s3cret"}})
	checkError(t, do(t, "POST", ts.URL+"/v1/embeddings", req), 401, "", "API key")
	checkError(t, do(t, "POST", ts.URL+"/v1/embeddings", req, "Authorization", "Bearer wrong"), 401, "", "API key")
	checkError(t, do(t, "POST", ts.URL+"/v1/embeddings", req, "Authorization", "s3cret"), 401, "", "API key")
	checkError(t, do(t, "GET", ts.URL+"/v1/models", nil), 401, "", "API key")
	if r := do(t, "POST", ts.URL+"/embed", map[string]any{"documents": []string{"a"}}); r.status != 401 || r.body["detail"] == nil {
		t.Errorf("/embed without key: %d %s", r.status, r.raw)
	}
	embeddingsOf(t, do(t, "POST", ts.URL+"/v1/embeddings", req, "Authorization", "Bearer s3cret"), "tiny-llama-a", 1)
	for _, p := range []string{"/v1/health/live", "/v1/health/ready", "/health", "/metrics"} {
		if r := do(t, "GET", ts.URL+p, nil); r.status != 200 {
			t.Errorf("%s with a key configured and none sent: %d", p, r.status)
		}
	}
}

func TestInfoRoutes(t *testing.T) {
	ts := startServer(t, serverOpts{cfg: Config{ServedModelName: "nvidia/llama-3.2-nv-embedqa-1b-v2", ModelVersion: "2.1.0", LicenseName: "Test License", LicenseText: "terms"}})
	r := do(t, "GET", ts.URL+"/v1/models", nil)
	data, _ := r.body["data"].([]any)
	if r.status != 200 || r.body["object"] != "list" || len(data) != 1 || data[0].(map[string]any)["id"] != "nvidia/llama-3.2-nv-embedqa-1b-v2" || data[0].(map[string]any)["object"] != "model" {
		t.Errorf("/v1/models: %d %s", r.status, r.raw)
	}
	r = do(t, "GET", ts.URL+"/v1/metadata", nil)
	var md struct {
		Version   string `json:"version"`
		ModelInfo []struct {
			ShortName string `json:"shortName"`
		} `json:"modelInfo"`
		AssetInfo          []string          `json:"assetInfo"`
		LicenseInfo        map[string]string `json:"licenseInfo"`
		RepositoryOverride *string           `json:"repository_override"`
	}
	if err := json.Unmarshal(r.raw, &md); err != nil || r.status != 200 {
		t.Fatalf("/v1/metadata: %d %v %s", r.status, err, r.raw)
	}
	// nv-ingest: modelInfo[0].shortName.split(":")
	if len(md.ModelInfo) != 1 || md.Version == "" || md.RepositoryOverride == nil || md.LicenseInfo["name"] != "Test License" || len(md.AssetInfo) == 0 {
		t.Fatalf("/v1/metadata fields: %s", r.raw)
	}
	if name, ver, _ := strings.Cut(md.ModelInfo[0].ShortName, ":"); name != "nvidia/llama-3.2-nv-embedqa-1b-v2" || ver != "2.1.0" {
		t.Errorf("shortName %q", md.ModelInfo[0].ShortName)
	}
	if r := do(t, "GET", ts.URL+"/v1/version", nil); r.status != 200 || r.body["release"] != Version || r.body["api"] == nil {
		t.Errorf("/v1/version: %d %s", r.status, r.raw)
	}
	if r := do(t, "GET", ts.URL+"/v1/license", nil); r.status != 200 || r.body["name"] != "Test License" || r.body["content"] != "terms" {
		t.Errorf("/v1/license: %d %s", r.status, r.raw)
	}
	checkError(t, do(t, "GET", ts.URL+"/v1/nothing", nil), 404, "", "no route")
	checkError(t, do(t, "GET", ts.URL+"/v1/embeddings", nil), 405, "", "not allowed")

	// A served request shows up in the metrics, in valid exposition format.
	embeddingsOf(t, do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "nvidia/llama-3.2-nv-embedqa-1b-v2", "input": "a", "input_type": "query"}, "X-Request-Id", "req-42"), "nvidia/llama-3.2-nv-embedqa-1b-v2", 1)
	for _, p := range []string{"/metrics", "/v1/metrics"} {
		r := do(t, "GET", ts.URL+p, nil)
		if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
			t.Fatalf("%s: %d %s", p, r.status, r.header.Get("Content-Type"))
		}
		text := string(r.raw)
		for _, want := range []string{
			`llamaembed_http_requests_total{route="/v1/embeddings",code="200"} 1`,
			"# TYPE llamaembed_batch_size histogram",
			`llamaembed_batch_size_bucket{device="cpu`,
			"llamaembed_queue_depth 0",
			"# TYPE llamaembed_tokens_per_second gauge",
			"llamaembed_tokenize_duration_seconds_count 1",
			"llamaembed_inference_duration_seconds_sum",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q", p, want)
			}
		}
	}
}

func TestRequestIDAndTimingHeaders(t *testing.T) {
	var logs syncBuffer
	ts := startServer(t, serverOpts{cfg: Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	r := do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a", "input": "a", "input_type": "query"}, "X-Request-Id", "abc-123")
	if r.header.Get("X-Request-Id") != "abc-123" {
		t.Errorf("X-Request-Id not echoed: %q", r.header.Get("X-Request-Id"))
	}
	for _, h := range []string{"x-compute-time", "x-queue-time", "x-inference-time", "x-tokenization-time", "x-total-time"} {
		if _, err := fmt.Sscan(r.header.Get(h), new(int)); err != nil {
			t.Errorf("header %s = %q", h, r.header.Get(h))
		}
	}
	if r.header.Get("x-compute-tokens") != "4" { // BOS "query" ":" " a"
		t.Errorf("x-compute-tokens = %q", r.header.Get("x-compute-tokens"))
	}
	if id := do(t, "GET", ts.URL+"/v1/models", nil).header.Get("X-Request-Id"); len(id) < 16 {
		t.Errorf("generated request id %q", id)
	}
	// One log line per request, carrying the id.
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "msg=request") && strings.Contains(l, "/v1/embeddings") {
			if line != "" {
				t.Errorf("two log lines for one request:\n%s\n%s", line, l)
			}
			line = l
		}
	}
	for _, want := range []string{"id=abc-123", "status=200", "method=POST", "inputs=1", "tokens=4", "took="} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q", line, want)
		}
	}
}

func TestWaywo(t *testing.T) {
	ts := startServer(t, serverOpts{})
	docs := []string{"To reset your password, open Settings.", "Paris is the capital of France."}
	r := do(t, "POST", ts.URL+"/embed", map[string]any{"documents": docs, "extra": "ignored as pydantic does"})
	if r.status != 200 {
		t.Fatalf("/embed: %d %s", r.status, r.raw)
	}
	var body struct {
		Embeddings [][]float32 `json:"embeddings"`
	}
	if err := json.Unmarshal(r.raw, &body); err != nil || len(body.Embeddings) != 2 {
		t.Fatalf("/embed body: %v %s", err, r.raw)
	}
	for i, d := range docs {
		if diff := maxAbsDiff(body.Embeddings[i], to64(direct(t, d, "passage: ", 64))); diff > 1e-6 {
			t.Errorf("document %d differs from its passage embedding by %.3g", i, diff)
		}
	}
	if r := do(t, "POST", ts.URL+"/embed", map[string]any{"documents": []string{}}); r.status != 400 || string(r.raw) != `{"detail":"No documents provided"}`+"\n" {
		t.Errorf("empty documents: %d %s", r.status, r.raw)
	}
	for name, bad := range map[string]any{
		"not json":      "{documents:",
		"missing field": map[string]any{"docs": []string{"a"}},
		"not a list":    map[string]any{"documents": "a"},
		"non-string":    map[string]any{"documents": []any{"a", 3}},
		"null":          map[string]any{"documents": nil},
	} {
		r := do(t, "POST", ts.URL+"/embed", bad)
		detail, _ := r.body["detail"].([]any)
		if r.status != 422 || len(detail) == 0 {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	if r := do(t, "GET", ts.URL+"/embed", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET /embed: %d", r.status)
	}
}

// TestPromptConfigurations covers the 8B's prompts (an instruction for
// queries, nothing for documents) and a symmetric model (no prompts, so
// input_type is optional).
func TestPromptConfigurations(t *testing.T) {
	text := "Paris is the capital of France."
	t.Run("8B prompts", func(t *testing.T) {
		p := tokenizer.Nemotron8BPrompts()
		ts := startServer(t, serverOpts{tok: sharedTok.WithPrompts(p)})
		checkError(t, do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a", "input": text}), 400, "input_type", "'input_type' parameter is required for asymmetric models")
		q := embeddingsOf(t, do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a", "input": text, "input_type": "query"}), "tiny-llama-a", 1)[0]
		if d := maxAbsDiff(q, to64(direct(t, text, p.Query, 64))); d > 1e-6 {
			t.Errorf("query with the instruction prompt differs by %.3g", d)
		}
		r := do(t, "POST", ts.URL+"/embed", map[string]any{"documents": []string{text}})
		var body struct{ Embeddings [][]float32 }
		if err := json.Unmarshal(r.raw, &body); err != nil || len(body.Embeddings) != 1 {
			t.Fatalf("/embed: %d %s", r.status, r.raw)
		}
		if d := maxAbsDiff(body.Embeddings[0], to64(direct(t, text, "", 64))); d > 1e-6 {
			t.Errorf("/embed document (no prompt) differs by %.3g", d)
		}
	})
	t.Run("symmetric", func(t *testing.T) {
		ts := startServer(t, serverOpts{tok: sharedTok.WithPrompts(tokenizer.Prompts{})})
		plain := embeddingsOf(t, do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a", "input": text}), "tiny-llama-a", 1)[0]
		if d := maxAbsDiff(plain, to64(direct(t, text, "", 64))); d > 1e-6 {
			t.Errorf("symmetric embedding differs by %.3g", d)
		}
		q := embeddingsOf(t, do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a", "input": text, "input_type": "query"}), "tiny-llama-a", 1)[0]
		if maxAbsDiff(q, to64(plain)) != 0 {
			t.Error("input_type changed a symmetric model's embedding")
		}
	})
}

func TestLoadFailureAndDrainWhileLoading(t *testing.T) {
	ts := startServer(t, serverOpts{noLoad: true})
	err := ts.Load(t.Context(), func(context.Context) (Model, error) { return Model{}, errors.New("checkpoint is broken") })
	if err == nil || !strings.Contains(err.Error(), "checkpoint is broken") {
		t.Fatalf("Load = %v", err)
	}
	if r := do(t, "GET", ts.URL+"/v1/health/ready", nil); r.status != 503 || r.body["message"] != "model failed to load" {
		t.Errorf("ready after a failed load: %d %s", r.status, r.raw)
	}
	checkError(t, do(t, "POST", ts.URL+"/v1/embeddings", map[string]any{"model": "tiny-llama-a", "input": "x", "input_type": "query"}), 503, "", "not loaded")

	// A drain that starts while the model loads wins: the load is refused.
	ts2 := startServer(t, serverOpts{noLoad: true})
	if err := ts2.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	err = ts2.Load(t.Context(), func(context.Context) (Model, error) {
		return Model{Embedders: []Embedder{sharedEnc}, Tokenizer: FromTokenizer(sharedTok)}, nil
	})
	if err == nil || !strings.Contains(err.Error(), "shut down while loading") {
		t.Fatalf("Load after Drain = %v", err)
	}
	if r := do(t, "GET", ts2.URL+"/v1/health/ready", nil); r.status != 503 {
		t.Errorf("ready after drain: %d", r.status)
	}
}
