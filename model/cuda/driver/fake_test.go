package driver

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// installFakeDriver builds testdata/fakecuda.c into a libcuda.so.1 with the
// host C compiler and binds the package to it for the rest of the test.
// It checks the binding's side of the ABI (argument order and widths,
// out-parameters, C strings, the JIT log options, the kernel parameter
// array, the 11-argument cuLaunchKernel with its stack arguments) on a
// machine without a GPU. It proves nothing about a real driver or GPU.
func installFakeDriver(t *testing.T) {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		if cc, err = exec.LookPath("gcc"); err != nil {
			t.Skip("no C compiler to build the fake driver")
		}
	}
	so := filepath.Join(t.TempDir(), "libcuda.so.1")
	out, err := exec.Command(cc, "-shared", "-fPIC", "-O1", "-Wall", "-o", so, "testdata/fakecuda.c").CombinedOutput()
	if err != nil {
		t.Fatalf("build fake driver: %v\n%s", err, out)
	}
	restore, err := UseLibraryForTests(so)
	if err != nil {
		t.Fatalf("load fake driver: %v", err)
	}
	t.Cleanup(restore)
}

func TestFakeDriverABI(t *testing.T) {
	installFakeDriver(t)
	if v, err := Version(); err != nil || v != 12040 {
		t.Fatalf("Version = %d, %v", v, err)
	}
	d, err := GetDevice(0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := d.RetainPrimaryContext()
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Release()
	inf, err := DeviceInfo(0)
	if err != nil || inf.Name != "Fake GPU 0" || inf.TotalMem != 80<<30 || inf.Major != 9 || inf.Minor != 0 || inf.SMs != 132 {
		t.Fatalf("DeviceInfo = %+v, %v", inf, err)
	}
	if _, err := GetDevice(3); err == nil || !strings.Contains(err.Error(), "device 3") {
		t.Errorf("GetDevice(3) = %v", err)
	}
	t.Run("DeviceQuery", testDeviceQuery)
	t.Run("LaunchCopyGraph", testLaunchCopyGraph)
	t.Run("ModuleLoadErrorCarriesLog", func(t *testing.T) {
		testModuleLoadErrorCarriesLog(t)
		_, err := LoadModule(append([]byte(strings.Replace(addOnePTX, "add.s32 %r5, %r5, 1;", "add.s32 %r5, %r9, 1;", 1)), 0))
		if e, ok := err.(*Error); !ok || !strings.Contains(e.Log, "Unknown symbol '%r9'") || e.Name != "CUDA_ERROR_INVALID_PTX" {
			t.Errorf("JIT failure: %v", err)
		}
	})
	t.Run("OutOfMemory", testOutOfMemoryIsAnError)
	t.Run("UnknownKernel", func(t *testing.T) {
		m, err := LoadModule(append([]byte(addOnePTX), 0))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Function("nope"); err == nil || !strings.Contains(err.Error(), "kernel nope") {
			t.Errorf("Function(nope) = %v", err)
		}
		f, _ := m.Function("add_one")
		if err := f.SetMaxDynamicShared(100 << 10); err != nil {
			t.Errorf("SetMaxDynamicShared: %v", err)
		}
	})
	t.Run("LaunchRejectsWrongGeometry", func(t *testing.T) {
		// The fake checks grid*block covers n: a launch too small must come
		// back as the driver's error text.
		m, _ := LoadModule(append([]byte(addOnePTX), 0))
		f, _ := m.Function("add_one")
		p, _ := MemAlloc(4 * 1000)
		defer MemFree(p)
		s, _ := StreamCreate()
		err := f.Launch(Dim3{1, 1, 1}, Dim3{256, 1, 1}, 0, s, p, uint32(1000))
		if err == nil || !strings.Contains(err.Error(), "cuLaunchKernel: invalid argument (CUDA_ERROR_INVALID_VALUE") {
			t.Errorf("undersized launch: %v", err)
		}
	})
}
