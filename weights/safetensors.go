package weights

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sort"

	"github.com/nlpodyssey/safetensors"
	"golang.org/x/sys/unix"
)

// MaxHeaderSize caps the JSON header of a safetensors file, as the reference
// implementation does: a larger length field means a corrupt file, and
// trusting it would mean a huge allocation or read.
const MaxHeaderSize = 100_000_000

// mapFile memory-maps a whole file read-only. The mapping outlives the
// descriptor, which is closed before returning.
func mapFile(path string) ([]byte, error) {
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
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("%s: %d bytes is too short for a safetensors file (8-byte header length first)", path, size)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%s: %d bytes cannot be mapped on this platform", path, size)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return data, nil
}

// headerEntry is one tensor of a safetensors header as written.
type headerEntry struct {
	name    string
	dtype   string
	shape   []uint64
	offsets [2]uint64
	nbytes  uint64 // prod(shape) * dtype size, checked for overflow
}

// safetensorsDTypes are the element types a safetensors header may name and
// their sizes; only BF16, F16 and F32 are loadable.
var safetensorsDTypes = map[string]uint64{
	"BOOL": 1, "U8": 1, "I8": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// scanHeader reads the JSON header token by token. Decoding into a map (as
// the safetensors package does) would silently keep the last of two entries
// with the same name; this pass sees every entry and checks each one against
// the data section, so that every error can name the tensor.
func scanHeader(header []byte, dataLen uint64) ([]headerEntry, error) {
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("bad JSON header: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("bad JSON header: want an object, got %v", tok)
	}
	seen := map[string]bool{}
	var entries []headerEntry
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("bad JSON header: %w", err)
		}
		name, _ := tok.(string)
		if seen[name] {
			return nil, fmt.Errorf("duplicate tensor name %q in header", name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("bad JSON header at %q: %w", name, err)
		}
		if name == "__metadata__" {
			var md map[string]string
			if err := json.Unmarshal(raw, &md); err != nil {
				return nil, fmt.Errorf("bad __metadata__ (want an object of strings): %w", err)
			}
			continue
		}
		e, err := parseEntry(name, raw, dataLen)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("bad JSON header: %w", err)
	}
	// Only padding may follow the object.
	if rest, _ := io.ReadAll(dec.Buffered()); len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("bad JSON header: unexpected data after the object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("bad JSON header: unexpected data after the object")
	}

	// The data section must be tiled exactly by the tensors, in offset
	// order: no overlap (two tensors sharing bytes), no hole, nothing left over.
	sorted := make([]*headerEntry, len(entries))
	for i := range entries {
		sorted[i] = &entries[i]
	}
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i].offsets, sorted[j].offsets
		return a[0] < b[0] || (a[0] == b[0] && a[1] < b[1])
	})
	var end uint64
	for i, e := range sorted {
		switch {
		case e.offsets[0] < end:
			return nil, fmt.Errorf("tensor %q bytes [%d, %d) overlap tensor %q bytes [%d, %d)",
				e.name, e.offsets[0], e.offsets[1], sorted[i-1].name, sorted[i-1].offsets[0], sorted[i-1].offsets[1])
		case e.offsets[0] > end:
			return nil, fmt.Errorf("tensor %q starts at data byte %d, leaving a hole after byte %d", e.name, e.offsets[0], end)
		}
		end = e.offsets[1]
	}
	if end != dataLen {
		return nil, fmt.Errorf("%d bytes of data follow the last tensor (tensors end at data byte %d of %d)", dataLen-end, end, dataLen)
	}
	return entries, nil
}

func parseEntry(name string, raw json.RawMessage, dataLen uint64) (headerEntry, error) {
	var v struct {
		DType       *string  `json:"dtype"`
		Shape       []uint64 `json:"shape"`
		DataOffsets []uint64 `json:"data_offsets"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return headerEntry{}, fmt.Errorf("tensor %q: bad header entry: %w", name, err)
	}
	if v.DType == nil || v.Shape == nil || v.DataOffsets == nil {
		return headerEntry{}, fmt.Errorf("tensor %q: header entry needs dtype, shape and data_offsets", name)
	}
	size, ok := safetensorsDTypes[*v.DType]
	if !ok {
		return headerEntry{}, fmt.Errorf("tensor %q: unknown dtype %q", name, *v.DType)
	}
	if len(v.DataOffsets) != 2 {
		return headerEntry{}, fmt.Errorf("tensor %q: data_offsets has %d numbers, want 2", name, len(v.DataOffsets))
	}
	e := headerEntry{name: name, dtype: *v.DType, shape: v.Shape, offsets: [2]uint64{v.DataOffsets[0], v.DataOffsets[1]}}
	n := size
	for _, d := range v.Shape {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 {
			return headerEntry{}, fmt.Errorf("tensor %q: shape %v overflows", name, v.Shape)
		}
		n = lo
	}
	e.nbytes = n
	s, end := e.offsets[0], e.offsets[1]
	switch {
	case end < s:
		return headerEntry{}, fmt.Errorf("tensor %q: data_offsets [%d, %d) end before they start", name, s, end)
	case end > dataLen:
		return headerEntry{}, fmt.Errorf("tensor %q: data_offsets [%d, %d) run past the %d data bytes in the file (truncated?)", name, s, end, dataLen)
	case end-s != n:
		return headerEntry{}, fmt.Errorf("tensor %q: data_offsets [%d, %d) hold %d bytes, but %s %v needs %d", name, s, end, end-s, e.dtype, v.Shape, n)
	}
	return e, nil
}

// parseSafetensors checks a mapped safetensors file and returns its tensors,
// named as in the file, with Data aliasing data.
func parseSafetensors(path string, data []byte) ([]*Tensor, error) {
	fileLen := uint64(len(data))
	if fileLen < 8 {
		return nil, fmt.Errorf("%s: %d bytes is too short for a safetensors file", path, fileLen)
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("%s: header length %d exceeds the %d-byte limit (corrupt file?)", path, n, MaxHeaderSize)
	}
	if n > fileLen-8 {
		return nil, fmt.Errorf("%s: header length %d runs past the end of the %d-byte file (truncated?)", path, n, fileLen)
	}
	entries, err := scanHeader(data[8:8+n], fileLen-8-n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// The safetensors package is the reference reading; our scan above has
	// already rejected everything it would, with better messages, so an
	// error here means the two disagree.
	_, md, err := safetensors.ReadMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	infos := md.Tensors()
	if len(infos) != len(entries) {
		return nil, fmt.Errorf("%s: header has %d tensors, safetensors reads %d", path, len(entries), len(infos))
	}
	base := 8 + n
	out := make([]*Tensor, 0, len(entries))
	for _, e := range entries {
		info, ok := infos[e.name]
		if !ok || info.DataOffsets != e.offsets {
			return nil, errors.New(path + ": safetensors disagrees about tensor " + e.name)
		}
		t := &Tensor{Name: e.name, File: path, Shape: make([]int, len(e.shape)), storedName: e.name, headerDType: e.dtype}
		switch e.dtype {
		case "BF16":
			t.DType = BF16
		case "F16":
			t.DType = F16
		case "F32":
			t.DType = F32
		}
		for i, d := range e.shape {
			if d > uint64(maxInt) {
				return nil, fmt.Errorf("%s: tensor %q: dimension %d too large", path, e.name, d)
			}
			t.Shape[i] = int(d)
		}
		t.Data = data[base+e.offsets[0] : base+e.offsets[1] : base+e.offsets[1]]
		out = append(out, t)
	}
	return out, nil
}

const maxInt = int(^uint(0) >> 1)
