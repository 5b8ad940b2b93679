package driver

import (
	"bytes"
	"fmt"
	"math"
	"runtime"
	"unsafe"
)

// Module is a loaded CUmodule; Function a kernel in it.
type (
	Module   uintptr
	Function uintptr
)

// The CUjit_option values LoadModule passes.
const (
	jitInfoLogBuffer           = 3
	jitInfoLogBufferSizeBytes  = 4
	jitErrorLogBuffer          = 5
	jitErrorLogBufferSizeBytes = 6
	jitLogVerbose              = 12
)

const jitLogSize = 32 << 10

// LoadModule JIT-compiles NUL-terminated PTX for the current context's
// device. On failure the error carries the JIT compiler's error log (which
// names the line and the instruction it rejected).
func LoadModule(ptx []byte) (Module, error) {
	a, err := get()
	if err != nil {
		return 0, err
	}
	if len(ptx) == 0 || ptx[len(ptx)-1] != 0 {
		return 0, fmt.Errorf("cuModuleLoadDataEx: PTX image must be NUL-terminated")
	}
	errLog := make([]byte, jitLogSize)
	infoLog := make([]byte, jitLogSize)
	opts := []int32{jitErrorLogBuffer, jitErrorLogBufferSizeBytes, jitInfoLogBuffer, jitInfoLogBufferSizeBytes}
	// Option values are void*: buffers by address, sizes in the pointer slot
	// itself. The driver writes the used sizes back into those slots.
	var pin runtime.Pinner
	pin.Pin(&errLog[0])
	pin.Pin(&infoLog[0])
	pin.Pin(&ptx[0])
	defer pin.Unpin()
	vals := []uintptr{
		uintptr(unsafe.Pointer(&errLog[0])), jitLogSize,
		uintptr(unsafe.Pointer(&infoLog[0])), jitLogSize,
	}
	var m Module
	r := a.cuModuleLoadDataEx(&m, unsafe.Pointer(&ptx[0]), uint32(len(opts)), &opts[0], &vals[0])
	runtime.KeepAlive(errLog)
	runtime.KeepAlive(infoLog)
	if r != Success {
		e := a.err("cuModuleLoadDataEx", r).(*Error)
		e.Log = jitLog(errLog, vals[1])
		return 0, e
	}
	return m, nil
}

// jitLog is the text the JIT wrote (n bytes reported, NUL-terminated).
func jitLog(buf []byte, n uintptr) string {
	if n > uintptr(len(buf)) {
		n = uintptr(len(buf))
	}
	b := buf[:n]
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(bytes.TrimSpace(b))
}

// Unload releases the module.
func (m Module) Unload() error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuModuleUnload", a.cuModuleUnload(m))
}

// Function looks a kernel up by its extern "C" name.
func (m Module) Function(name string) (Function, error) {
	a, err := get()
	if err != nil {
		return 0, err
	}
	var f Function
	if err := a.err("cuModuleGetFunction", a.cuModuleGetFunction(&f, m, name)); err != nil {
		return 0, fmt.Errorf("kernel %s: %w", name, err)
	}
	return f, nil
}

// FuncAttribute is a CUfunction_attribute.
type FuncAttribute int32

// The function attributes the backend reads or sets.
const (
	FuncMaxThreadsPerBlock        FuncAttribute = 0
	FuncSharedSizeBytes           FuncAttribute = 1
	FuncLocalSizeBytes            FuncAttribute = 3
	FuncNumRegs                   FuncAttribute = 4
	FuncMaxDynamicSharedSizeBytes FuncAttribute = 8
)

// Attribute reads a function attribute.
func (f Function) Attribute(attr FuncAttribute) (int, error) {
	a, err := get()
	if err != nil {
		return 0, err
	}
	var v int32
	if err := a.err("cuFuncGetAttribute", a.cuFuncGetAttribute(&v, int32(attr), f)); err != nil {
		return 0, err
	}
	return int(v), nil
}

// SetMaxDynamicShared allows launches with up to n bytes of dynamic shared
// memory; over 48 KB a kernel must opt in this way.
func (f Function) SetMaxDynamicShared(n int) error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuFuncSetAttribute", a.cuFuncSetAttribute(f, int32(FuncMaxDynamicSharedSizeBytes), int32(n)))
}

// Dim3 is a grid or block shape.
type Dim3 struct{ X, Y, Z uint32 }

// Params is a kernel's argument list as cuLaunchKernel takes it: an array of
// pointers, each to one argument stored at its own size (4 bytes for int32
// and float32, 8 for device pointers and 64-bit integers).
type Params struct {
	slots []uint64 // one 8-byte slot per argument; narrower values use its low bytes
	sizes []int    // the argument's size in bytes
}

// PackParams converts launch arguments. Accepted types: DevicePtr, int32,
// uint32, float32, int64, uint64. Plain int is refused: its C size would be
// a guess.
func PackParams(args ...any) (*Params, error) {
	p := &Params{slots: make([]uint64, len(args)), sizes: make([]int, len(args))}
	for i, arg := range args {
		switch v := arg.(type) {
		case DevicePtr:
			p.slots[i], p.sizes[i] = uint64(v), 8
		case int32:
			p.slots[i], p.sizes[i] = uint64(uint32(v)), 4
		case uint32:
			p.slots[i], p.sizes[i] = uint64(v), 4
		case float32:
			p.slots[i], p.sizes[i] = uint64(math.Float32bits(v)), 4
		case int64:
			p.slots[i], p.sizes[i] = uint64(v), 8
		case uint64:
			p.slots[i], p.sizes[i] = v, 8
		default:
			return nil, fmt.Errorf("kernel argument %d: unsupported type %T (use DevicePtr, int32, uint32, float32, int64 or uint64)", i, arg)
		}
	}
	return p, nil
}

// Bytes is argument i as the kernel sees it (little-endian, its own size).
func (p *Params) Bytes(i int) []byte {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&p.slots[i])), 8)
	return append([]byte(nil), b[:p.sizes[i]]...)
}

// Len is the number of arguments.
func (p *Params) Len() int { return len(p.slots) }

// Launch queues f on s with the given geometry, dynamic shared memory and
// arguments. Launch errors (bad geometry, too much shared memory) return
// here; faults inside the kernel surface at the next synchronisation.
func (f Function) Launch(grid, block Dim3, sharedMem uint32, s Stream, args ...any) error {
	p, err := PackParams(args...)
	if err != nil {
		return err
	}
	return f.LaunchParams(grid, block, sharedMem, s, p)
}

// LaunchParams is Launch with packed arguments.
func (f Function) LaunchParams(grid, block Dim3, sharedMem uint32, s Stream, p *Params) error {
	a, err := get()
	if err != nil {
		return err
	}
	if grid.X == 0 || grid.Y == 0 || grid.Z == 0 || block.X == 0 || block.Y == 0 || block.Z == 0 {
		return fmt.Errorf("cuLaunchKernel: empty geometry grid %v block %v", grid, block)
	}
	// The pointer array lives in Go memory and points into p.slots: pin the
	// slots so the addresses stay valid for the call (the driver copies the
	// argument values before cuLaunchKernel returns).
	var pin runtime.Pinner
	var ptrs []uintptr
	if len(p.slots) > 0 {
		pin.Pin(&p.slots[0])
		ptrs = make([]uintptr, len(p.slots))
		for i := range p.slots {
			ptrs[i] = uintptr(unsafe.Pointer(&p.slots[i]))
		}
	}
	defer pin.Unpin()
	var pp *uintptr
	if len(ptrs) > 0 {
		pp = &ptrs[0]
	}
	r := a.cuLaunchKernel(f, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, sharedMem, s, pp, nil)
	runtime.KeepAlive(p)
	return a.err("cuLaunchKernel", r)
}
