// Package driver binds the parts of the CUDA driver API (libcuda.so.1) that
// the GPU backend needs, loaded at run time with dlopen (purego): no CUDA
// headers or libraries at build time, no cgo, and a binary that runs on a
// machine without a GPU, where every call returns ErrNoDriver.
//
// The calls are thin: they map one to one onto cu* functions (the _v2 entry
// points where the header renames them) and turn a failing CUresult into an
// *Error carrying cuGetErrorName and cuGetErrorString's text. A CUDA context
// is current per OS thread: callers lock their goroutine to a thread
// (runtime.LockOSThread) and make the context current before a series of
// calls.
package driver

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// LibraryName is the driver library loaded on first use.
const LibraryName = "libcuda.so.1"

// ErrNoDriver means the CUDA driver library could not be loaded or
// initialised: no NVIDIA driver on this machine.
var ErrNoDriver = errors.New("no CUDA driver")

// ErrNoDevice means the driver loaded but reports no CUDA device.
var ErrNoDevice = errors.New("no CUDA device")

// Result is a CUresult.
type Result int32

// The CUresult codes the callers test for.
const (
	Success          Result = 0
	ErrorOutOfMemory Result = 2
	ErrorNoDevice    Result = 100
	ErrorInvalidPTX  Result = 218
)

// Error is a failed driver call.
type Error struct {
	Op   string // the cu* function
	Code Result
	Name string // cuGetErrorName, e.g. CUDA_ERROR_OUT_OF_MEMORY
	Text string // cuGetErrorString, e.g. "out of memory"
	Log  string // the JIT error log, for module loads
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s: %s (%s, code %d)", e.Op, e.Text, e.Name, e.Code)
	if e.Log != "" {
		s += "\n" + e.Log
	}
	return s
}

// Is makes errors.Is(err, ErrNoDevice) hold for CUDA_ERROR_NO_DEVICE.
func (e *Error) Is(target error) bool {
	return target == ErrNoDevice && e.Code == ErrorNoDevice
}

// IsOutOfMemory reports whether err is a driver out-of-memory error.
func IsOutOfMemory(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == ErrorOutOfMemory
}

// api holds the bound functions. Every CUresult is an int32.
type api struct {
	cuInit                      func(flags uint32) Result
	cuDriverGetVersion          func(v *int32) Result
	cuGetErrorString            func(r Result, s **byte) Result
	cuGetErrorName              func(r Result, s **byte) Result
	cuDeviceGetCount            func(n *int32) Result
	cuDeviceGet                 func(d *int32, ordinal int32) Result
	cuDeviceGetName             func(name *byte, n int32, d int32) Result
	cuDeviceTotalMem_v2         func(bytes *uint64, d int32) Result
	cuDeviceGetAttribute        func(v *int32, attr int32, d int32) Result
	cuDevicePrimaryCtxRetain    func(ctx *uintptr, d int32) Result
	cuDevicePrimaryCtxRelease   func(d int32) Result
	cuCtxSetCurrent             func(ctx uintptr) Result
	cuCtxSynchronize            func() Result
	cuMemGetInfo                func(free, total *uint64) Result
	cuMemAlloc                  func(p *DevicePtr, n uint64) Result
	cuMemFree                   func(p DevicePtr) Result
	cuMemAllocHost              func(p *unsafe.Pointer, n uint64) Result
	cuMemFreeHost               func(p unsafe.Pointer) Result
	cuMemcpyHtoD                func(dst DevicePtr, src unsafe.Pointer, n uint64) Result
	cuMemcpyDtoH                func(dst unsafe.Pointer, src DevicePtr, n uint64) Result
	cuMemcpyHtoDAsync           func(dst DevicePtr, src unsafe.Pointer, n uint64, s Stream) Result
	cuMemcpyDtoHAsync           func(dst unsafe.Pointer, src DevicePtr, n uint64, s Stream) Result
	cuMemsetD16                 func(p DevicePtr, v uint16, n uint64) Result
	cuMemsetD32                 func(p DevicePtr, v uint32, n uint64) Result
	cuStreamCreate              func(s *Stream, flags uint32) Result
	cuStreamDestroy             func(s Stream) Result
	cuStreamSynchronize         func(s Stream) Result
	cuEventCreate               func(e *Event, flags uint32) Result
	cuEventRecord               func(e Event, s Stream) Result
	cuEventSynchronize          func(e Event) Result
	cuEventElapsedTime          func(ms *float32, start, end Event) Result
	cuEventDestroy              func(e Event) Result
	cuModuleLoadDataEx          func(m *Module, image unsafe.Pointer, nopts uint32, opts *int32, vals *uintptr) Result
	cuModuleUnload              func(m Module) Result
	cuModuleGetFunction         func(f *Function, m Module, name string) Result
	cuFuncSetAttribute          func(f Function, attr int32, v int32) Result
	cuFuncGetAttribute          func(v *int32, attr int32, f Function) Result
	cuLaunchKernel              func(f Function, gx, gy, gz, bx, by, bz, smem uint32, s Stream, params *uintptr, extra *uintptr) Result
	cuStreamBeginCapture        func(s Stream, mode int32) Result
	cuStreamEndCapture          func(s Stream, g *Graph) Result
	cuGraphInstantiateWithFlags func(e *GraphExec, g Graph, flags uint64) Result
	cuGraphLaunch               func(e GraphExec, s Stream) Result
	cuGraphExecDestroy          func(e GraphExec) Result
	cuGraphDestroy              func(g Graph) Result
}

// symbols maps each field to its exported name in libcuda.
func (a *api) symbols() []struct {
	fn   any
	name string
} {
	return []struct {
		fn   any
		name string
	}{
		{&a.cuInit, "cuInit"},
		{&a.cuDriverGetVersion, "cuDriverGetVersion"},
		{&a.cuGetErrorString, "cuGetErrorString"},
		{&a.cuGetErrorName, "cuGetErrorName"},
		{&a.cuDeviceGetCount, "cuDeviceGetCount"},
		{&a.cuDeviceGet, "cuDeviceGet"},
		{&a.cuDeviceGetName, "cuDeviceGetName"},
		{&a.cuDeviceTotalMem_v2, "cuDeviceTotalMem_v2"},
		{&a.cuDeviceGetAttribute, "cuDeviceGetAttribute"},
		{&a.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"},
		{&a.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"},
		{&a.cuCtxSetCurrent, "cuCtxSetCurrent"},
		{&a.cuCtxSynchronize, "cuCtxSynchronize"},
		{&a.cuMemGetInfo, "cuMemGetInfo_v2"},
		{&a.cuMemAlloc, "cuMemAlloc_v2"},
		{&a.cuMemFree, "cuMemFree_v2"},
		{&a.cuMemAllocHost, "cuMemAllocHost_v2"},
		{&a.cuMemFreeHost, "cuMemFreeHost"},
		{&a.cuMemcpyHtoD, "cuMemcpyHtoD_v2"},
		{&a.cuMemcpyDtoH, "cuMemcpyDtoH_v2"},
		{&a.cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"},
		{&a.cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"},
		{&a.cuMemsetD16, "cuMemsetD16_v2"},
		{&a.cuMemsetD32, "cuMemsetD32_v2"},
		{&a.cuStreamCreate, "cuStreamCreate"},
		{&a.cuStreamDestroy, "cuStreamDestroy_v2"},
		{&a.cuStreamSynchronize, "cuStreamSynchronize"},
		{&a.cuEventCreate, "cuEventCreate"},
		{&a.cuEventRecord, "cuEventRecord"},
		{&a.cuEventSynchronize, "cuEventSynchronize"},
		{&a.cuEventElapsedTime, "cuEventElapsedTime"},
		{&a.cuEventDestroy, "cuEventDestroy_v2"},
		{&a.cuModuleLoadDataEx, "cuModuleLoadDataEx"},
		{&a.cuModuleUnload, "cuModuleUnload"},
		{&a.cuModuleGetFunction, "cuModuleGetFunction"},
		{&a.cuFuncSetAttribute, "cuFuncSetAttribute"},
		{&a.cuFuncGetAttribute, "cuFuncGetAttribute"},
		{&a.cuLaunchKernel, "cuLaunchKernel"},
		{&a.cuStreamBeginCapture, "cuStreamBeginCapture_v2"},
		{&a.cuStreamEndCapture, "cuStreamEndCapture"},
		{&a.cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags"},
		{&a.cuGraphLaunch, "cuGraphLaunch"},
		{&a.cuGraphExecDestroy, "cuGraphExecDestroy"},
		{&a.cuGraphDestroy, "cuGraphDestroy"},
	}
}

var (
	lib     *api
	loadErr error
	once    sync.Once
)

// Init loads libcuda.so.1 and calls cuInit once per process. It returns
// ErrNoDriver (wrapped) when the library is missing or lacks an entry point,
// and an error matching ErrNoDevice when the driver finds no GPU.
func Init() error {
	once.Do(func() { lib, loadErr = load(LibraryName) })
	return loadErr
}

func load(name string) (*api, error) {
	// dlerror's message is per thread: keep dlopen and dlerror on one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		msg := err.Error()
		if msg == "" {
			msg = "library not found"
		}
		return nil, fmt.Errorf("%w: dlopen %s: %s", ErrNoDriver, name, msg)
	}
	a := &api{}
	for _, s := range a.symbols() {
		p, err := purego.Dlsym(h, s.name)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("%w: %s has no %s (driver too old?): %v", ErrNoDriver, name, s.name, err)
		}
		purego.RegisterFunc(s.fn, p)
	}
	if r := a.cuInit(0); r != Success {
		e := a.err("cuInit", r)
		if r == ErrorNoDevice {
			return nil, e
		}
		return nil, fmt.Errorf("%w: %w", ErrNoDriver, e)
	}
	return a, nil
}

func (a *api) err(op string, r Result) error {
	if r == Success {
		return nil
	}
	e := &Error{Op: op, Code: r, Name: "CUDA_ERROR_UNKNOWN", Text: "unrecognized error code"}
	var p *byte
	if a.cuGetErrorName(r, &p) == Success && p != nil {
		e.Name = cString(p)
	}
	p = nil
	if a.cuGetErrorString(r, &p) == Success && p != nil {
		e.Text = cString(p)
	}
	return e
}

// cString copies a NUL-terminated C string.
func cString(p *byte) string {
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// get returns the bound API or the load error.
func get() (*api, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	return lib, nil
}

// Version is the driver's CUDA version, e.g. 12040 for 12.4.
func Version() (int, error) {
	a, err := get()
	if err != nil {
		return 0, err
	}
	var v int32
	if err := a.err("cuDriverGetVersion", a.cuDriverGetVersion(&v)); err != nil {
		return 0, err
	}
	return int(v), nil
}

// Synchronize waits for all work in the current context.
func Synchronize() error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuCtxSynchronize", a.cuCtxSynchronize())
}

// UseLibraryForTests binds the package to another driver library (a fake
// libcuda built by a test) until restore is called. Not for production use:
// the binary always loads LibraryName.
func UseLibraryForTests(path string) (restore func(), err error) {
	a, err := load(path)
	if err != nil {
		return nil, err
	}
	Init() // settle the real load, then swap its result
	oldLib, oldErr := lib, loadErr
	lib, loadErr = a, nil
	return func() { lib, loadErr = oldLib, oldErr }, nil
}
