// Package weights reads Hugging Face Llama bidirectional checkpoints: the
// config.json and the safetensors files, memory-mapped and validated before
// any compute.
package weights

// DType is the element type of a stored tensor.
type DType int

const (
	BF16 DType = iota + 1
	F16
	F32
)

// Size is the number of bytes of one element.
func (d DType) Size() int {
	if d == F32 {
		return 4
	}
	return 2
}

func (d DType) String() string {
	switch d {
	case BF16:
		return "BF16"
	case F16:
		return "F16"
	case F32:
		return "F32"
	}
	return "unknown"
}

// Tensor is one stored tensor. Data aliases the memory-mapped file: it is
// valid until the Model is closed and must not be written.
type Tensor struct {
	Name  string // canonical name, without any "model." prefix
	File  string // the safetensors file it came from
	DType DType
	Shape []int
	Data  []byte // little-endian elements, row-major
}

// Model is a loaded checkpoint: its config and its tensors by canonical name.
type Model struct {
	Dir     string
	Config  *Config
	tensors map[string]*Tensor
	closers []func() error
}

// Tensor returns the tensor with the canonical name (for example
// "layers.0.self_attn.q_proj.weight"), or nil.
func (m *Model) Tensor(name string) *Tensor { return m.tensors[name] }
