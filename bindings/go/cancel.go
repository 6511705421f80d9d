package ocicas

/*
#include "ocicas_go.h"

static ocicas_status go_cancel_new(ocicas_cancel **out, char **message) {
    return ocicas_go_result(ocicas_cancel_new(out), message);
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// contextCancel is the library's cancel flag of one call (or one layer stream), requested
// once ctx is done: the library then stops at its next check (between chunks, blobs, requests
// and phases) with ErrCancelled, storing no partial blob. It is freed by release, after the
// call that took it returned.
type contextCancel struct {
	ctx  context.Context
	stop func() bool
	// mu orders a request racing with release: the flag is requested only while it lives.
	mu   sync.Mutex
	flag *C.ocicas_cancel
}

// withContext runs call with a cancel flag requested once ctx is done, and returns call's error
// as explain says; with a ctx already done call does not run, and the error is doneError's.
func withContext(ctx context.Context, call func(flag *C.ocicas_cancel) error) error {
	if err := doneError(ctx); err != nil {
		return err
	}
	cancel, err := watchContext(ctx)
	if err != nil {
		return err
	}
	defer cancel.release()
	return cancel.explain(call(cancel.flag))
}

func watchContext(ctx context.Context) (*contextCancel, error) {
	var flag *C.ocicas_cancel
	var message *C.char
	if err := toError(C.go_cancel_new(&flag, &message), message); err != nil {
		return nil, err
	}
	c := &contextCancel{ctx: ctx, flag: flag}
	c.stop = context.AfterFunc(ctx, c.request)
	return c, nil
}

func (c *contextCancel) request() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flag != nil {
		C.ocicas_cancel_request(c.flag)
	}
}

// release stops watching ctx and frees the flag; releasing again does nothing.
func (c *contextCancel) release() {
	c.stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	C.ocicas_cancel_free(c.flag)
	c.flag = nil
}

// doneError is nil while ctx is not done, else the error of a call that stopped before it
// started: both ctx's error and ErrCancelled, as for a call stopped while it ran.
func doneError(ctx context.Context) error {
	ctxErr := ctx.Err()
	if ctxErr == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ctxErr, &Error{Code: CodeCancelled, Message: "cancelled before it started"})
}

// explain is err, with ctx's error first when the library stopped because ctx was done, so
// that errors.Is finds both context.Canceled (or DeadlineExceeded) and ErrCancelled.
func (c *contextCancel) explain(err error) error {
	if ctxErr := c.ctx.Err(); ctxErr != nil && errors.Is(err, ErrCancelled) {
		return fmt.Errorf("%w: %w", ctxErr, err)
	}
	return err
}
