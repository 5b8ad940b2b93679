package weights

import (
	"encoding/binary"
	"strings"
	"testing"
)

func stFile(header string, data []byte) []byte {
	for len(header)%8 != 0 {
		header += " "
	}
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

func TestParseSafetensorsSmall(t *testing.T) {
	file := stFile(`{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`,
		[]byte{0x80, 0x3f, 0x00, 0x40, 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0})
	ts, err := parseSafetensors("x.safetensors", file)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].Name != "b" || ts[1].Name != "a" {
		t.Fatalf("tensors %+v", ts)
	}
	if got := ts[1].Float32s(); got[0] != 1 || got[1] != 2 {
		t.Errorf("a = %v", got)
	}
	if got := ts[0].Float32s(); got[0] != 1 || got[1] != -2 {
		t.Errorf("b = %v", got)
	}
	// A scalar holds one element.
	if _, err := parseSafetensors("s.safetensors", stFile(`{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, make([]byte, 4))); err != nil {
		t.Errorf("scalar: %v", err)
	}
	// Shapes whose element count overflows.
	_, err = parseSafetensors("o.safetensors", stFile(`{"o":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, nil))
	if err == nil || !strings.Contains(err.Error(), "overflows") {
		t.Errorf("overflow: %v", err)
	}
}

// FuzzParseSafetensors checks that no input makes the parser panic, and
// that whatever it accepts lies inside the file.
func FuzzParseSafetensors(f *testing.F) {
	f.Add(stFile(`{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Add(stFile(`{"__metadata__":{"format":"pt"},"a":{"dtype":"F16","shape":[1,2],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)))
	f.Add(stFile(`{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"a":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}}`, make([]byte, 8)))
	f.Add([]byte{255, 255, 255, 255, 255, 255, 255, 255, '{', '}'})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, '{', '}'})
	f.Fuzz(func(t *testing.T, file []byte) {
		ts, err := parseSafetensors("f.safetensors", file)
		if err != nil {
			return
		}
		for _, tn := range ts {
			if tn.DType != 0 && len(tn.Data) != tn.NumElements()*tn.DType.Size() {
				t.Fatalf("tensor %s: %d bytes for shape %v", tn.Name, len(tn.Data), tn.Shape)
			}
			if tn.DType != 0 {
				tn.Float32s()
			}
		}
	})
}
