package weights

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"unsafe"
)

// ParseDType reads a dtype name as safetensors ("BF16"), torch ("bfloat16")
// or a command line ("bf16") spells it.
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(s) {
	case "bf16", "bfloat16":
		return BF16, nil
	case "f16", "fp16", "float16", "half":
		return F16, nil
	case "f32", "fp32", "float32", "float":
		return F32, nil
	}
	return 0, fmt.Errorf("unknown dtype %q (want bf16, f16 or f32)", s)
}

// TorchName is the torch_dtype name a config.json uses for d.
func (d DType) TorchName() string {
	switch d {
	case BF16:
		return "bfloat16"
	case F16:
		return "float16"
	case F32:
		return "float32"
	}
	return "unknown"
}

// BF16ToFloat32 widens a bfloat16 (exact).
func BF16ToFloat32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// Float32ToBF16 rounds f to the nearest bfloat16, ties to even; NaN stays a
// (quiet) NaN and overflow becomes infinity.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x0040
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// F16ToFloat32 widens an IEEE half-precision float (exact).
func F16ToFloat32(h uint16) float32 { return f16Table()[h] }

func f16ToFloat32Slow(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0:
		// Zero or subnormal: mant * 2^-24, exact in float32.
		f := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(math.Float32bits(f) | sign)
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// f16Table maps every half to its float32: one lookup beats the branches on
// the decode hot path.
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = f16ToFloat32Slow(uint16(i))
	}
	return &t
})

// Float32ToF16 rounds f to the nearest IEEE half, ties to even, with
// subnormal results, overflow to infinity and NaN kept a (quiet) NaN.
func Float32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 31 {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign // below half of the smallest subnormal
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		half := m >> shift
		rem := m & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++ // may carry into the smallest normal, which is right
		}
		return sign | uint16(half)
	}
	half := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++ // may carry into the exponent, up to infinity, which is right
	}
	return sign | uint16(half)
}

// ToFloat32 decodes len(dst) little-endian elements of type dt from src.
// It panics if src holds fewer than len(dst) elements (a caller bug, like an
// out-of-range slice).
func ToFloat32(dst []float32, src []byte, dt DType) {
	n := len(dst)
	if n == 0 {
		return
	}
	switch dt {
	case BF16:
		src = src[:2*n]
		if s, ok := asUint16s(src); ok {
			dst := dst[:len(s)] // lets the compiler drop the bounds check
			for i, v := range s {
				dst[i] = math.Float32frombits(uint32(v) << 16)
			}
			return
		}
		for i := range dst {
			dst[i] = math.Float32frombits((uint32(src[2*i]) | uint32(src[2*i+1])<<8) << 16)
		}
	case F16:
		src = src[:2*n]
		t := f16Table()
		if s, ok := asUint16s(src); ok {
			dst := dst[:len(s)]
			for i, v := range s {
				dst[i] = t[v]
			}
			return
		}
		for i := range dst {
			dst[i] = t[uint16(src[2*i])|uint16(src[2*i+1])<<8]
		}
	case F32:
		src = src[:4*n]
		if littleEndian && uintptr(unsafe.Pointer(&src[0]))%4 == 0 {
			copy(dst, unsafe.Slice((*float32)(unsafe.Pointer(&src[0])), n))
			return
		}
		for i := range dst {
			s := src[4*i : 4*i+4]
			dst[i] = math.Float32frombits(uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24)
		}
	default:
		panic(fmt.Sprintf("weights.ToFloat32: unsupported dtype %v", dt))
	}
}

// littleEndian reports whether the host stores integers as the files do,
// which lets aligned data be read in place rather than byte by byte.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// asUint16s views b as little-endian uint16s when the host and alignment
// allow it (mapped safetensors data is 8-byte aligned when the header is
// padded, as Hugging Face pads it).
func asUint16s(b []byte) ([]uint16, bool) {
	if !littleEndian || len(b) < 2 || uintptr(unsafe.Pointer(&b[0]))%2 != 0 {
		return nil, false
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), len(b)/2), true
}

// FromFloat32 encodes src into dst as little-endian elements of type dt,
// rounding to nearest even. It panics if dst is shorter than
// len(src)*dt.Size() bytes.
func FromFloat32(dst []byte, src []float32, dt DType) {
	n := len(src)
	switch dt {
	case BF16:
		dst = dst[:2*n]
		if d, ok := asUint16s(dst); ok {
			d = d[:len(src)]
			for i, f := range src {
				d[i] = Float32ToBF16(f)
			}
			return
		}
		for i, f := range src {
			v := Float32ToBF16(f)
			dst[2*i] = byte(v)
			dst[2*i+1] = byte(v >> 8)
		}
	case F16:
		dst = dst[:2*n]
		if d, ok := asUint16s(dst); ok {
			d = d[:len(src)]
			for i, f := range src {
				d[i] = Float32ToF16(f)
			}
			return
		}
		for i, f := range src {
			v := Float32ToF16(f)
			dst[2*i] = byte(v)
			dst[2*i+1] = byte(v >> 8)
		}
	case F32:
		dst = dst[:4*n]
		for i, f := range src {
			v := math.Float32bits(f)
			d := dst[4*i : 4*i+4]
			d[0], d[1], d[2], d[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		}
	default:
		panic(fmt.Sprintf("weights.FromFloat32: unsupported dtype %v", dt))
	}
}

// NumElements is the product of the shape (1 for a scalar).
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Row decodes row i of a 2-D tensor into dst[:cols] (for example the
// embedding of token i). It panics if i is out of range or dst is short.
func (t *Tensor) Row(i int, dst []float32) {
	if len(t.Shape) != 2 {
		panic(fmt.Sprintf("weights: Row on %d-D tensor %s", len(t.Shape), t.Name))
	}
	rows, cols := t.Shape[0], t.Shape[1]
	if i < 0 || i >= rows {
		panic(fmt.Sprintf("weights: row %d out of range [0, %d) of %s", i, rows, t.Name))
	}
	rb := cols * t.DType.Size()
	ToFloat32(dst[:cols], t.Data[i*rb:(i+1)*rb], t.DType)
}

// Float32s decodes the whole tensor into a new slice (a copy: Data is
// read-only mapped memory).
func (t *Tensor) Float32s() []float32 {
	out := make([]float32, t.NumElements())
	ToFloat32(out, t.Data, t.DType)
	return out
}
