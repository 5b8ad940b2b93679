package driver

// Stream is a CUstream; the zero value is the legacy default stream.
type Stream uintptr

// Event is a CUevent.
type Event uintptr

// Graph is a CUgraph; GraphExec an instantiated, launchable one.
type (
	Graph     uintptr
	GraphExec uintptr
)

// StreamCreate makes a stream that stays ordered with the legacy default
// stream (CU_STREAM_DEFAULT), on which the synchronous copies and memsets
// run: those can return before their DMA has landed, so a stream that did
// not wait for them (CU_STREAM_NON_BLOCKING) could read stale memory.
func StreamCreate() (Stream, error) {
	a, err := get()
	if err != nil {
		return 0, err
	}
	var s Stream
	if err := a.err("cuStreamCreate", a.cuStreamCreate(&s, 0)); err != nil {
		return 0, err
	}
	return s, nil
}

// Destroy releases the stream once its queued work is done.
func (s Stream) Destroy() error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuStreamDestroy_v2", a.cuStreamDestroy(s))
}

// Synchronize waits for the stream's work; a kernel fault surfaces here.
func (s Stream) Synchronize() error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuStreamSynchronize", a.cuStreamSynchronize(s))
}

// EventCreate makes a timing event.
func EventCreate() (Event, error) {
	a, err := get()
	if err != nil {
		return 0, err
	}
	var e Event
	if err := a.err("cuEventCreate", a.cuEventCreate(&e, 0)); err != nil {
		return 0, err
	}
	return e, nil
}

// Record queues the event on s.
func (e Event) Record(s Stream) error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuEventRecord", a.cuEventRecord(e, s))
}

// Synchronize waits until the event has happened.
func (e Event) Synchronize() error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuEventSynchronize", a.cuEventSynchronize(e))
}

// ElapsedMs is the time in milliseconds between two recorded events.
func ElapsedMs(start, end Event) (float32, error) {
	a, err := get()
	if err != nil {
		return 0, err
	}
	var ms float32
	if err := a.err("cuEventElapsedTime", a.cuEventElapsedTime(&ms, start, end)); err != nil {
		return 0, err
	}
	return ms, nil
}

// Destroy releases the event.
func (e Event) Destroy() error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuEventDestroy_v2", a.cuEventDestroy(e))
}

// BeginCapture starts recording s's work into a graph instead of running it
// (thread-local mode: other threads' CUDA calls are not affected).
func (s Stream) BeginCapture() error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuStreamBeginCapture_v2", a.cuStreamBeginCapture(s, 1))
}

// EndCapture ends a capture and returns the graph recorded.
func (s Stream) EndCapture() (Graph, error) {
	a, err := get()
	if err != nil {
		return 0, err
	}
	var g Graph
	if err := a.err("cuStreamEndCapture", a.cuStreamEndCapture(s, &g)); err != nil {
		return 0, err
	}
	return g, nil
}

// Instantiate makes a launchable graph.
func (g Graph) Instantiate() (GraphExec, error) {
	a, err := get()
	if err != nil {
		return 0, err
	}
	var e GraphExec
	if err := a.err("cuGraphInstantiateWithFlags", a.cuGraphInstantiateWithFlags(&e, g, 0)); err != nil {
		return 0, err
	}
	return e, nil
}

// Destroy releases the graph (instances made from it stay valid).
func (g Graph) Destroy() error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuGraphDestroy", a.cuGraphDestroy(g))
}

// Launch queues the whole graph on s.
func (e GraphExec) Launch(s Stream) error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuGraphLaunch", a.cuGraphLaunch(e, s))
}

// Destroy releases the instance.
func (e GraphExec) Destroy() error {
	a, err := get()
	if err != nil {
		return err
	}
	return a.err("cuGraphExecDestroy", a.cuGraphExecDestroy(e))
}
