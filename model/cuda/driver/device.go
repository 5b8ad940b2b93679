package driver

import (
	"fmt"
	"unsafe"
)

// Device is a CUdevice ordinal handle.
type Device int32

// DeviceAttribute is a CUdevice_attribute.
type DeviceAttribute int32

// The attributes the backend reads.
const (
	AttrMultiprocessorCount          DeviceAttribute = 16
	AttrL2CacheSize                  DeviceAttribute = 38
	AttrComputeCapabilityMajor       DeviceAttribute = 75
	AttrComputeCapabilityMinor       DeviceAttribute = 76
	AttrMaxSharedMemoryPerBlockOptin DeviceAttribute = 97
)

// DeviceCount is the number of CUDA devices.
func DeviceCount() (int, error) {
	a, err := get()
	if err != nil {
		return 0, err
	}
	var n int32
	if err := a.err("cuDeviceGetCount", a.cuDeviceGetCount(&n)); err != nil {
		return 0, err
	}
	return int(n), nil
}

// GetDevice returns the device with the given ordinal.
func GetDevice(ordinal int) (Device, error) {
	a, err := get()
	if err != nil {
		return 0, err
	}
	var d int32
	if err := a.err("cuDeviceGet", a.cuDeviceGet(&d, int32(ordinal))); err != nil {
		return 0, fmt.Errorf("device %d: %w", ordinal, err)
	}
	return Device(d), nil
}

// Name is the device's marketing name.
func (d Device) Name() (string, error) {
	a, err := get()
	if err != nil {
		return "", err
	}
	var buf [256]byte
	if err := a.err("cuDeviceGetName", a.cuDeviceGetName(&buf[0], int32(len(buf)), int32(d))); err != nil {
		return "", err
	}
	return cString((*byte)(unsafe.Pointer(&buf[0]))), nil
}

// TotalMem is the device memory in bytes.
func (d Device) TotalMem() (uint64, error) {
	a, err := get()
	if err != nil {
		return 0, err
	}
	var n uint64
	if err := a.err("cuDeviceTotalMem_v2", a.cuDeviceTotalMem_v2(&n, int32(d))); err != nil {
		return 0, err
	}
	return n, nil
}

// Attribute reads one device attribute.
func (d Device) Attribute(attr DeviceAttribute) (int, error) {
	a, err := get()
	if err != nil {
		return 0, err
	}
	var v int32
	if err := a.err("cuDeviceGetAttribute", a.cuDeviceGetAttribute(&v, int32(attr), int32(d))); err != nil {
		return 0, fmt.Errorf("attribute %d: %w", attr, err)
	}
	return int(v), nil
}

// ComputeCapability is the device's major.minor version.
func (d Device) ComputeCapability() (major, minor int, err error) {
	if major, err = d.Attribute(AttrComputeCapabilityMajor); err != nil {
		return 0, 0, err
	}
	if minor, err = d.Attribute(AttrComputeCapabilityMinor); err != nil {
		return 0, 0, err
	}
	return major, minor, nil
}

// Info summarises a device for listings and logs.
type Info struct {
	Ordinal      int
	Name         string
	TotalMem     uint64
	Major, Minor int
	SMs          int
}

// DeviceInfo gathers Info for one ordinal.
func DeviceInfo(ordinal int) (Info, error) {
	d, err := GetDevice(ordinal)
	if err != nil {
		return Info{}, err
	}
	inf := Info{Ordinal: ordinal}
	if inf.Name, err = d.Name(); err != nil {
		return Info{}, err
	}
	if inf.TotalMem, err = d.TotalMem(); err != nil {
		return Info{}, err
	}
	if inf.Major, inf.Minor, err = d.ComputeCapability(); err != nil {
		return Info{}, err
	}
	if inf.SMs, err = d.Attribute(AttrMultiprocessorCount); err != nil {
		return Info{}, err
	}
	return inf, nil
}

// Context is a device's primary context, retained.
type Context struct {
	h   uintptr
	dev Device
}

// RetainPrimaryContext retains d's primary context (the one the CUDA
// runtime would share) and makes it current on the calling thread.
func (d Device) RetainPrimaryContext() (*Context, error) {
	a, err := get()
	if err != nil {
		return nil, err
	}
	var h uintptr
	if err := a.err("cuDevicePrimaryCtxRetain", a.cuDevicePrimaryCtxRetain(&h, int32(d))); err != nil {
		return nil, err
	}
	c := &Context{h: h, dev: d}
	if err := c.SetCurrent(); err != nil {
		a.cuDevicePrimaryCtxRelease(int32(d))
		return nil, err
	}
	return c, nil
}

// SetCurrent binds the context to the calling OS thread.
func (c *Context) SetCurrent() error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuCtxSetCurrent", a.cuCtxSetCurrent(c.h))
}

// Release drops the retain; the driver destroys the context with the last one.
func (c *Context) Release() error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuDevicePrimaryCtxRelease_v2", a.cuDevicePrimaryCtxRelease(int32(c.dev)))
}

// Device is the context's device.
func (c *Context) Device() Device { return c.dev }
