package cuda

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"llamaembed/model"
	"llamaembed/model/cuda/driver"
)

// The emulator library, built once per test process (TestMain removes it).
var (
	emuOnce        sync.Once
	emuDir, emuLib string
	emuErr         error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if emuDir != "" {
		os.RemoveAll(emuDir)
	}
	os.Exit(code)
}

// emulated is set while the GPU tests run on the CPU emulator, which is
// thousands of times slower than a GPU: they then use smaller shapes.
var emulated bool

// withEmulator binds the driver to a fake libcuda that runs the kernels on
// the CPU (kernels/emu: each CUDA thread a fiber, the warp collectives
// implemented from the PTX ISA). The fake reports compute capability 8.0,
// so the sm_80 kernels run; the wgmma kernel is not emulated.
func withEmulator(t *testing.T) {
	t.Helper()
	cc, err1 := exec.LookPath("cc")
	cxx, err2 := exec.LookPath("c++")
	if err1 != nil || err2 != nil {
		t.Skip("no C and C++ compilers to build the kernel emulator")
	}
	emuOnce.Do(func() {
		dir, err := os.MkdirTemp("", "llamaembed-emu-")
		if err != nil {
			emuErr = err
			return
		}
		emuDir = dir
		obj, so := filepath.Join(dir, "fake.o"), filepath.Join(dir, "libcuda.so.1")
		for _, args := range [][]string{
			{cc, "-c", "-fPIC", "-O1", "-o", obj, "driver/testdata/fakecuda.c"},
			{cxx, "-std=c++17", "-O1", "-fPIC", "-shared", "-Wl,-Bsymbolic", "-fno-strict-aliasing", "-DLLAMAEMBED_EMU", "-I../../kernels",
				"-o", so, "../../kernels/emu/emu.cpp", obj},
		} {
			if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
				emuErr = fmt.Errorf("build emulator: %v\n%s", err, out)
				return
			}
		}
		emuLib = so
	})
	if emuErr != nil {
		t.Fatal(emuErr)
	}
	restore, err := driver.UseLibraryForTests(emuLib)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FAKECUDA_CC_MAJOR", "8")
	emulated = true
	t.Cleanup(func() { restore(); emulated = false })
}

// TestKernelsOnEmulator runs the GPU tests' kernel checks on the emulator:
// each kernel against its CPU reference on fresh random inputs with
// NaN-poisoned outputs, then whole forward passes against the CPU backend
// and the tiny-llama-a reference.
func TestKernelsOnEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: the kernels run on a CPU emulator")
	}
	withEmulator(t)
	type check struct {
		name string
		fn   func(*testing.T)
	}
	checks := []check{
		{"Gemm", TestGPUGemm},
		{"GemmSwiGLU", TestGPUGemmSwiGLU},
		{"Attention", TestGPUAttention},
		{"AddNorm", TestGPUAddNorm},
		{"Rope", TestGPURope},
		{"SwiGLU", TestGPUSwiGLU},
		{"EmbedAndPool", TestGPUEmbedAndPool},
	}
	// Whole forward passes take from 10 s to minutes on the emulator: on
	// request only (TestWgmmaOnEmulator runs the tiny one by default).
	if os.Getenv("LLAMAEMBED_EMU_FULL") != "" {
		checks = append(checks,
			check{"ForwardMatchesFixtureReference", TestGPUForwardMatchesFixtureReference},
			check{"ForwardMatchesCPUBackend", TestGPUForwardMatchesCPUBackend})
	} else {
		t.Log("forward passes on sm_80 skipped: set LLAMAEMBED_EMU_FULL=1 to run them (minutes)")
	}
	for _, c := range checks {
		start := time.Now()
		t.Run(c.name, c.fn)
		t.Logf("%s: %.1fs", c.name, time.Since(start).Seconds())
	}
}

// TestWgmmaOnEmulator runs the sm_90a GEMM on the emulator (the fake now
// reports compute capability 9.0): the GEMM checks for both variants and
// the startup check that decides whether the backend uses wgmma. The
// emulated wgmma reads its operands through the descriptors as the PTX ISA
// defines them, so this checks the kernel's tiling, staging and epilogue
// against that reading of the spec, not against the hardware.
func TestWgmmaOnEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: the kernels run on a CPU emulator")
	}
	withEmulator(t)
	t.Setenv("FAKECUDA_CC_MAJOR", "9")
	t.Run("Gemm", TestGPUGemm)
	t.Run("GemmSwiGLU", TestGPUGemmSwiGLU)
	t.Run("WgmmaCheck", TestGPUWgmmaCheck)
	// The whole encoder with the backend's GEMMs on wgmma.
	t.Run("ForwardMatchesFixtureReference", func(t *testing.T) {
		w := tinyModel(t, nil)
		b, err := New(w, "cuda", model.Options{MaxBatchTokens: 256})
		if err != nil {
			t.Fatal(err)
		}
		useWgmma := b.(*Backend).ks.useWgmma
		b.Close()
		if !useWgmma {
			t.Fatal("the backend did not enable wgmma on the emulated sm_90a device")
		}
		TestGPUForwardMatchesFixtureReference(t)
	})
}
