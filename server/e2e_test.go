package server

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEndToEndNodeClients runs e2e/client.mjs against the real server on
// the fixture model: the official openai npm client (base64 by default),
// nv-ingest's request shape (16 in parallel), and WAYWO's calls. The script
// checks the protocol; this test then checks the vectors it received
// against the encoder called directly. Skipped, with the reason, where
// Node.js or the npm registry is not available.
func TestEndToEndNodeClients(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH: the end-to-end test needs Node.js (apt-get install nodejs npm)")
	}
	e2eDir, err := filepath.Abs("e2e")
	if err != nil {
		t.Fatal(err)
	}
	ensureNodeModules(t, e2eDir)

	ts := startServer(t, serverOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(e2eDir, "client.mjs"), ts.URL, "tiny-llama-a")
	cmd.Dir = e2eDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("client.mjs: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var got struct {
		Checks        int         `json:"checks"`
		Query         []float32   `json:"query"`
		NVIngest      [][]float32 `json:"nvingest"`
		NVIngestTexts []string    `json:"nvingest_texts"`
		WAYWO         [][]float32 `json:"waywo"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("client.mjs output: %v\n%s", err, stdout.String())
	}
	t.Logf("client.mjs passed %d checks", got.Checks)
	if got.Checks < 60 {
		t.Errorf("client.mjs ran only %d checks", got.Checks)
	}
	if d := maxAbsDiff(got.Query, to64(direct(t, "how do I reset my password?", "query: ", 64))); d > 1e-6 {
		t.Errorf("openai client's query embedding differs by %.3g", d)
	}
	if len(got.NVIngest) != 4 || len(got.NVIngestTexts) != 4 {
		t.Fatalf("nv-ingest results: %d", len(got.NVIngest))
	}
	for i, text := range got.NVIngestTexts {
		if d := maxAbsDiff(got.NVIngest[i], to64(direct(t, text, "passage: ", 64))); d > 1e-6 {
			t.Errorf("nv-ingest text %d differs by %.3g", i, d)
		}
	}
	docs := []string{
		"To reset your password, open Settings, choose Security, and follow the instructions.",
		"Paris is the capital and most populous city of France.",
		"The mitochondria is the powerhouse of the cell.",
	}
	if len(got.WAYWO) != len(docs) {
		t.Fatalf("WAYWO results: %d", len(got.WAYWO))
	}
	for i, d := range docs {
		if diff := maxAbsDiff(got.WAYWO[i], to64(direct(t, d, "passage: ", 64))); diff > 1e-6 {
			t.Errorf("WAYWO document %d differs by %.3g", i, diff)
		}
	}
}

// ensureNodeModules installs the pinned openai package into e2e/node_modules
// (git-ignored) unless it is there; without a reachable registry the test
// is skipped, not failed.
func ensureNodeModules(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai", "package.json")); err == nil {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not on PATH: cannot install the openai client for the end-to-end test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// npm ci installs exactly package-lock.json and never rewrites it.
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--fetch-retries=1", "--fetch-timeout=30000")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("npm ci in %s failed (registry unreachable?), skipping the end-to-end test: %v\n%s", dir, err, out)
	}
}
