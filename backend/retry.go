package backend

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// RetryPolicy bounds how hard the engine insists on a failing IdP. Only
// network errors, 5xx and 429 are retried: a 4xx is an answer.
type RetryPolicy struct {
	Attempts   int           // total tries, at least 1
	BaseDelay  time.Duration // first backoff, doubled each try
	MaxDelay   time.Duration // cap of one wait, Retry-After included
	MaxElapsed time.Duration // cap of all tries and waits together
}

// DefaultRetry gives an IdP about five seconds to recover, within the
// default request timeout.
var DefaultRetry = RetryWithin(DefaultRequestTimeout)

// RetryWithin is the retry policy of a config whose request_timeout is
// timeout: that one bound covers every try and wait together, so that a
// long request_timeout is not cut short by a separate retry bound.
func RetryWithin(timeout time.Duration) RetryPolicy {
	return RetryPolicy{Attempts: 3, BaseDelay: 200 * time.Millisecond, MaxDelay: 2 * time.Second, MaxElapsed: RequestTimeout(timeout)}
}

// delay is the wait before try n+1 (n from 1): exponential with full jitter
// in its upper half, or the IdP's Retry-After when it sent one.
func (p RetryPolicy) delay(n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, p.MaxDelay)
	}
	d := p.BaseDelay << (n - 1)
	if d <= 0 || d > p.MaxDelay {
		d = p.MaxDelay
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110 10.2.3).
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
