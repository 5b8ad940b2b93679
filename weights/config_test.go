package weights

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// baseConfig is a valid config as a map, for tests to edit.
func baseConfig() map[string]any {
	return map[string]any{
		"architectures":           []any{"LlamaBidirectionalModel"},
		"model_type":              "llama_bidirec",
		"hidden_size":             64,
		"intermediate_size":       160,
		"num_hidden_layers":       2,
		"num_attention_heads":     4,
		"num_key_value_heads":     2,
		"vocab_size":              1000,
		"max_position_embeddings": 131072,
		"rms_norm_eps":            1e-5,
		"rope_theta":              500000.0,
		"hidden_act":              "silu",
		"bos_token_id":            128000,
		"eos_token_id":            128001,
		"rope_scaling": map[string]any{
			"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
			"high_freq_factor": 4.0, "original_max_position_embeddings": 8192,
		},
	}
}

func TestParseConfig(t *testing.T) {
	llama3 := &RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}
	tests := []struct {
		name    string
		edit    func(m map[string]any)
		wantErr string // substring; "" means success
		check   func(t *testing.T, c *Config)
	}{
		{name: "valid", check: func(t *testing.T, c *Config) {
			if c.HeadDim != 16 || c.NumKeyValueHeads != 2 || c.RMSNormEps != 1e-5 || c.RopeTheta != 500000 || c.MaxPositionEmbeddings != 131072 {
				t.Errorf("config %+v", c)
			}
			if *c.RopeScaling != *llama3 {
				t.Errorf("rope_scaling %+v", c.RopeScaling)
			}
			if c.BOSTokenID != 128000 || len(c.EOSTokenIDs) != 1 || c.EOSTokenIDs[0] != 128001 {
				t.Errorf("bos %d eos %v", c.BOSTokenID, c.EOSTokenIDs)
			}
		}},
		{name: "head_dim given, not hidden/heads", edit: func(m map[string]any) { m["head_dim"] = 32 }, check: func(t *testing.T, c *Config) {
			if c.HeadDim != 32 {
				t.Errorf("head_dim %d", c.HeadDim)
			}
		}},
		{name: "kv heads default to heads", edit: func(m map[string]any) { delete(m, "num_key_value_heads") }, check: func(t *testing.T, c *Config) {
			if c.NumKeyValueHeads != 4 {
				t.Errorf("kv heads %d", c.NumKeyValueHeads)
			}
		}},
		{name: "rope_scaling null", edit: func(m map[string]any) { m["rope_scaling"] = nil }, check: func(t *testing.T, c *Config) {
			if c.RopeScaling != nil {
				t.Errorf("rope_scaling %+v", c.RopeScaling)
			}
		}},
		{name: "rope_scaling absent, defaults", edit: func(m map[string]any) {
			delete(m, "rope_scaling")
			delete(m, "rope_theta")
			delete(m, "rms_norm_eps")
		}, check: func(t *testing.T, c *Config) {
			if c.RopeScaling != nil || c.RopeTheta != 10000 || c.RMSNormEps != 1e-6 {
				t.Errorf("config %+v", c)
			}
		}},
		{name: "rope type default means none", edit: func(m map[string]any) { m["rope_scaling"] = map[string]any{"rope_type": "default"} }, check: func(t *testing.T, c *Config) {
			if c.RopeScaling != nil {
				t.Errorf("rope_scaling %+v", c.RopeScaling)
			}
		}},
		{name: "legacy type key", edit: func(m map[string]any) {
			rs := m["rope_scaling"].(map[string]any)
			delete(rs, "rope_type")
			rs["type"] = "llama3"
		}, check: func(t *testing.T, c *Config) {
			if c.RopeScaling == nil || *c.RopeScaling != *llama3 {
				t.Errorf("rope_scaling %+v", c.RopeScaling)
			}
		}},
		{name: "eos list", edit: func(m map[string]any) { m["eos_token_id"] = []any{128001, 128009} }, check: func(t *testing.T, c *Config) {
			if len(c.EOSTokenIDs) != 2 || c.EOSTokenIDs[1] != 128009 {
				t.Errorf("eos %v", c.EOSTokenIDs)
			}
		}},
		{name: "causal llama accepted", edit: func(m map[string]any) {
			m["model_type"] = "llama"
			m["architectures"] = []any{"LlamaForCausalLM"}
		}},
		{name: "unknown rope type", edit: func(m map[string]any) { m["rope_scaling"].(map[string]any)["rope_type"] = "yarn" }, wantErr: `rope_type "yarn" is not supported`},
		{name: "rope type missing", edit: func(m map[string]any) { delete(m["rope_scaling"].(map[string]any), "rope_type") }, wantErr: "rope_type (or type) is missing"},
		{name: "llama3 factor missing", edit: func(m map[string]any) { delete(m["rope_scaling"].(map[string]any), "factor") }, wantErr: "factor is missing"},
		{name: "llama3 negative factor", edit: func(m map[string]any) { m["rope_scaling"].(map[string]any)["factor"] = -2.0 }, wantErr: "factor must be positive"},
		{name: "llama3 high <= low", edit: func(m map[string]any) { m["rope_scaling"].(map[string]any)["high_freq_factor"] = 1.0 }, wantErr: "greater than low_freq_factor"},
		{name: "llama3 original missing", edit: func(m map[string]any) {
			delete(m["rope_scaling"].(map[string]any), "original_max_position_embeddings")
		}, wantErr: "original_max_position_embeddings is missing"},
		{name: "hidden missing", edit: func(m map[string]any) { delete(m, "hidden_size") }, wantErr: "hidden_size is missing"},
		{name: "layers zero", edit: func(m map[string]any) { m["num_hidden_layers"] = 0 }, wantErr: "num_hidden_layers must be positive"},
		{name: "vocab negative", edit: func(m map[string]any) { m["vocab_size"] = -5 }, wantErr: "vocab_size must be positive"},
		{name: "heads not multiple of kv", edit: func(m map[string]any) { m["num_key_value_heads"] = 3 }, wantErr: "not a multiple of num_key_value_heads"},
		{name: "kv zero", edit: func(m map[string]any) { m["num_key_value_heads"] = 0 }, wantErr: "num_key_value_heads must be positive"},
		{name: "odd head_dim", edit: func(m map[string]any) { m["head_dim"] = 15 }, wantErr: "head_dim must be positive and even"},
		{name: "hidden not multiple of heads", edit: func(m map[string]any) { m["hidden_size"] = 66 }, wantErr: "not a multiple of num_attention_heads"},
		{name: "eps zero", edit: func(m map[string]any) { m["rms_norm_eps"] = 0.0 }, wantErr: "rms_norm_eps"},
		{name: "theta too small", edit: func(m map[string]any) { m["rope_theta"] = 0.5 }, wantErr: "rope_theta"},
		{name: "fractional size", edit: func(m map[string]any) { m["hidden_size"] = 64.5 }, wantErr: "hidden_size"},
		{name: "wrong activation", edit: func(m map[string]any) { m["hidden_act"] = "gelu" }, wantErr: `hidden_act "gelu"`},
		{name: "biases", edit: func(m map[string]any) { m["attention_bias"] = true }, wantErr: "attention_bias"},
		{name: "not a llama", edit: func(m map[string]any) { m["model_type"] = "bert" }, wantErr: `model_type "bert"`},
		{name: "no type, no architecture", edit: func(m map[string]any) {
			delete(m, "model_type")
			m["architectures"] = []any{"BertModel"}
		}, wantErr: "LlamaBidirectionalModel"},
		{name: "bad eos", edit: func(m map[string]any) { m["eos_token_id"] = "x" }, wantErr: "eos_token_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := baseConfig()
			if tc.edit != nil {
				tc.edit(m)
			}
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseConfig(b)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestParseConfigBadJSON(t *testing.T) {
	for _, in := range []string{``, `{`, `[]`, `{"hidden_size": "64"}`} {
		if _, err := ParseConfig([]byte(in)); err == nil {
			t.Errorf("ParseConfig(%q) succeeded", in)
		}
	}
}

func TestLoadConfigNamesFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("missing file: err = %v, want the path", err)
	}
	if err := os.WriteFile(path, []byte(`{"hidden_size": 0}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "hidden_size") {
		t.Fatalf("bad file: err = %v, want the path and the field", err)
	}
}

func TestTensorSpecs(t *testing.T) {
	m := baseConfig()
	m["head_dim"] = 32 // q_proj [heads*head_dim, hidden] differs from [hidden, hidden]
	b, _ := json.Marshal(m)
	c, err := ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	specs := c.TensorSpecs()
	if len(specs) != 2+9*2 {
		t.Fatalf("%d specs", len(specs))
	}
	want := map[string][2]int{
		"embed_tokens.weight":              {1000, 64},
		"layers.1.self_attn.q_proj.weight": {128, 64},
		"layers.1.self_attn.k_proj.weight": {64, 64},
		"layers.0.self_attn.o_proj.weight": {64, 128},
		"layers.0.mlp.gate_proj.weight":    {160, 64},
		"layers.0.mlp.down_proj.weight":    {64, 160},
	}
	for i, s := range specs {
		if i > 0 && specs[i-1].Name >= s.Name {
			t.Errorf("specs not sorted at %s", s.Name)
		}
		if w, ok := want[s.Name]; ok && (len(s.Shape) != 2 || s.Shape[0] != w[0] || s.Shape[1] != w[1]) {
			t.Errorf("%s shape %v, want %v", s.Name, s.Shape, w)
		}
		if strings.HasSuffix(s.Name, "norm.weight") && (len(s.Shape) != 1 || s.Shape[0] != 64) {
			t.Errorf("%s shape %v", s.Name, s.Shape)
		}
	}
}

func TestLoadConfigRefusesHugeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: no disk used, and LoadConfig must not read it all.
	if err := f.Truncate(1 << 40); err != nil {
		t.Skip("no sparse files here:", err)
	}
	f.Close()
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("err = %v", err)
	}
}
