package driver

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
)

// needGPU skips when this machine has no driver or device: the tests below
// then run wherever a GPU is lent (go test -c, copy, run).
func needGPU(t *testing.T) *Context {
	t.Helper()
	n, err := DeviceCount()
	if err != nil || n == 0 {
		t.Skipf("no CUDA driver/device: %v (n=%d)", err, n)
	}
	d, err := GetDevice(0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := d.RetainPrimaryContext()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctx.Release() })
	return ctx
}

func TestNoDriverIsACleanError(t *testing.T) {
	err := Init()
	if err == nil {
		t.Skip("a CUDA driver is present on this machine")
	}
	if !errors.Is(err, ErrNoDriver) && !errors.Is(err, ErrNoDevice) {
		t.Fatalf("Init without a driver: %v, want ErrNoDriver or ErrNoDevice", err)
	}
	// Every call reports the same error rather than crashing.
	if _, err := DeviceCount(); err == nil {
		t.Error("DeviceCount succeeded without a driver")
	}
	if _, err := MemAlloc(16); err == nil {
		t.Error("MemAlloc succeeded without a driver")
	}
	if err := Function(0).Launch(Dim3{1, 1, 1}, Dim3{1, 1, 1}, 0, 0); err == nil {
		t.Error("Launch succeeded without a driver")
	}
}

func TestLoadMissingLibrary(t *testing.T) {
	_, err := load("libcuda-does-not-exist.so.9")
	if !errors.Is(err, ErrNoDriver) || !strings.Contains(err.Error(), "libcuda-does-not-exist.so.9") {
		t.Fatalf("load of a missing library: %v", err)
	}
}

func TestPackParams(t *testing.T) {
	p, err := PackParams(DevicePtr(0x1122334455667788), int32(-2), uint32(7), float32(1.5), int64(-1), uint64(9))
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{
		{0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11},
		{0xfe, 0xff, 0xff, 0xff},
		{7, 0, 0, 0},
		binary.LittleEndian.AppendUint32(nil, math.Float32bits(1.5)),
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{9, 0, 0, 0, 0, 0, 0, 0},
	}
	if p.Len() != len(want) {
		t.Fatalf("Len = %d", p.Len())
	}
	for i, w := range want {
		if got := p.Bytes(i); string(got) != string(w) {
			t.Errorf("arg %d = % x, want % x", i, got, w)
		}
	}
	for _, bad := range []any{int(1), 1.0, "x", uintptr(1)} {
		if _, err := PackParams(DevicePtr(1), bad); err == nil || !strings.Contains(err.Error(), "argument 1") {
			t.Errorf("PackParams(%T) = %v, want an error naming argument 1", bad, err)
		}
	}
}

func TestErrorText(t *testing.T) {
	e := &Error{Op: "cuMemAlloc_v2", Code: ErrorOutOfMemory, Name: "CUDA_ERROR_OUT_OF_MEMORY", Text: "out of memory"}
	if got := e.Error(); got != "cuMemAlloc_v2: out of memory (CUDA_ERROR_OUT_OF_MEMORY, code 2)" {
		t.Errorf("Error() = %q", got)
	}
	if !IsOutOfMemory(errors.Join(errors.New("upload"), e)) {
		t.Error("IsOutOfMemory missed a wrapped OOM")
	}
	if !errors.Is(&Error{Code: ErrorNoDevice}, ErrNoDevice) || errors.Is(e, ErrNoDevice) {
		t.Error("Error.Is(ErrNoDevice) wrong")
	}
	if got := jitLog([]byte("ptxas fatal: bad\x00junk"), 100); got != "ptxas fatal: bad" {
		t.Errorf("jitLog = %q", got)
	}
}

// addOnePTX adds 1 to n int32s: a minimal module for the GPU tests.
const addOnePTX = `
.version 7.0
.target sm_80
.address_size 64
.visible .entry add_one(.param .u64 p, .param .u32 n)
{
	.reg .pred %p;
	.reg .b32 %r<6>;
	.reg .b64 %rd<4>;
	ld.param.u64 %rd1, [p];
	ld.param.u32 %r1, [n];
	mov.u32 %r2, %ctaid.x;
	mov.u32 %r3, %ntid.x;
	mov.u32 %r4, %tid.x;
	mad.lo.s32 %r2, %r2, %r3, %r4;
	setp.ge.u32 %p, %r2, %r1;
	@%p bra DONE;
	cvta.to.global.u64 %rd1, %rd1;
	mul.wide.u32 %rd2, %r2, 4;
	add.s64 %rd3, %rd1, %rd2;
	ld.global.u32 %r5, [%rd3];
	add.s32 %r5, %r5, 1;
	st.global.u32 [%rd3], %r5;
DONE:
	ret;
}
`

func TestGPUDeviceQuery(t *testing.T) {
	needGPU(t)
	testDeviceQuery(t)
}

func testDeviceQuery(t *testing.T) {
	inf, err := DeviceInfo(0)
	if err != nil {
		t.Fatal(err)
	}
	if inf.Name == "" || inf.TotalMem == 0 || inf.Major < 3 || inf.SMs == 0 {
		t.Errorf("implausible device info %+v", inf)
	}
	free, total, err := MemGetInfo()
	if err != nil || free == 0 || free > total {
		t.Errorf("MemGetInfo = %d, %d, %v", free, total, err)
	}
	t.Logf("%+v, free %d of %d", inf, free, total)
}

func TestGPULaunchCopyGraph(t *testing.T) {
	needGPU(t)
	testLaunchCopyGraph(t)
}

func testLaunchCopyGraph(t *testing.T) {
	const n = 1000
	mod, err := LoadModule(append([]byte(addOnePTX), 0))
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Unload()
	fn, err := mod.Function("add_one")
	if err != nil {
		t.Fatal(err)
	}
	if regs, err := fn.Attribute(FuncNumRegs); err != nil || regs <= 0 {
		t.Errorf("NumRegs = %d, %v", regs, err)
	}
	dev, err := MemAlloc(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	defer MemFree(dev)
	host, err := MemAllocHost(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	defer MemFreeHost(host)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(host[4*i:], uint32(i*3))
	}
	s, err := StreamCreate()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	if err := CopyHtoDAsync(dev, host, s); err != nil {
		t.Fatal(err)
	}
	grid, block := Dim3{(n + 255) / 256, 1, 1}, Dim3{256, 1, 1}
	if err := fn.Launch(grid, block, 0, s, dev, uint32(n)); err != nil {
		t.Fatal(err)
	}
	// Two more launches through a captured graph, replayed twice: +5 in all.
	if err := s.BeginCapture(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := fn.Launch(grid, block, 0, s, dev, uint32(n)); err != nil {
			t.Fatal(err)
		}
	}
	g, err := s.EndCapture()
	if err != nil {
		t.Fatal(err)
	}
	defer g.Destroy()
	ex, err := g.Instantiate()
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Destroy()
	start, _ := EventCreate()
	end, _ := EventCreate()
	defer start.Destroy()
	defer end.Destroy()
	if err := start.Record(s); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := ex.Launch(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := end.Record(s); err != nil {
		t.Fatal(err)
	}
	if err := CopyDtoHAsync(host, dev, s); err != nil {
		t.Fatal(err)
	}
	if err := s.Synchronize(); err != nil {
		t.Fatal(err)
	}
	if ms, err := ElapsedMs(start, end); err != nil || ms < 0 {
		t.Errorf("ElapsedMs = %v, %v", ms, err)
	}
	for i := 0; i < n; i++ {
		if got := binary.LittleEndian.Uint32(host[4*i:]); got != uint32(i*3+5) {
			t.Fatalf("element %d = %d, want %d", i, got, i*3+5)
		}
	}
}

func TestGPUModuleLoadErrorCarriesLog(t *testing.T) {
	needGPU(t)
	testModuleLoadErrorCarriesLog(t)
}

func testModuleLoadErrorCarriesLog(t *testing.T) {
	bad := strings.Replace(addOnePTX, "add.s32 %r5, %r5, 1;", "add.s32 %r5, %r9, 1;", 1)
	_, err := LoadModule(append([]byte(bad), 0))
	var e *Error
	if !errors.As(err, &e) || e.Log == "" {
		t.Fatalf("bad PTX: %v, want a driver error with the JIT log", err)
	}
	t.Logf("JIT log: %s", e.Log)
}

func TestGPUOutOfMemoryIsAnError(t *testing.T) {
	needGPU(t)
	testOutOfMemoryIsAnError(t)
}

func testOutOfMemoryIsAnError(t *testing.T) {
	_, total, err := MemGetInfo()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MemAlloc(total * 4); !IsOutOfMemory(err) {
		t.Fatalf("allocating 4x device memory: %v, want out of memory", err)
	}
}
