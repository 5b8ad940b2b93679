package weights_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"llamaembed/weights"
	"llamaembed/weights/fixture"
)

// micro is the smallest fixture worth loading: a file of a few kilobytes.
func micro(shards int) fixture.Options {
	o := fixture.Tiny()
	o.Hidden, o.Layers, o.Heads, o.KVHeads, o.Inter, o.Vocab = 8, 1, 2, 1, 16, 10
	o.Shards = shards
	return o
}

func writeMicro(t *testing.T, shards int) string {
	t.Helper()
	dir := t.TempDir()
	if err := fixture.Write(dir, micro(shards)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// entry is one tensor of a safetensors header, in header order.
type entry struct {
	Name  string
	DType string
	Shape []int
	Off   [2]int64
}

func readEntries(t *testing.T, path string) ([]entry, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b)
	dec := json.NewDecoder(bytes.NewReader(b[8 : 8+n]))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var out []entry
	for dec.More() {
		tok, _ := dec.Token()
		var v struct {
			DType       string   `json:"dtype"`
			Shape       []int    `json:"shape"`
			DataOffsets []int64  `json:"data_offsets"`
			Format      string   `json:"format"`
			Unused      []string `json:"-"`
		}
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		if tok == "__metadata__" {
			continue
		}
		out = append(out, entry{tok.(string), v.DType, v.Shape, [2]int64{v.DataOffsets[0], v.DataOffsets[1]}})
	}
	return out, b[8+n:]
}

func writeEntries(t *testing.T, path string, entries []entry, data []byte) {
	t.Helper()
	var h bytes.Buffer
	h.WriteString(`{"__metadata__":{"format":"pt"}`)
	for _, e := range entries {
		shape, _ := json.Marshal(e.Shape)
		fmt.Fprintf(&h, `,%q:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, e.Name, e.DType, shape, e.Off[0], e.Off[1])
	}
	h.WriteString("}")
	writeRaw(t, path, h.Bytes(), data)
}

func writeRaw(t *testing.T, path string, header, data []byte) {
	t.Helper()
	for len(header)%8 != 0 {
		header = append(header, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(append(out, header...), data...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func edit(t *testing.T, path string, f func(es []entry, data []byte) ([]entry, []byte)) {
	t.Helper()
	es, data := readEntries(t, path)
	es, data = f(es, data)
	writeEntries(t, path, es, data)
}

func find(es []entry, name string) int {
	for i, e := range es {
		if e.Name == name {
			return i
		}
	}
	panic("no tensor " + name)
}

func setHeaderLen(t *testing.T, path string, n uint64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(b, n)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func editIndex(t *testing.T, dir string, f func(string) string) {
	t.Helper()
	p := filepath.Join(dir, weights.SafetensorsIndexFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(f(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsBadCheckpoints(t *testing.T) {
	const single = weights.SafetensorsFile
	shard1, shard2 := fixture.ShardName(0, 2), fixture.ShardName(1, 2)
	tests := []struct {
		name   string
		shards int
		spoil  func(t *testing.T, dir string)
		want   []string // substrings of the error
	}{
		{"truncated data", 1, func(t *testing.T, dir string) {
			p := filepath.Join(dir, single)
			st, _ := os.Stat(p)
			if err := os.Truncate(p, st.Size()-2); err != nil {
				t.Fatal(err)
			}
		}, []string{single, "truncated", "norm.weight"}},
		{"tiny file", 1, func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, single), []byte{1, 2, 3}, 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{single, "too short"}},
		{"header length beyond file", 1, func(t *testing.T, dir string) {
			p := filepath.Join(dir, single)
			st, _ := os.Stat(p)
			setHeaderLen(t, p, uint64(st.Size()))
		}, []string{single, "runs past the end"}},
		{"absurd header size", 1, func(t *testing.T, dir string) {
			setHeaderLen(t, filepath.Join(dir, single), 1<<62)
		}, []string{single, "exceeds"}},
		{"bad JSON header", 1, func(t *testing.T, dir string) {
			_, data := readEntries(t, filepath.Join(dir, single))
			writeRaw(t, filepath.Join(dir, single), []byte(`{"norm.weight": [1,`), data)
		}, []string{single, "bad JSON header"}},
		{"header not an object", 1, func(t *testing.T, dir string) {
			_, data := readEntries(t, filepath.Join(dir, single))
			writeRaw(t, filepath.Join(dir, single), []byte(`[1, 2]`), data)
		}, []string{single, "want an object"}},
		{"size does not match shape", 1, func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, single), func(es []entry, d []byte) ([]entry, []byte) {
				es[find(es, "layers.0.mlp.up_proj.weight")].Shape = []int{16, 7}
				return es, d
			})
		}, []string{single, "layers.0.mlp.up_proj.weight", "needs"}},
		{"offsets out of range", 1, func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, single), func(es []entry, d []byte) ([]entry, []byte) {
				i := find(es, "norm.weight")
				size := es[i].Off[1] - es[i].Off[0]
				es[i].Off = [2]int64{1 << 40, 1<<40 + size}
				return es, d
			})
		}, []string{single, "norm.weight", "run past"}},
		{"offsets reversed", 1, func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, single), func(es []entry, d []byte) ([]entry, []byte) {
				i := find(es, "norm.weight")
				es[i].Off[0], es[i].Off[1] = es[i].Off[1], es[i].Off[0]
				return es, d
			})
		}, []string{single, "norm.weight", "end before they start"}},
		{"overlapping tensors", 1, func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, single), func(es []entry, d []byte) ([]entry, []byte) {
				a, b := find(es, "layers.0.input_layernorm.weight"), find(es, "layers.0.post_attention_layernorm.weight")
				es[b].Off = es[a].Off
				return es, d
			})
		}, []string{single, "overlap", "layernorm.weight"}},
		{"hole between tensors", 1, func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, single), func(es []entry, d []byte) ([]entry, []byte) {
				i := find(es, "norm.weight") // the last one
				es[i].Off[0] += 2
				es[i].Off[1] += 2
				return es, append(d, 0, 0)
			})
		}, []string{single, "norm.weight", "hole"}},
		{"trailing bytes", 1, func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, single), func(es []entry, d []byte) ([]entry, []byte) {
				return es, append(d, 1, 2, 3, 4)
			})
		}, []string{single, "4 bytes of data follow the last tensor"}},
		{"duplicate name in a file", 1, func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, single), func(es []entry, d []byte) ([]entry, []byte) {
				es[find(es, "layers.0.post_attention_layernorm.weight")].Name = "layers.0.input_layernorm.weight"
				return es, d
			})
		}, []string{single, `duplicate tensor name "layers.0.input_layernorm.weight"`}},
		{"same tensor with and without prefix", 1, func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, single), func(es []entry, d []byte) ([]entry, []byte) {
				i := find(es, "norm.weight")
				dup := es[i]
				dup.Name = "model.norm.weight"
				size := dup.Off[1] - dup.Off[0]
				dup.Off = [2]int64{int64(len(d)), int64(len(d)) + size}
				return append(es, dup), append(d, d[es[i].Off[0]:es[i].Off[1]]...)
			})
		}, []string{single, "norm.weight is stored twice"}},
		{"missing tensor", 1, func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, single), func(es []entry, d []byte) ([]entry, []byte) {
				es[find(es, "layers.0.self_attn.v_proj.weight")].Name = "layers.0.self_attn.w_proj.weight"
				return es, d
			})
		}, []string{single, "layers.0.self_attn.v_proj.weight", "in none of"}},
		{"wrong shape", 1, func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, single), func(es []entry, d []byte) ([]entry, []byte) {
				es[find(es, "layers.0.mlp.down_proj.weight")].Shape = []int{16, 8} // transposed
				return es, d
			})
		}, []string{single, "layers.0.mlp.down_proj.weight", "has shape [16 8]", "implies [8 16]"}},
		{"integer dtype", 1, func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, single), func(es []entry, d []byte) ([]entry, []byte) {
				es[find(es, "norm.weight")].DType = "I16"
				return es, d
			})
		}, []string{single, "norm.weight", "dtype I16"}},
		{"unknown dtype", 1, func(t *testing.T, dir string) {
			edit(t, filepath.Join(dir, single), func(es []entry, d []byte) ([]entry, []byte) {
				es[find(es, "norm.weight")].DType = "Q4_K"
				return es, d
			})
		}, []string{single, "norm.weight", `unknown dtype "Q4_K"`}},
		{"entry missing a field", 1, func(t *testing.T, dir string) {
			_, data := readEntries(t, filepath.Join(dir, single))
			writeRaw(t, filepath.Join(dir, single), []byte(`{"norm.weight":{"dtype":"BF16","shape":[8]}}`), data)
		}, []string{single, "norm.weight", "needs dtype, shape and data_offsets"}},
		{"missing config", 1, func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, weights.ConfigFile))
		}, []string{weights.ConfigFile}},
		{"no weights", 1, func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, single))
		}, []string{"no model.safetensors or model.safetensors.index.json"}},
		{"duplicate name across shards", 2, func(t *testing.T, dir string) {
			es1, _ := readEntries(t, filepath.Join(dir, shard1))
			edit(t, filepath.Join(dir, shard2), func(es []entry, d []byte) ([]entry, []byte) {
				es[0].Name = es1[0].Name
				return es, d
			})
		}, []string{shard1, shard2, "stored twice"}},
		{"missing shard file", 2, func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, shard2))
		}, []string{shard2, weights.SafetensorsIndexFile}},
		{"index points at a missing file", 2, func(t *testing.T, dir string) {
			editIndex(t, dir, func(s string) string {
				return strings.Replace(s, shard2, "model-00003-of-00002.safetensors", 1)
			})
		}, []string{"model-00003-of-00002.safetensors", weights.SafetensorsIndexFile}},
		{"index names the wrong shard", 2, func(t *testing.T, dir string) {
			es2, _ := readEntries(t, filepath.Join(dir, shard2))
			editIndex(t, dir, func(s string) string {
				return strings.Replace(s, fmt.Sprintf("%q: %q", es2[0].Name, shard2), fmt.Sprintf("%q: %q", es2[0].Name, shard1), 1)
			})
		}, []string{weights.SafetensorsIndexFile, "in " + shard1 + ", but it is in " + shard2}},
		{"index lists a tensor no shard holds", 2, func(t *testing.T, dir string) {
			editIndex(t, dir, func(s string) string {
				return strings.Replace(s, `"weight_map": {`, `"weight_map": {"lm_head.weight": "`+shard1+`",`, 1)
			})
		}, []string{"lm_head.weight", "no shard holds it"}},
		{"index lists a tensor twice", 2, func(t *testing.T, dir string) {
			editIndex(t, dir, func(s string) string {
				return strings.Replace(s, `"weight_map": {`, `"weight_map": {"norm.weight": "`+shard1+`",`, 1)
			})
		}, []string{weights.SafetensorsIndexFile, `"norm.weight" twice`}},
		{"index escapes the directory", 2, func(t *testing.T, dir string) {
			editIndex(t, dir, func(s string) string { return strings.Replace(s, shard2, "../"+shard2, 1) })
		}, []string{weights.SafetensorsIndexFile, "not a file name in the model directory"}},
		{"huge index", 2, func(t *testing.T, dir string) {
			if err := os.Truncate(filepath.Join(dir, weights.SafetensorsIndexFile), 1<<40); err != nil {
				t.Skip("no sparse files here:", err)
			}
		}, []string{weights.SafetensorsIndexFile, "more than"}},
		{"index without weight_map", 2, func(t *testing.T, dir string) {
			editIndex(t, dir, func(string) string { return `{"metadata": {}}` })
		}, []string{weights.SafetensorsIndexFile, "weight_map is missing"}},
		{"config disagrees with tensors", 1, func(t *testing.T, dir string) {
			p := filepath.Join(dir, weights.ConfigFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"intermediate_size": 16`), []byte(`"intermediate_size": 32`), 1), 0o644)
		}, []string{single, "layers.0.mlp", "implies [8 32]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeMicro(t, tc.shards)
			tc.spoil(t, dir)
			m, err := weights.Open(dir)
			if err == nil {
				m.Close()
				t.Fatal("Open succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestOpenKeepsExtraTensors(t *testing.T) {
	dir := writeMicro(t, 1)
	p := filepath.Join(dir, weights.SafetensorsFile)
	edit(t, p, func(es []entry, d []byte) ([]entry, []byte) {
		n := int64(len(d))
		es = append(es,
			entry{"lm_head.weight", "BF16", []int{10, 8}, [2]int64{n, n + 160}},
			entry{"rotary_emb.inv_freq", "I64", []int{2}, [2]int64{n + 160, n + 176}})
		return es, append(d, make([]byte, 176)...)
	})
	m, err := weights.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Tensor("lm_head.weight") == nil {
		t.Error("extra float tensor dropped")
	}
	if m.Tensor("rotary_emb.inv_freq") != nil {
		t.Error("integer tensor kept")
	}
}

func TestOpenSingleAndShardedFromFixture(t *testing.T) {
	for _, shards := range []int{1, 2} {
		dir := writeMicro(t, shards)
		m, err := weights.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		names := m.Names()
		if len(names) != 11 || !slices.IsSorted(names) {
			t.Errorf("names %v", names)
		}
		e := m.Tensor("embed_tokens.weight")
		if e.DType != weights.BF16 || !slices.Equal(e.Shape, []int{10, 8}) || len(e.Data) != 160 || filepath.Dir(e.File) != dir {
			t.Errorf("embed_tokens %v %v %d %s", e.DType, e.Shape, len(e.Data), e.File)
		}
		row := make([]float32, 8)
		e.Row(3, row)
		for j, v := range row {
			want := weights.BF16ToFloat32(weights.Float32ToBF16(fixture.Value("embed_tokens.weight", e.Shape, uint64(3*8+j), 1)))
			if v != want {
				t.Fatalf("embed row 3 [%d] = %v, want %v", j, v, want)
			}
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal("second Close:", err)
		}
		if m.Tensor("norm.weight") != nil {
			t.Error("tensors still reachable after Close")
		}
	}
}

// The Hugging Face cache lays a snapshot out as symlinks into a blobs folder.
func TestOpenThroughSymlinks(t *testing.T) {
	blobs := writeMicro(t, 2)
	snap := t.TempDir()
	entries, err := os.ReadDir(blobs)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Symlink(filepath.Join(blobs, e.Name()), filepath.Join(snap, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	m, err := weights.Open(snap)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if len(m.Names()) != 11 {
		t.Errorf("%d tensors", len(m.Names()))
	}
}
