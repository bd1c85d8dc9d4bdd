package backend

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"1", time.Second},
		{"120", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"Sat, 01 Mar 2025 10:00:10 GMT", 10 * time.Second},
	}
	for _, tc := range tests {
		h := http.Header{}
		if tc.value != "" {
			h.Set("Retry-After", tc.value)
		}
		if got := parseRetryAfter(h, now); got != tc.want {
			t.Errorf("Retry-After %q = %v, want %v", tc.value, got, tc.want)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	p := RetryPolicy{Attempts: 10, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	tests := []struct {
		n          int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{1, 0, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 0, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 0, 200 * time.Millisecond, 400 * time.Millisecond},
		{5, 0, 500 * time.Millisecond, time.Second},  // 1.6s capped at MaxDelay
		{70, 0, 500 * time.Millisecond, time.Second}, // shift overflow
		{1, 300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond},
		{1, time.Hour, time.Second, time.Second}, // Retry-After capped too
	}
	for _, tc := range tests {
		for i := 0; i < 200; i++ {
			if d := p.delay(tc.n, tc.retryAfter); d < tc.lo || d > tc.hi {
				t.Fatalf("delay(%d, %v) = %v, want within [%v, %v]", tc.n, tc.retryAfter, d, tc.lo, tc.hi)
			}
		}
	}
	if d := DefaultRetry.delay(1, 0); d < 100*time.Millisecond || d > 200*time.Millisecond {
		t.Errorf("DefaultRetry first wait %v", d)
	}
	if DefaultRetry.Attempts < 2 || DefaultRetry.MaxElapsed <= 0 {
		t.Errorf("DefaultRetry %+v retries nothing or without bound", DefaultRetry)
	}
}
