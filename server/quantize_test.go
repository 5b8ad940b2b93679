package server

import (
	"encoding/base64"
	"slices"
	"testing"
)

func TestQuantizeEdges(t *testing.T) {
	v := []float32{1, -1, 0, 0.5, -0.5, 1e-9, -1e-9, 0.999, -0.999, 0.3}
	cases := []struct {
		typ  string
		want []int
	}{
		{"int8", []int{127, -127, 0, 64, -64, 0, 0, 127, -127, 38}},   // round half to even: 63.5 -> 64
		{"uint8", []int{255, 0, 128, 191, 64, 128, 127, 255, 0, 166}}, // (x+1)*127.5: 127.5 -> 128, 191.25 -> 191, 127.4999 -> 127
		{"ubinary", []int{0b10_0101_01, 0b01_000000}},                 // x > 0 -> 1, MSB first, zero padded
		{"binary", []int{0b10_0101_01 - 128, 0b01_000000 - 128}},
	}
	for _, c := range cases {
		got := quantize(v, c.typ)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.typ, got, c.want)
		}
		b, err := base64.StdEncoding.DecodeString(encodeBase64(v, c.typ))
		if err != nil || len(b) != len(c.want) {
			t.Fatalf("%s base64: %v, %d bytes", c.typ, err, len(b))
		}
		for i, x := range c.want {
			if byte(x) != b[i] {
				t.Errorf("%s base64 byte %d = %d, want %d", c.typ, i, b[i], byte(x))
			}
		}
	}
	if got := truncateNormalise([]float32{3, 4, 12}, 2); got[0] != 0.6 || got[1] != 0.8 {
		t.Errorf("truncateNormalise = %v", got)
	}
}
