package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"llamaembed/weights"
	"llamaembed/weights/fixture"
)

func runMkmodelCLI(args ...string) (int, string) {
	var stdout, stderr bytes.Buffer
	code := runMain(append([]string{"mkmodel"}, args...), strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String() + stderr.String()
}

// The mkmodel_flags of testdata/tiny-llama-a.json make exactly the tiny
// preset, byte for byte.
func TestMkmodelTinyFromReferenceFlags(t *testing.T) {
	dir := t.TempDir()
	args := append(strings.Fields("--hidden 64 --layers 2 --heads 4 --kv 2 --inter 160 --seed 1"), dir)
	if code, out := runMkmodelCLI(args...); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	want := t.TempDir()
	if err := fixture.Write(want, fixture.Tiny()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{weights.ConfigFile, weights.SafetensorsFile} {
		a, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(want, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from the tiny preset's", f)
		}
	}
}

func TestMkmodelFlagsOverridePreset(t *testing.T) {
	dir := t.TempDir()
	code, out := runMkmodelCLI("--preset", "nemotron-1b", "--layers", "1", "--hidden", "256", "--heads", "4", "--kv", "2",
		"--inter", "64", "--vocab", "100", "--dtype", "f16", "--shards", "2", "--prefix", "--rope-scaling", "none",
		"--eps", "1e-6", "--seed", "9", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	m, err := weights.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := m.Config
	if c.NumHiddenLayers != 1 || c.HiddenSize != 256 || c.HeadDim != 64 || c.NumKeyValueHeads != 2 || c.IntermediateSize != 64 ||
		c.VocabSize != 100 || c.RopeScaling != nil || c.RMSNormEps != 1e-6 || c.RopeTheta != 500000 || c.TorchDType != "float16" {
		t.Errorf("config %+v", c)
	}
	if tn := m.Tensor("layers.0.mlp.up_proj.weight"); tn == nil || tn.DType != weights.F16 {
		t.Fatalf("up_proj %+v", tn)
	}
	idx, err := os.ReadFile(filepath.Join(dir, weights.SafetensorsIndexFile))
	if err != nil || !bytes.Contains(idx, []byte(`"model.norm.weight"`)) {
		t.Errorf("index (err %v) lacks prefixed names: %.200s", err, idx)
	}
	got := m.Tensor("norm.weight").Float32s()
	want := weights.F16ToFloat32(weights.Float32ToF16(fixture.Value("norm.weight", []int{256}, 5, 9)))
	if got[5] != want {
		t.Errorf("norm.weight[5] = %v, want %v (seed 9)", got[5], want)
	}
}

func TestMkmodelRopeFlags(t *testing.T) {
	dir := t.TempDir()
	code, out := runMkmodelCLI("--vocab", "10", "--rope-theta", "10000", "--rope-factor", "8", "--rope-low", "2", "--rope-high", "5", "--rope-original", "4096", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	c, err := weights.LoadConfig(filepath.Join(dir, weights.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	want := weights.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 2, HighFreqFactor: 5, OriginalMaxPositionEmbeddings: 4096}
	if c.RopeTheta != 10000 || c.RopeScaling == nil || *c.RopeScaling != want {
		t.Errorf("theta %v scaling %+v", c.RopeTheta, c.RopeScaling)
	}
}

func TestMkmodelErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage"},
		{[]string{"--bogus", "x"}, 2, "bogus"},
		{[]string{"--preset", "huge", "DIR"}, 1, `unknown preset "huge"`},
		{[]string{"--dtype", "int8", "DIR"}, 1, "--dtype"},
		{[]string{"--shards", "0", "DIR"}, 1, "--shards"},
		{[]string{"--rope-scaling", "yarn", "DIR"}, 1, "--rope-scaling"},
		{[]string{"--rope-scaling", "none", "--rope-factor", "2", "DIR"}, 1, "takes no"},
		{[]string{"--kv", "3", "DIR"}, 1, "num_key_value_heads"},
		{[]string{"--hidden", "-4", "DIR"}, 1, "hidden_size"},
	} {
		args := tc.args
		for i, a := range args {
			if a == "DIR" {
				args[i] = t.TempDir()
			}
		}
		code, out := runMkmodelCLI(args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("mkmodel %v: exit %d, output %q; want exit %d mentioning %q", tc.args, code, out, tc.code, tc.want)
		}
	}
}
