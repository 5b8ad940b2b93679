package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchCLI(t *testing.T) {
	dir := tinyModel(t)
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"bench", "--model", dir, "--batch", "3", "--seq", "5", "--iters", "4", "--warmup", "0"}, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var res benchResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("output %q is not one JSON object: %v", stdout.String(), err)
	}
	if res.Batch != 3 || res.Seq != 5 || res.Iters != 4 {
		t.Errorf("result echoes batch %d seq %d iters %d, want 3 5 4", res.Batch, res.Seq, res.Iters)
	}
	if res.TokensPerS <= 0 || res.LatencyP50Ms <= 0 || res.LatencyMinMs > res.LatencyP50Ms || res.PeakRSSMiB <= 0 {
		t.Errorf("implausible figures: %+v", res)
	}
	if !strings.HasPrefix(res.Device, "cpu") {
		t.Errorf("device %q, want the cpu backend", res.Device)
	}
}

func TestBenchCLIFlags(t *testing.T) {
	dir := tinyModel(t)
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no model", []string{"bench"}, 2, "--model is required"},
		{"zero batch", []string{"bench", "--model", dir, "--batch", "0"}, 2, "must be at least 1"},
		{"extra arg", []string{"bench", "--model", dir, "x"}, 2, "unexpected arguments"},
		{"missing dir", []string{"bench", "--model", dir + "/nope"}, 1, "nope"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		if code := runMain(c.args, nil, &stdout, &stderr); code != c.code || !strings.Contains(stderr.String(), c.msg) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d mentioning %q", c.name, code, stderr.String(), c.code, c.msg)
		}
	}
}
