package backend

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestNormalizeHostPatterns(t *testing.T) {
	got, err := NormalizeHostPatterns([]string{"IdP.Example.COM.", "*.Corp.example", "127.0.0.1", "[::1]", "0:0::1", "idp.example.com", "login_svc.internal"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"idp.example.com", "*.corp.example", "127.0.0.1", "::1", "login_svc.internal"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"", "*", "*.", "**.example.com", "a.*.example.com", "*example.com", "https://idp.example.com",
		"idp.example.com:443", "idp.example.com/token", "user@idp.example.com", "-idp.example.com", "idp..example.com",
		"idp example.com", "ídp.example.com", strings.Repeat("a", 64) + ".example.com", "*.*.example.com", "[::1]:8200"} {
		if _, err := NormalizeHostPatterns([]string{bad}); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
	many := make([]string, MaxAllowedHosts+1)
	for i := range many {
		many[i] = "h.example"
	}
	if _, err := NormalizeHostPatterns(many); err == nil {
		t.Error("an over-long list was accepted")
	}
}

func TestHostAllowed(t *testing.T) {
	patterns, err := NormalizeHostPatterns([]string{"idp.example.com", "*.corp.example", "127.0.0.1", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		host string
		want bool
	}{
		{"idp.example.com", true},
		{"IDP.example.com.", true},
		{"evil.idp.example.com", false},
		{"example.com", false},
		{"idp.example.com.evil.net", false},
		{"login.corp.example", true},
		{"a.b.corp.example", true},
		{"corp.example", false},
		{"evilcorp.example", false},
		{"127.0.0.1", true},
		{"127.0.0.2", false},
		{"::1", true},
		{"[0:0::1]", true},
		{"", false},
	}
	for _, c := range cases {
		if got := HostAllowed(c.host, patterns); got != c.want {
			t.Errorf("HostAllowed(%q) = %v, want %v", c.host, got, c.want)
		}
	}
	if !HostAllowed("anything.example", nil) {
		t.Error("an empty list must allow any host")
	}
}

func TestGuardTransport(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer srv.Close()
	allowed := []string{"localhost"}
	var patternsErr error
	client := &http.Client{Transport: GuardTransport(http.DefaultTransport, func() ([]string, error) { return allowed, patternsErr })}

	_, err := client.Post(srv.URL, "text/plain", strings.NewReader("secret"))
	var hostErr *HostNotAllowedError
	if !errors.Is(err, ErrHostNotAllowed) || !errors.As(err, &hostErr) || hostErr.Host != "127.0.0.1" {
		t.Fatalf("request to 127.0.0.1 with only localhost allowed: err = %v", err)
	}
	if hits != 0 {
		t.Fatal("the refused request reached the server")
	}
	allowed = []string{"127.0.0.1"}
	resp, err := client.Post(srv.URL, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if hits != 1 {
		t.Fatalf("allowed request: %d hits, want 1", hits)
	}
	patternsErr = errors.New("settings not loaded")
	if _, err := client.Get(srv.URL); err == nil || hits != 1 {
		t.Fatalf("with the patterns unknown: err = %v, hits = %d; want refused (fail closed)", err, hits)
	}
	client.CloseIdleConnections() // passes through without panicking
}
