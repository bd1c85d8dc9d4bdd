package backend

import (
	"context"
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

// A server whose metadata has no device_authorization_endpoint (Ory Hydra
// v2.3.0, say) was reached: the error says what its metadata lacks, not
// that it could not be reached.
func TestDeviceAuthorizationNotAdvertised(t *testing.T) {
	srv, _ := discoveryServer(t, map[string]func(string) string{
		"/.well-known/openid-configuration": metadataDoc("", ""),
	})
	hc, _ := NewHTTPClient(5*time.Second, "")
	e := &Endpoint{Config: "hydra", ClientID: testClientID, ClientSecret: testClientSecret, ClientAuth: ClientAuthBasic,
		HTTP: hc, Retry: RetryPolicy{Attempts: 1}, Discovery: &Discovery{Issuer: srv.URL, HTTP: hc}}
	_, err := e.RequestDeviceAuthorization(context.Background(), []string{"openid"}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{`config "hydra"`, srv.URL + "/.well-known/openid-configuration", "no device_authorization_endpoint", "device_authorization_url"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "could not be reached") {
		t.Errorf("error %q says the server could not be reached; it answered", msg)
	}
}
