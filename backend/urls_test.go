package backend

import (
	"strings"
	"testing"
)

func TestCheckEndpointURL(t *testing.T) {
	tests := []struct {
		raw       string
		allowHTTP bool
		wantErr   string // "" accepts
	}{
		{"https://identity.magicwrighter.com/connect/token", false, ""},
		{"https://idp.mclabs.com/connect/token", false, ""},
		{"https://id.example.com:8443/api/id/v1/auth/token?tenant=a", false, ""},
		{"HTTPS://IDP.EXAMPLE.COM/token", false, ""},
		{"http://127.0.0.1:8080/connect/token", false, ""},
		{"http://127.8.9.10/token", false, ""},
		{"http://localhost:9000/token", false, ""},
		{"http://LocalHost/token", false, ""},
		{"http://[::1]:9000/token", false, ""},
		{"http://idp.mclabs.com/connect/token", false, "only for loopback"},
		{"http://10.0.0.5/token", false, "only for loopback"},
		{"http://localhost.example.com/token", false, "only for loopback"},
		{"http://idp.mclabs.com/connect/token", true, ""},
		{"ftp://idp.example.com/token", false, "not an http(s) URL"},
		{"ftp://idp.example.com/token", true, "not an http(s) URL"},
		{"file:///etc/passwd", true, "not an absolute"},
		{"/connect/token", false, "not an absolute"},
		{"idp.example.com/connect/token", false, "not an absolute"},
		{"", false, "not an absolute"},
		{"https:idp.example.com", false, "not an absolute"},
		{"https://", false, "not an absolute"},
		{"https://bad host/token", false, "not an absolute"},
		{"https://client:s3cr3t@idp.example.com/token", false, "user info"},
		{"https://client@idp.example.com/token", false, "user info"},
		{"http://client:s3cr3t@127.0.0.1/token", false, "user info"},
		{"https://idp.example.com/token#frag", false, "fragment"},
		{"https://idp.example.com/token#", false, ""}, // an empty fragment is no fragment
	}
	for _, tc := range tests {
		err := CheckEndpointURL(tc.raw, tc.allowHTTP)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("CheckEndpointURL(%q, %v) = %v, want nil", tc.raw, tc.allowHTTP, err)
		case tc.wantErr != "" && err == nil:
			t.Errorf("CheckEndpointURL(%q, %v) = nil, want an error", tc.raw, tc.allowHTTP)
		case err != nil && !strings.Contains(err.Error(), tc.wantErr):
			t.Errorf("CheckEndpointURL(%q, %v) = %q, want it to contain %q", tc.raw, tc.allowHTTP, err, tc.wantErr)
		}
	}
}

// A password typed into the URL must not come back in the error (errors
// reach Vault's responses and audit log in clear).
func TestCheckEndpointURLDoesNotEchoPassword(t *testing.T) {
	for _, raw := range []string{
		"https://client:s3cr3t@idp.example.com/token",
		"http://client:s3cr3t@idp.example.com/token",
		"ftp://client:s3cr3t@idp.example.com/token",
		"https://client:s3cr3t@idp.example.com/token#frag",
		"https://client:s3cr3t@bad host/token",
		"https://client:s3cr3t@idp.example.com:port/token",
		"https://client:s3cr3t@/token",
		"client:s3cr3t@idp.example.com/token",
		"mailto:client:s3cr3t@idp.example.com",
	} {
		err := CheckEndpointURL(raw, false)
		if err == nil {
			t.Errorf("CheckEndpointURL(%q) = nil, want an error", raw)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("CheckEndpointURL(%q) = %q, which quotes the password", raw, err)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.1.2.3": true, "::1": true,
		"[::1]": false, "0.0.0.0": false, "10.0.0.1": false, "example.com": false, "localhost.": false, "": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}
