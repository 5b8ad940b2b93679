package driver

import (
	"fmt"
	"unsafe"
)

// DevicePtr is a CUdeviceptr: an address in device memory.
type DevicePtr uint64

// Offset is p advanced by n bytes.
func (p DevicePtr) Offset(n int) DevicePtr { return p + DevicePtr(n) }

// MemGetInfo returns free and total device memory of the current context's device.
func MemGetInfo() (free, total uint64, err error) {
	a, err := get()
	if err != nil {
		return 0, 0, err
	}
	if err := a.err("cuMemGetInfo_v2", a.cuMemGetInfo(&free, &total)); err != nil {
		return 0, 0, err
	}
	return free, total, nil
}

// MemAlloc allocates n bytes of device memory.
func MemAlloc(n uint64) (DevicePtr, error) {
	a, err := get()
	if err != nil {
		return 0, err
	}
	var p DevicePtr
	if err := a.err("cuMemAlloc_v2", a.cuMemAlloc(&p, n)); err != nil {
		return 0, fmt.Errorf("allocate %d bytes: %w", n, err)
	}
	return p, nil
}

// MemFree frees device memory from MemAlloc.
func MemFree(p DevicePtr) error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuMemFree_v2", a.cuMemFree(p))
}

// MemAllocHost allocates n bytes of page-locked host memory, which async
// copies need to be truly asynchronous. The slice aliases C memory: free it
// with MemFreeHost, never let it be used after.
func MemAllocHost(n int) ([]byte, error) {
	a, err := get()
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, fmt.Errorf("cuMemAllocHost_v2: size %d", n)
	}
	var p unsafe.Pointer
	if err := a.err("cuMemAllocHost_v2", a.cuMemAllocHost(&p, uint64(n))); err != nil {
		return nil, fmt.Errorf("allocate %d pinned bytes: %w", n, err)
	}
	return unsafe.Slice((*byte)(p), n), nil
}

// MemFreeHost frees memory from MemAllocHost.
func MemFreeHost(b []byte) error {
	a, err := get()
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return nil
	}
	return a.err("cuMemFreeHost", a.cuMemFreeHost(unsafe.Pointer(&b[0])))
}

// CopyHtoD copies src to device memory and returns when done. src may be Go
// or C memory (the call does not keep it).
func CopyHtoD(dst DevicePtr, src []byte) error {
	a, err := get()
	if err != nil {
		return err
	}
	if len(src) == 0 {
		return nil
	}
	return a.err("cuMemcpyHtoD_v2", a.cuMemcpyHtoD(dst, unsafe.Pointer(&src[0]), uint64(len(src))))
}

// CopyDtoH copies device memory into dst and returns when done.
func CopyDtoH(dst []byte, src DevicePtr) error {
	a, err := get()
	if err != nil {
		return err
	}
	if len(dst) == 0 {
		return nil
	}
	return a.err("cuMemcpyDtoH_v2", a.cuMemcpyDtoH(unsafe.Pointer(&dst[0]), src, uint64(len(dst))))
}

// CopyHtoDAsync queues a copy on s. src must be page-locked memory from
// MemAllocHost (the driver reads it after the call returns) and must not be
// changed until the stream has passed the copy.
func CopyHtoDAsync(dst DevicePtr, src []byte, s Stream) error {
	a, err := get()
	if err != nil {
		return err
	}
	if len(src) == 0 {
		return nil
	}
	return a.err("cuMemcpyHtoDAsync_v2", a.cuMemcpyHtoDAsync(dst, unsafe.Pointer(&src[0]), uint64(len(src)), s))
}

// CopyDtoHAsync queues a copy into page-locked dst on s; read dst only after
// synchronising the stream.
func CopyDtoHAsync(dst []byte, src DevicePtr, s Stream) error {
	a, err := get()
	if err != nil {
		return err
	}
	if len(dst) == 0 {
		return nil
	}
	return a.err("cuMemcpyDtoHAsync_v2", a.cuMemcpyDtoHAsync(unsafe.Pointer(&dst[0]), src, uint64(len(dst)), s))
}

// MemsetD16 sets n 16-bit words at p to v (poisoning bf16 outputs in tests).
func MemsetD16(p DevicePtr, v uint16, n uint64) error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuMemsetD16_v2", a.cuMemsetD16(p, v, n))
}

// MemsetD32 sets n 32-bit words at p to v.
func MemsetD32(p DevicePtr, v uint32, n uint64) error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuMemsetD32_v2", a.cuMemsetD32(p, v, n))
}
