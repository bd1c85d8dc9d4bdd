package backend

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseDeviceAuthorization(t *testing.T) {
	got, err := ParseDeviceAuthorization([]byte(`{"device_code":"GmRh","user_code":"WDJB-MJHT",
		"verification_uri":"https://example.com/device","verification_uri_complete":"https://example.com/device?user_code=WDJB-MJHT",
		"expires_in":1800,"interval":5}`), tokenT0)
	if err != nil {
		t.Fatal(err)
	}
	want := DeviceAuthorization{DeviceCode: "GmRh", UserCode: "WDJB-MJHT", VerificationURI: "https://example.com/device",
		VerificationURIComplete: "https://example.com/device?user_code=WDJB-MJHT", ExpiresAt: tokenT0.Add(30 * time.Minute), Interval: 5 * time.Second}
	if *got != want {
		t.Fatalf("got %+v\nwant %+v", *got, want)
	}
	if strings.Contains(got.String(), "GmRh") {
		t.Error("String shows the device code")
	}
	// Google spells it verification_url; no interval means 5 s.
	g, err := ParseDeviceAuthorization([]byte(`{"device_code":"d","user_code":"u","verification_url":"https://www.google.com/device","expires_in":"1800"}`), tokenT0)
	if err != nil || g.VerificationURI != "https://www.google.com/device" || g.Interval != DefaultDeviceInterval {
		t.Fatalf("Google form: %+v %v", g, err)
	}
	for _, bad := range []string{
		`{"user_code":"u","verification_uri":"https://e/d","expires_in":60}`,
		`{"device_code":"d","user_code":"u","verification_uri":"javascript:alert(1)","expires_in":60}`,
		`{"device_code":"d","user_code":"u","verification_uri":"https://e/d"}`,
		`{"device_code":"d","user_code":"u","verification_uri":"https://e/d","expires_in":60,"interval":-1}`,
		`not json`,
	} {
		if d, err := ParseDeviceAuthorization([]byte(bad), tokenT0); err == nil {
			t.Errorf("accepted %s: %+v", bad, d)
		}
	}
}

func TestDeviceErrorCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&IdPError{Status: 400, Code: "authorization_pending"}, DeviceAuthorizationPending},
		{&IdPError{Status: 400, Code: "slow_down"}, DeviceSlowDown},
		{&IdPError{Status: 401, Code: "invalid_client"}, ""},
		{errors.New("network"), ""},
	} {
		if got := DeviceErrorCode(c.err); got != c.want {
			t.Errorf("DeviceErrorCode(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
