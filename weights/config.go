package weights

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
)

// Config is what the math needs from a Hugging Face config.json.
type Config struct {
	Architectures         []string     `json:"architectures"`
	ModelType             string       `json:"model_type"`
	HiddenSize            int          `json:"hidden_size"`
	IntermediateSize      int          `json:"intermediate_size"`
	NumHiddenLayers       int          `json:"num_hidden_layers"`
	NumAttentionHeads     int          `json:"num_attention_heads"`
	NumKeyValueHeads      int          `json:"num_key_value_heads"`
	HeadDim               int          `json:"head_dim"` // derived as hidden/heads when absent
	VocabSize             int          `json:"vocab_size"`
	MaxPositionEmbeddings int          `json:"max_position_embeddings"`
	RMSNormEps            float64      `json:"rms_norm_eps"`
	RopeTheta             float64      `json:"rope_theta"`
	RopeScaling           *RopeScaling `json:"rope_scaling"` // nil: no scaling
	TieWordEmbeddings     bool         `json:"tie_word_embeddings"`
	TorchDType            string       `json:"torch_dtype"`
	Pooling               string       `json:"pooling"`
	BOSTokenID            int          `json:"bos_token_id"`
	// EOSTokenIDs holds eos_token_id, which Hugging Face writes either as a
	// number or as a list.
	EOSTokenIDs []int  `json:"-"`
	HiddenAct   string `json:"hidden_act"`
}

// RopeScaling is the llama3 frequency scaling of RoPE.
type RopeScaling struct {
	Type                          string  `json:"rope_type"`
	Factor                        float64 `json:"factor"`
	LowFreqFactor                 float64 `json:"low_freq_factor"`
	HighFreqFactor                float64 `json:"high_freq_factor"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings"`
}

// Defaults of transformers' LlamaConfig, used when config.json leaves a field out.
const (
	defaultRMSNormEps            = 1e-6
	defaultRopeTheta             = 10000
	defaultMaxPositionEmbeddings = 2048
)

// LoadConfig reads and validates a Hugging Face config.json.
func LoadConfig(path string) (*Config, error) {
	data, err := readSmallFile(path, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	return c, nil
}

// rawConfig mirrors config.json with pointers and raw values where
// Hugging Face allows a field to be absent, null or of several shapes.
type rawConfig struct {
	Architectures         []string        `json:"architectures"`
	ModelType             string          `json:"model_type"`
	HiddenSize            *int            `json:"hidden_size"`
	IntermediateSize      *int            `json:"intermediate_size"`
	NumHiddenLayers       *int            `json:"num_hidden_layers"`
	NumAttentionHeads     *int            `json:"num_attention_heads"`
	NumKeyValueHeads      *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	VocabSize             *int            `json:"vocab_size"`
	MaxPositionEmbeddings *int            `json:"max_position_embeddings"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeScaling           json.RawMessage `json:"rope_scaling"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	TorchDType            string          `json:"torch_dtype"`
	Pooling               string          `json:"pooling"`
	BOSTokenID            *int            `json:"bos_token_id"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
	HiddenAct             string          `json:"hidden_act"`
	AttentionBias         bool            `json:"attention_bias"`
	MLPBias               bool            `json:"mlp_bias"`
}

type rawRopeScaling struct {
	RopeType                      string   `json:"rope_type"`
	LegacyType                    string   `json:"type"`
	Factor                        *float64 `json:"factor"`
	LowFreqFactor                 *float64 `json:"low_freq_factor"`
	HighFreqFactor                *float64 `json:"high_freq_factor"`
	OriginalMaxPositionEmbeddings *int     `json:"original_max_position_embeddings"`
}

// ParseConfig parses and validates the bytes of a Hugging Face config.json:
// it fills in the fields Hugging Face derives (head_dim, num_key_value_heads)
// or defaults, and rejects what the Llama bidirectional math cannot run.
func ParseConfig(data []byte) (*Config, error) {
	var raw rawConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("parse config.json: %w", err)
	}
	c := &Config{
		Architectures: raw.Architectures,
		ModelType:     raw.ModelType,
		TorchDType:    raw.TorchDType,
		Pooling:       raw.Pooling,
		HiddenAct:     raw.HiddenAct,
	}
	required := []struct {
		name string
		src  *int
		dst  *int
	}{
		{"hidden_size", raw.HiddenSize, &c.HiddenSize},
		{"intermediate_size", raw.IntermediateSize, &c.IntermediateSize},
		{"num_hidden_layers", raw.NumHiddenLayers, &c.NumHiddenLayers},
		{"num_attention_heads", raw.NumAttentionHeads, &c.NumAttentionHeads},
		{"vocab_size", raw.VocabSize, &c.VocabSize},
	}
	for _, f := range required {
		if f.src == nil {
			return nil, fmt.Errorf("config.json: %s is missing", f.name)
		}
		if *f.src <= 0 {
			return nil, fmt.Errorf("config.json: %s must be positive, got %d", f.name, *f.src)
		}
		*f.dst = *f.src
	}

	c.NumKeyValueHeads = c.NumAttentionHeads
	if raw.NumKeyValueHeads != nil {
		c.NumKeyValueHeads = *raw.NumKeyValueHeads
	}
	if c.NumKeyValueHeads <= 0 {
		return nil, fmt.Errorf("config.json: num_key_value_heads must be positive, got %d", c.NumKeyValueHeads)
	}
	if c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		return nil, fmt.Errorf("config.json: num_attention_heads %d is not a multiple of num_key_value_heads %d",
			c.NumAttentionHeads, c.NumKeyValueHeads)
	}
	if raw.HeadDim != nil {
		c.HeadDim = *raw.HeadDim
	} else {
		if c.HiddenSize%c.NumAttentionHeads != 0 {
			return nil, fmt.Errorf("config.json: head_dim is absent and hidden_size %d is not a multiple of num_attention_heads %d",
				c.HiddenSize, c.NumAttentionHeads)
		}
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if c.HeadDim <= 0 || c.HeadDim%2 != 0 {
		// Rotate-half RoPE pairs dimension j with j+head_dim/2.
		return nil, fmt.Errorf("config.json: head_dim must be positive and even, got %d", c.HeadDim)
	}

	c.MaxPositionEmbeddings = defaultMaxPositionEmbeddings
	if raw.MaxPositionEmbeddings != nil {
		c.MaxPositionEmbeddings = *raw.MaxPositionEmbeddings
	}
	if c.MaxPositionEmbeddings <= 0 {
		return nil, fmt.Errorf("config.json: max_position_embeddings must be positive, got %d", c.MaxPositionEmbeddings)
	}
	c.RMSNormEps = defaultRMSNormEps
	if raw.RMSNormEps != nil {
		c.RMSNormEps = *raw.RMSNormEps
	}
	if !(c.RMSNormEps > 0 && c.RMSNormEps < 1) {
		return nil, fmt.Errorf("config.json: rms_norm_eps must be in (0, 1), got %g", c.RMSNormEps)
	}
	c.RopeTheta = defaultRopeTheta
	if raw.RopeTheta != nil {
		c.RopeTheta = *raw.RopeTheta
	}
	if !(c.RopeTheta > 1) {
		return nil, fmt.Errorf("config.json: rope_theta must be greater than 1, got %g", c.RopeTheta)
	}
	rs, err := parseRopeScaling(raw.RopeScaling)
	if err != nil {
		return nil, fmt.Errorf("config.json: rope_scaling: %w", err)
	}
	c.RopeScaling = rs

	c.TieWordEmbeddings = true // transformers' LlamaConfig default is false, but an encoder has no lm_head either way
	if raw.TieWordEmbeddings != nil {
		c.TieWordEmbeddings = *raw.TieWordEmbeddings
	}
	if raw.BOSTokenID != nil {
		c.BOSTokenID = *raw.BOSTokenID
	}
	if len(raw.EOSTokenID) > 0 && string(raw.EOSTokenID) != "null" {
		var one int
		if err := json.Unmarshal(raw.EOSTokenID, &one); err == nil {
			c.EOSTokenIDs = []int{one}
		} else if err := json.Unmarshal(raw.EOSTokenID, &c.EOSTokenIDs); err != nil {
			return nil, fmt.Errorf("config.json: eos_token_id must be a number or a list of numbers, got %s", raw.EOSTokenID)
		}
	}

	if c.HiddenAct != "" && c.HiddenAct != "silu" {
		return nil, fmt.Errorf("config.json: hidden_act %q is not supported (only silu)", c.HiddenAct)
	}
	if raw.AttentionBias || raw.MLPBias {
		return nil, fmt.Errorf("config.json: attention_bias/mlp_bias are not supported (the model must have no biases)")
	}
	if c.Pooling != "" && c.Pooling != "avg" && c.Pooling != "mean" {
		slog.Warn("config.json asks for a pooling other than mean; llamaembed always mean-pools", "pooling", c.Pooling)
	}
	if err := checkArchitecture(c); err != nil {
		return nil, err
	}
	return c, nil
}

// checkArchitecture accepts Llama checkpoints. A causal Llama (no
// LlamaBidirectionalModel) still loads, but it is run without a causal mask,
// which is only right for checkpoints trained that way: say so.
func checkArchitecture(c *Config) error {
	bidir := slices.Contains(c.Architectures, "LlamaBidirectionalModel")
	switch c.ModelType {
	case "llama_bidirec":
	case "llama":
		if !bidir {
			slog.Warn("config.json describes a causal Llama; llamaembed runs it bidirectionally (no causal mask)",
				"architectures", c.Architectures)
		}
	case "":
		if !bidir {
			return fmt.Errorf("config.json: model_type is absent and architectures %q do not include LlamaBidirectionalModel", c.Architectures)
		}
	default:
		return fmt.Errorf("config.json: model_type %q is not a Llama (want llama_bidirec or llama)", c.ModelType)
	}
	return nil
}

func parseRopeScaling(data json.RawMessage) (*RopeScaling, error) {
	if len(data) == 0 || string(bytes.TrimSpace(data)) == "null" {
		return nil, nil
	}
	var raw rawRopeScaling
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	typ := raw.RopeType
	if typ == "" {
		typ = raw.LegacyType
	}
	switch typ {
	case "default":
		return nil, nil
	case "llama3":
	case "":
		return nil, fmt.Errorf("rope_type (or type) is missing")
	default:
		return nil, fmt.Errorf("rope_type %q is not supported (only llama3, default or null)", typ)
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"factor", raw.Factor}, {"low_freq_factor", raw.LowFreqFactor}, {"high_freq_factor", raw.HighFreqFactor}} {
		if f.v == nil {
			return nil, fmt.Errorf("llama3: %s is missing", f.name)
		}
		if !(*f.v > 0) {
			return nil, fmt.Errorf("llama3: %s must be positive, got %g", f.name, *f.v)
		}
	}
	if raw.OriginalMaxPositionEmbeddings == nil {
		return nil, fmt.Errorf("llama3: original_max_position_embeddings is missing")
	}
	if *raw.OriginalMaxPositionEmbeddings <= 0 {
		return nil, fmt.Errorf("llama3: original_max_position_embeddings must be positive, got %d", *raw.OriginalMaxPositionEmbeddings)
	}
	if !(*raw.HighFreqFactor > *raw.LowFreqFactor) {
		// The smoothing between the two wavelengths divides by their difference.
		return nil, fmt.Errorf("llama3: high_freq_factor %g must be greater than low_freq_factor %g", *raw.HighFreqFactor, *raw.LowFreqFactor)
	}
	return &RopeScaling{
		Type:                          "llama3",
		Factor:                        *raw.Factor,
		LowFreqFactor:                 *raw.LowFreqFactor,
		HighFreqFactor:                *raw.HighFreqFactor,
		OriginalMaxPositionEmbeddings: *raw.OriginalMaxPositionEmbeddings,
	}, nil
}

// TensorSpec is one tensor a config implies: its canonical name and shape.
type TensorSpec struct {
	Name  string
	Shape []int
}

// TensorSpecs lists every tensor the config implies, sorted by name.
func (c *Config) TensorSpecs() []TensorSpec {
	h, q, kv := c.HiddenSize, c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim
	inter := c.IntermediateSize
	specs := []TensorSpec{
		{"embed_tokens.weight", []int{c.VocabSize, h}},
		{"norm.weight", []int{h}},
	}
	for l := 0; l < c.NumHiddenLayers; l++ {
		p := fmt.Sprintf("layers.%d.", l)
		specs = append(specs,
			TensorSpec{p + "input_layernorm.weight", []int{h}},
			TensorSpec{p + "post_attention_layernorm.weight", []int{h}},
			TensorSpec{p + "self_attn.q_proj.weight", []int{q, h}},
			TensorSpec{p + "self_attn.k_proj.weight", []int{kv, h}},
			TensorSpec{p + "self_attn.v_proj.weight", []int{kv, h}},
			TensorSpec{p + "self_attn.o_proj.weight", []int{h, q}},
			TensorSpec{p + "mlp.gate_proj.weight", []int{inter, h}},
			TensorSpec{p + "mlp.up_proj.weight", []int{inter, h}},
			TensorSpec{p + "mlp.down_proj.weight", []int{h, inter}},
		)
	}
	slices.SortFunc(specs, func(a, b TensorSpec) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return specs
}
