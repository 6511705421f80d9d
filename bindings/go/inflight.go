package ocicas

import "sync"

// handle is a C handle and the calls in flight on it, so that Close frees it only once none
// is running: a call that starts after Close panics, as any use after Close does, and Close
// waits for the calls already inside the library. Without it a Close racing a call freed the
// memory the call was using (SIGSEGV).
type handle[P any] struct {
	// c is the C handle: a pointer to an incomplete C type, which cannot be a type argument.
	c P
	// kind names the Go type in the panic of a use after Close.
	kind string
	// oneAtATime handles (the C ABI's "one thread at a time") make their calls take turns.
	oneAtATime bool
	turn       sync.Mutex
	mu         sync.Mutex
	closed     bool
	calls      sync.WaitGroup
}

// newHandle is a handle that many calls may use at once.
func newHandle[P any](kind string, c P) handle[P] {
	return handle[P]{c: c, kind: kind}
}

// newSerialHandle is a handle whose calls take turns: the C object is not safe for two
// threads at once, and a goroutine that calls it beside another must not corrupt it.
func newSerialHandle[P any](kind string, c P) handle[P] {
	return handle[P]{c: c, kind: kind, oneAtATime: true}
}

// use is the C handle for one call, which ends it with done. It panics after Close.
func (h *handle[P]) use() P {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		panic("ocicas: " + h.kind + " used after Close")
	}
	h.calls.Add(1)
	h.mu.Unlock()
	if h.oneAtATime {
		h.turn.Lock()
	}
	return h.c
}

// done ends a call started with use.
func (h *handle[P]) done() {
	if h.oneAtATime {
		h.turn.Unlock()
	}
	h.calls.Done()
}

// ptr is the C handle for a call that does not hold it with use and done: it panics after
// Close, but a Close racing that call does not wait for it.
func (h *handle[P]) ptr() P {
	defer h.done()
	return h.use()
}

// close refuses new calls, waits until the calls in flight ended and returns the C handle to
// free; false when it was closed before (then it does not wait). A callback must not close
// the handle whose call runs it: that call cannot end before the callback, so close would
// wait forever.
func (h *handle[P]) close() (P, bool) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return h.c, false
	}
	h.closed = true
	h.mu.Unlock()
	h.calls.Wait()
	return h.c, true
}
