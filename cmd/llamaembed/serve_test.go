package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"llamaembed/weights/fixture"
)

func TestServeFlagsAndEnvironment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my-local-model")
	if err := mkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	t.Run("defaults", func(t *testing.T) {
		o, err := parseServeFlags([]string{"--model", "nvidia/llama-3.2-nv-embedqa-1b-v2@main"}, env(), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.port != 8000 || o.maxBatchSize != 30 || o.maxSeqLen != 8192 || o.maxBatchTokens != 8192 || o.apiKey != "" ||
			o.servedName != "nvidia/llama-3.2-nv-embedqa-1b-v2" || o.device != "auto" {
			t.Errorf("defaults: %+v", o)
		}
	})
	t.Run("local directory name", func(t *testing.T) {
		o, err := parseServeFlags([]string{"--model", dir + "/"}, env(), io.Discard)
		if err != nil || o.servedName != "my-local-model" {
			t.Errorf("served name %v %v", o, err)
		}
	})
	t.Run("environment", func(t *testing.T) {
		o, err := parseServeFlags([]string{"--model", dir}, env("NIM_HTTP_API_PORT", "9001", "NIM_TRITON_MAX_BATCH_SIZE", "7",
			"NIM_SERVED_MODEL_NAME", "served", "MODEL_VERSION", "1.2.3", "MAX_SEQUENCE_LENGTH", "512", "NIM_API_KEY", "k"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.port != 9001 || o.maxBatchSize != 7 || o.servedName != "served" || o.modelVersion != "1.2.3" || o.maxSeqLen != 512 || o.apiKey != "k" {
			t.Errorf("from the environment: %+v", o)
		}
	})
	t.Run("flags win", func(t *testing.T) {
		o, err := parseServeFlags([]string{"--model", dir, "--port", "9002", "--max-batch-size", "3", "--served-model-name", "flag",
			"--model-version", "9", "--max-seq-len", "64", "--api-key", "f", "--max-batch-tokens", "100"},
			env("NIM_HTTP_API_PORT", "9001", "NIM_TRITON_MAX_BATCH_SIZE", "7", "NIM_SERVED_MODEL_NAME", "served",
				"MODEL_VERSION", "1.2.3", "MAX_SEQUENCE_LENGTH", "512", "NIM_API_KEY", "k"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.port != 9002 || o.maxBatchSize != 3 || o.servedName != "flag" || o.modelVersion != "9" || o.maxSeqLen != 64 || o.apiKey != "f" || o.maxBatchTokens != 100 {
			t.Errorf("flags over the environment: %+v", o)
		}
	})
	for _, c := range []struct {
		name     string
		args     []string
		env      func(string) string
		fragment string
	}{
		{"no model", nil, env(), "--model is required"},
		{"bad env port", []string{"--model", dir}, env("NIM_HTTP_API_PORT", "eighty"), `NIM_HTTP_API_PORT="eighty"`},
		{"bad env batch", []string{"--model", dir}, env("NIM_TRITON_MAX_BATCH_SIZE", "-1"), "NIM_TRITON_MAX_BATCH_SIZE"},
		{"port range", []string{"--model", dir, "--port", "70000"}, env(), "--port 70000"},
		{"batch tokens below seq len", []string{"--model", dir, "--max-seq-len", "512", "--max-batch-tokens", "100"}, env(), "--max-batch-tokens 100 is below --max-seq-len 512"},
		{"zero batch size", []string{"--model", dir, "--max-batch-size", "0"}, env(), "--max-batch-size must be at least 1"},
		{"extra argument", []string{"--model", dir, "extra"}, env(), "unexpected arguments"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var se bytes.Buffer
			if _, err := parseServeFlags(c.args, c.env, &se); err != errUsage || !strings.Contains(se.String(), c.fragment) {
				t.Errorf("err %v, stderr %q, want errUsage and %q", err, se.String(), c.fragment)
			}
		})
	}
}

// lockedBuffer collects the server's log from its goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeCommandAndSIGTERM runs `llamaembed serve` in-process on the tiny
// fixture, checks it serves, then sends the process SIGTERM while clients
// keep sending requests: the command must drain and return exit status 0,
// and every request must have been answered 200 or refused 503 (or, once
// the listener is closed, not connected at all), never cut off.
func TestServeCommandAndSIGTERM(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tiny-llama-a")
	opts := fixture.Tiny()
	opts.Tokenizer = "../../testdata/tokenizer/tokenizer.json"
	if err := fixture.Write(dir, opts); err != nil {
		t.Fatal(err)
	}
	addrCh := make(chan string, 1)
	serveListening = func(a string) { addrCh <- a }
	defer func() { serveListening = nil }()

	var logs lockedBuffer
	code := make(chan int, 1)
	go func() {
		code <- runMain([]string{"serve", "--model", dir, "--host", "127.0.0.1", "--port", "0", "--device", "cpu",
			"--max-seq-len", "128", "--drain-timeout", "10s"}, strings.NewReader(""), io.Discard, &logs)
	}()
	var base string
	select {
	case a := <-addrCh:
		base = "http://" + a
	case c := <-code:
		t.Fatalf("serve exited %d before listening:\n%s", c, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not listen:\n%s", logs.String())
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/v1/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	body := `{"model":"tiny-llama-a","input":["how do I reset my password?"],"input_type":"query"}`
	resp, err := http.Post(base+"/v1/embeddings", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out struct {
		Data []struct {
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil || len(out.Data) != 1 || len(out.Data[0].Embedding) != 64 {
		t.Fatalf("embeddings: %d %s", resp.StatusCode, b)
	}

	// Clients in a loop while SIGTERM arrives.
	stopClients := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	var cutOff []string
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			long := `{"model":"tiny-llama-a","input":["` + strings.Repeat("lorem ipsum ", 40) + `"],"input_type":"passage","truncate":"END"}`
			for i := 0; i < 10000; i++ {
				select {
				case <-stopClients:
					return
				default:
				}
				resp, err := http.Post(base+"/v1/embeddings", "application/json", strings.NewReader(long))
				if err != nil {
					if !strings.Contains(err.Error(), "connection refused") {
						mu.Lock()
						cutOff = append(cutOff, err.Error())
						mu.Unlock()
					}
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("serve exit status %d after SIGTERM, want 0", c)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not stop after SIGTERM:\n%s", logs.String())
	}
	close(stopClients)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("statuses during shutdown: %v", statuses)
	if statuses[200] == 0 {
		t.Error("no request succeeded while the clients ran")
	}
	for s := range statuses {
		if s != 200 && s != 503 {
			t.Errorf("status %d during shutdown (want only 200 or 503)", s)
		}
	}
	// A keep-alive connection closed by the server between requests can
	// surface as EOF on the next request; the server never closes one with
	// a request in flight, which the server package's drain test checks
	// deterministically. Here, report anything else.
	for _, e := range cutOff {
		if !strings.Contains(e, "EOF") && !strings.Contains(e, "connection reset") && !strings.Contains(e, "server closed idle connection") {
			t.Errorf("client error during shutdown: %s", e)
		}
	}
	for _, want := range []string{"msg=listening", "msg=\"model ready\"", "msg=\"shutting down", "msg=stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s", want)
		}
	}
	if resp, err := http.Get(base + "/v1/health/live"); err == nil {
		resp.Body.Close()
		t.Error("still listening after serve returned")
	}
}

func mkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }
