package fakeidp

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newDeviceFake(t *testing.T, o Options) (*Server, *fakeClock, func(form ...string) result, func() map[string]any) {
	t.Helper()
	o.DeviceCodes = true
	s, ts := newFake(t, o)
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.SetClock(clock.Now)
	tokenCall := func(kv ...string) result {
		return do(t, ts, s, call{auth: formBasic(testID, testSecret), form: form(kv...)})
	}
	authorize := func() map[string]any {
		r := do(t, ts, s, call{path: "/device", auth: formBasic(testID, testSecret), form: form("scope", "read")})
		if r.status != http.StatusOK {
			t.Fatalf("device authorization: %d %s", r.status, r.text)
		}
		return r.json
	}
	return s, clock, tokenCall, authorize
}

func TestDeviceGrantApproveOnce(t *testing.T) {
	s, clock, tokenCall, authorize := newDeviceFake(t, Options{Scopes: []string{"read"}, DeviceInterval: 7})
	da := authorize()
	if da["interval"] != float64(7) || da["expires_in"] != float64(600) || da["user_code"] == "" {
		t.Fatalf("device authorization %v", da)
	}
	poll := func() result {
		return tokenCall("grant_type", DeviceGrantType, "device_code", da["device_code"].(string))
	}
	clock.Advance(7 * time.Second)
	wantError(t, s, poll(), 400, "authorization_pending")
	if !s.ApproveDevice(da["user_code"].(string)) || s.ApproveDevice("NOPE-NOPE") {
		t.Fatal("ApproveDevice does not find exactly the issued user code")
	}
	clock.Advance(7 * time.Second)
	body := wantToken(t, poll(), "expires_in", "scope")
	if !s.Valid(body["access_token"].(string)) || body["scope"] != "read" {
		t.Fatalf("device token %v", body)
	}
	clock.Advance(7 * time.Second)
	wantError(t, s, poll(), 400, "invalid_grant") // the code is spent
	if n := s.TokenRequestsByGrant(DeviceGrantType); n != 3 {
		t.Fatalf("device polls recorded %d, want 3", n)
	}
}

func TestDeviceGrantSlowDownExpiryDenial(t *testing.T) {
	s, clock, tokenCall, authorize := newDeviceFake(t, Options{Scopes: []string{"read"}})
	da := authorize()
	poll := func() result {
		return tokenCall("grant_type", DeviceGrantType, "device_code", da["device_code"].(string))
	}
	clock.Advance(4 * time.Second)
	wantError(t, s, poll(), 400, "slow_down") // before the 5 s interval
	clock.Advance(5 * time.Second)
	wantError(t, s, poll(), 400, "slow_down") // the interval is 10 s now
	clock.Advance(15 * time.Second)
	wantError(t, s, poll(), 400, "authorization_pending")
	clock.Advance(10 * time.Minute)
	wantError(t, s, poll(), 400, "expired_token")

	denied := authorize()
	s.DenyDevice(denied["user_code"].(string))
	clock.Advance(5 * time.Second)
	wantError(t, s, tokenCall("grant_type", DeviceGrantType, "device_code", denied["device_code"].(string)), 400, "access_denied")

	s.ApproveAllDevices(true)
	all := authorize()
	clock.Advance(5 * time.Second)
	wantToken(t, tokenCall("grant_type", DeviceGrantType, "device_code", all["device_code"].(string)))
	wantError(t, s, tokenCall("grant_type", DeviceGrantType), 400, "invalid_request")
}

func TestDeviceGrantOnlyWhenOn(t *testing.T) {
	s, ts := newFake(t, Options{})
	if r := do(t, ts, s, call{path: "/device", auth: formBasic(testID, testSecret), form: form()}); r.status != http.StatusNotFound {
		t.Fatalf("/device without DeviceCodes answered %d", r.status)
	}
	r := do(t, ts, s, call{auth: formBasic(testID, testSecret), form: form("grant_type", DeviceGrantType, "device_code", "x")})
	wantError(t, s, r, 400, "unsupported_grant_type")
	d, dts := newFake(t, Options{DeviceCodes: true})
	wantError(t, d, do(t, dts, d, call{path: "/device", auth: formBasic(testID, "wrong"), form: form()}), 401, "invalid_client")
}
