package server

import (
	"encoding/base64"
	"encoding/binary"
	"math"
)

// Embedding types (NIM 2.x embedding_type). The NIM documentation lists the
// names but not the arithmetic, so these are the common definitions
// (sentence-transformers' quantize_embeddings with the fixed range [-1, 1]
// of a unit vector's components, and numpy.packbits for the bit types):
//
//	float    float32 as is
//	int8     clamp(round(x * 127), -128, 127)
//	uint8    clamp(round((x + 1) * 127.5), 0, 255)
//	ubinary  one bit per dimension, 1 when x > 0, packed 8 per byte, most
//	         significant bit first, the last byte zero-padded: ceil(d/8) values 0..255
//	binary   the ubinary bytes minus 128, as int8: ceil(d/8) values -128..127
//
// With encoding_format base64 the same values go out as bytes: float32
// little-endian for float, one byte per value (two's complement for int8
// and binary) otherwise.
const (
	typeFloat   = "float"
	typeInt8    = "int8"
	typeUint8   = "uint8"
	typeBinary  = "binary"
	typeUbinary = "ubinary"
)

func validEmbeddingType(t string) bool {
	switch t {
	case typeFloat, typeInt8, typeUint8, typeBinary, typeUbinary:
		return true
	}
	return false
}

// quantize returns the values of v as embeddingType (not float) defines
// them, as ints for JSON.
func quantize(v []float32, embeddingType string) []int {
	switch embeddingType {
	case typeInt8:
		out := make([]int, len(v))
		for i, x := range v {
			out[i] = clampRound(float64(x)*127, -128, 127)
		}
		return out
	case typeUint8:
		out := make([]int, len(v))
		for i, x := range v {
			out[i] = clampRound((float64(x)+1)*127.5, 0, 255)
		}
		return out
	case typeUbinary, typeBinary:
		out := make([]int, (len(v)+7)/8)
		for i, x := range v {
			if x > 0 {
				out[i/8] |= 0x80 >> (i % 8)
			}
		}
		if embeddingType == typeBinary {
			for i := range out {
				out[i] -= 128
			}
		}
		return out
	}
	panic("quantize: not a quantized type: " + embeddingType)
}

func clampRound(x float64, lo, hi int) int {
	r := math.RoundToEven(x)
	if r < float64(lo) {
		return lo
	}
	if r > float64(hi) {
		return hi
	}
	return int(r)
}

// encodeBase64 packs an embedding as the base64 of its bytes.
func encodeBase64(v []float32, embeddingType string) string {
	if embeddingType == typeFloat {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	q := quantize(v, embeddingType)
	b := make([]byte, len(q))
	for i, x := range q {
		b[i] = byte(int8(x)) // int8 and binary: two's complement; 0..255 unchanged
		if x > 127 {
			b[i] = byte(x)
		}
	}
	return base64.StdEncoding.EncodeToString(b)
}

// truncateNormalise returns v's first dims components scaled to unit length
// (Matryoshka). The model's vector is already unit length over all of its
// components, so truncation needs a fresh normalisation.
func truncateNormalise(v []float32, dims int) []float32 {
	if dims >= len(v) {
		return v
	}
	out := make([]float32, dims)
	var ss float64
	for _, x := range v[:dims] {
		ss += float64(x) * float64(x)
	}
	n := math.Sqrt(ss)
	if n == 0 {
		copy(out, v[:dims])
		return out
	}
	for i, x := range v[:dims] {
		out[i] = float32(float64(x) / n)
	}
	return out
}
