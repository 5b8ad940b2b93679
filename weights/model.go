// Package weights reads Hugging Face Llama bidirectional checkpoints: the
// config.json and the safetensors files, memory-mapped and validated before
// any compute.
package weights

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

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

	storedName  string // the name in the file, perhaps with a "model." prefix
	headerDType string // the dtype as the header spells it (DType is 0 when it is none of ours)
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

// Names lists the canonical names of all loaded tensors, sorted.
func (m *Model) Names() []string {
	names := make([]string, 0, len(m.tensors))
	for n := range m.tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Close unmaps the safetensors files; every Tensor.Data becomes invalid.
// Calling it again does nothing.
func (m *Model) Close() error {
	var errs []error
	for _, c := range m.closers {
		errs = append(errs, c())
	}
	m.closers = nil
	m.tensors = nil
	return errors.Join(errs...)
}

// File names Hugging Face uses in a checkpoint directory.
const (
	ConfigFile            = "config.json"
	SafetensorsFile       = "model.safetensors"
	SafetensorsIndexFile  = "model.safetensors.index.json"
	canonicalPrefixToDrop = "model."
)

// CanonicalName drops the "model." prefix some checkpoints put on every name.
func CanonicalName(name string) string { return strings.TrimPrefix(name, canonicalPrefixToDrop) }

// Open loads dir/config.json and the safetensors weights (dir/model.safetensors,
// or the shards that dir/model.safetensors.index.json lists), memory-mapped,
// and checks that every tensor the config implies is there with its shape and
// a float dtype. Close the Model to unmap the files.
func Open(dir string) (*Model, error) {
	cfg, err := LoadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	m := &Model{Dir: dir, Config: cfg, tensors: map[string]*Tensor{}}
	if err := m.load(); err != nil {
		m.Close()
		return nil, fmt.Errorf("open model %s: %w", dir, err)
	}
	return m, nil
}

func (m *Model) load() error {
	files, index, weightMap, err := weightFiles(m.Dir)
	if err != nil {
		return err
	}
	fileOf := map[string]string{} // stored tensor name -> the file holding it
	for _, name := range files {
		path := filepath.Join(m.Dir, name)
		data, err := mapFile(path)
		if err != nil {
			if index != "" {
				return fmt.Errorf("shard %s listed in %s: %w", name, index, err)
			}
			return err
		}
		m.closers = append(m.closers, func() error { return unix.Munmap(data) })
		ts, err := parseSafetensors(path, data)
		if err != nil {
			return err
		}
		for _, t := range ts {
			fileOf[t.Name] = name
			canon := CanonicalName(t.Name)
			if prev, dup := m.tensors[canon]; dup {
				return fmt.Errorf("tensor %s is stored twice: %s (in %s) and %s (in %s)", canon, t.storedName, t.File, prev.storedName, prev.File)
			}
			t.Name = canon
			m.tensors[canon] = t
		}
	}
	if index != "" {
		if err := checkIndex(index, weightMap, fileOf); err != nil {
			return err
		}
	}
	return m.validate(files)
}

// validate checks the tensors against the config: every one present, with
// its shape and a loadable dtype. Extra tensors (an lm_head, say) are kept.
func (m *Model) validate(files []string) error {
	for _, spec := range m.Config.TensorSpecs() {
		t := m.tensors[spec.Name]
		if t == nil {
			return fmt.Errorf("tensor %s %v, which the config implies, is in none of %s", spec.Name, spec.Shape, strings.Join(files, ", "))
		}
		if t.DType == 0 {
			return fmt.Errorf("%s: tensor %s has dtype %s; only BF16, F16 and F32 load", t.File, spec.Name, t.headerDType)
		}
		if !slices.Equal(t.Shape, spec.Shape) {
			return fmt.Errorf("%s: tensor %s has shape %v, the config implies %v", t.File, spec.Name, t.Shape, spec.Shape)
		}
	}
	for name, t := range m.tensors {
		if t.DType == 0 {
			slog.Debug("ignoring tensor with a non-float dtype", "tensor", name, "file", t.File)
			delete(m.tensors, name)
		}
	}
	return nil
}

// weightFiles names the safetensors files of a checkpoint and, when the
// weights are sharded, the index file and its weight_map.
func weightFiles(dir string) (files []string, index string, weightMap map[string]string, err error) {
	if _, err := os.Stat(filepath.Join(dir, SafetensorsFile)); err == nil {
		return []string{SafetensorsFile}, "", nil, nil
	}
	indexPath := filepath.Join(dir, SafetensorsIndexFile)
	data, err := readSmallFile(indexPath, maxIndexSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", nil, fmt.Errorf("no %s or %s in %s", SafetensorsFile, SafetensorsIndexFile, dir)
	}
	if err != nil {
		return nil, "", nil, err
	}
	wm, err := parseIndex(data)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%s: %w", indexPath, err)
	}
	seen := map[string]bool{}
	for tensor, file := range wm {
		if file == "" || filepath.Base(file) != file || !filepath.IsLocal(file) {
			return nil, "", nil, fmt.Errorf("%s: tensor %s maps to %q, which is not a file name in the model directory", indexPath, tensor, file)
		}
		if !seen[file] {
			seen[file] = true
			files = append(files, file)
		}
	}
	sort.Strings(files)
	return files, SafetensorsIndexFile, wm, nil
}

// Caps on the JSON files of a checkpoint: real ones are kilobytes, and a
// larger file is not one to read into memory.
const (
	maxIndexSize  = 64 << 20
	maxConfigSize = 16 << 20
)

// readSmallFile reads a whole file that must not be larger than limit.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes is more than the %d a JSON file of a checkpoint may have", path, st.Size(), limit)
	}
	return io.ReadAll(io.LimitReader(f, limit+1))
}

// parseIndex reads the weight_map of a model.safetensors.index.json,
// rejecting a name listed twice (which a map would hide).
func parseIndex(data []byte) (map[string]string, error) {
	var top struct {
		WeightMap json.RawMessage `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("bad JSON: %w", err)
	}
	if len(top.WeightMap) == 0 || string(top.WeightMap) == "null" {
		return nil, fmt.Errorf("weight_map is missing")
	}
	dec := json.NewDecoder(bytes.NewReader(top.WeightMap))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("weight_map must be an object")
	}
	wm := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("bad weight_map: %w", err)
		}
		name, _ := tok.(string)
		var file string
		if err := dec.Decode(&file); err != nil {
			return nil, fmt.Errorf("weight_map[%q]: want a file name: %w", name, err)
		}
		if _, dup := wm[name]; dup {
			return nil, fmt.Errorf("weight_map lists tensor %q twice", name)
		}
		wm[name] = file
	}
	if len(wm) == 0 {
		return nil, fmt.Errorf("weight_map is empty")
	}
	return wm, nil
}

// checkIndex makes sure every tensor the index lists is in the shard the
// index names. fileOf maps stored tensor names to the shard holding them.
func checkIndex(index string, wm, fileOf map[string]string) error {
	for name, file := range wm {
		got, ok := fileOf[name]
		switch {
		case !ok:
			return fmt.Errorf("%s lists tensor %s in %s, but no shard holds it", index, name, file)
		case got != file:
			return fmt.Errorf("%s lists tensor %s in %s, but it is in %s", index, name, file, got)
		}
	}
	return nil
}
