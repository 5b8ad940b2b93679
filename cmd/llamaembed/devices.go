package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"llamaembed/kernels"
	"llamaembed/model/cuda" // the CUDA backend: registers "cuda" for --device
	"llamaembed/model/cuda/driver"
)

func init() {
	register("devices", "list the devices this machine can run the encoder on (CPU, CUDA GPUs)", runDevices)
}

func runDevices(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("devices", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: llamaembed devices\n\nLists the CPU and each CUDA GPU (index, name, memory, compute capability).\n"+
			"Exits 0 on a machine without a GPU or driver, saying so.\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "devices: unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	listDevices(stdout, cpuModelName("/proc/cpuinfo"), runtime.NumCPU(), cuda.Devices)
	return nil
}

// listDevices writes one line per device: the CPU, then each GPU, or a line
// saying why there is none. gpus is cuda.Devices (a stub in tests).
func listDevices(w io.Writer, cpuName string, cores int, gpus func() ([]driver.Info, error)) {
	if cpuName == "" {
		cpuName = "unknown model"
	}
	fmt.Fprintf(w, "%-8s %s, %d cores\n", "cpu", cpuName, cores)
	infos, err := gpus()
	for _, inf := range infos {
		arch, aerr := kernels.ArchFor(inf.Major, inf.Minor)
		kern := "kernels " + string(arch)
		if aerr != nil {
			kern = "unsupported: needs compute capability 8.0+"
		}
		fmt.Fprintf(w, "%-8s %s, %.1f GiB, compute capability %d.%d, %d SMs (%s)\n",
			fmt.Sprintf("cuda:%d", inf.Ordinal), inf.Name, float64(inf.TotalMem)/(1<<30), inf.Major, inf.Minor, inf.SMs, kern)
	}
	switch {
	case errors.Is(err, driver.ErrNoDriver):
		fmt.Fprintf(w, "%-8s no CUDA driver found (%v)\n", "cuda", err)
	case errors.Is(err, driver.ErrNoDevice):
		fmt.Fprintf(w, "%-8s the CUDA driver found no GPU (%v)\n", "cuda", err)
	case err != nil:
		fmt.Fprintf(w, "%-8s error: %v\n", "cuda", err)
	}
}

// cpuModelName is the first "model name" of /proc/cpuinfo, or "".
func cpuModelName(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
