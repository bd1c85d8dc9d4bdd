package backend

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// discoveryServer serves metadata at the given well-known paths.
func discoveryServer(t *testing.T, docs map[string]func(base string) string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if doc, ok := docs[r.URL.Path]; ok {
			writeJSONBody(w, 200, doc(srv.URL))
			return
		}
		if r.URL.Path == "/token" || r.URL.Path == "/tenant/token" {
			answerOK(w, r, 0)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func metadataDoc(issuerPath string, extra string) func(string) string {
	return func(base string) string {
		return `{"issuer":"` + base + issuerPath + `","token_endpoint":"` + base + issuerPath + `/token",` +
			`"authorization_endpoint":"` + base + `/authorize","revocation_endpoint":"` + base + `/revoke"` + extra + `}`
	}
}

func TestDiscovery(t *testing.T) {
	hc, _ := NewHTTPClient(5*time.Second, "")

	t.Run("openid-configuration", func(t *testing.T) {
		srv, _ := discoveryServer(t, map[string]func(string) string{
			"/.well-known/openid-configuration": metadataDoc("", `,"token_endpoint_auth_methods_supported":["client_secret_post","private_key_jwt"]`),
		})
		d := &Discovery{Issuer: srv.URL, HTTP: hc}
		md, err := d.Metadata(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if md.TokenEndpoint != srv.URL+"/token" || md.RevocationEndpoint != srv.URL+"/revoke" || md.AuthorizationEndpoint != srv.URL+"/authorize" ||
			md.Source != srv.URL+"/.well-known/openid-configuration" || len(md.TokenEndpointAuthMethods) != 2 {
			t.Fatalf("metadata = %+v", md)
		}
	})

	t.Run("RFC 8414 fallback with a path", func(t *testing.T) {
		srv, _ := discoveryServer(t, map[string]func(string) string{
			"/.well-known/oauth-authorization-server/tenant": metadataDoc("/tenant", ""),
		})
		d := &Discovery{Issuer: srv.URL + "/tenant", HTTP: hc}
		md, err := d.Metadata(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if md.TokenEndpoint != srv.URL+"/tenant/token" || !strings.HasSuffix(md.Source, "/.well-known/oauth-authorization-server/tenant") {
			t.Fatalf("metadata = %+v", md)
		}
	})

	t.Run("issuer mismatch refused", func(t *testing.T) {
		srv, _ := discoveryServer(t, map[string]func(string) string{
			"/.well-known/openid-configuration": func(string) string {
				return `{"issuer":"https://evil.example","token_endpoint":"https://evil.example/token"}`
			},
			"/.well-known/oauth-authorization-server": metadataDoc("", ""),
		})
		d := &Discovery{Issuer: srv.URL, HTTP: hc}
		_, err := d.Metadata(context.Background())
		if err == nil || !strings.Contains(err.Error(), "evil.example") || !strings.Contains(err.Error(), "/.well-known/openid-configuration") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("neither document", func(t *testing.T) {
		srv, _ := discoveryServer(t, nil)
		d := &Discovery{Issuer: srv.URL, HTTP: hc}
		_, err := d.Metadata(context.Background())
		var de *DiscoveryError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "openid-configuration") || !strings.Contains(err.Error(), "oauth-authorization-server") || !strings.Contains(err.Error(), "404") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("endpoint rules", func(t *testing.T) {
		srv, _ := discoveryServer(t, map[string]func(string) string{
			"/.well-known/openid-configuration": func(base string) string {
				return `{"issuer":"` + base + `","token_endpoint":"http://idp.example.com/token"}`
			},
		})
		d := &Discovery{Issuer: srv.URL, HTTP: hc}
		if _, err := d.Metadata(context.Background()); err == nil || !strings.Contains(err.Error(), "token_endpoint") || !strings.Contains(err.Error(), "loopback") {
			t.Fatalf("http token endpoint off loopback: %v", err)
		}
		srv2, _ := discoveryServer(t, map[string]func(string) string{"/.well-known/openid-configuration": metadataDoc("", "")})
		d = &Discovery{Issuer: srv2.URL, HTTP: hc, AllowedHosts: func() ([]string, error) { return []string{"idp.example.com"}, nil }}
		if _, err := d.Metadata(context.Background()); err == nil || !strings.Contains(err.Error(), "allowed_hosts") {
			t.Fatalf("host outside allowed_hosts: %v", err)
		}
	})

	t.Run("cache lifetime", func(t *testing.T) {
		srv, hits := discoveryServer(t, map[string]func(string) string{"/.well-known/openid-configuration": metadataDoc("", "")})
		now := time.Now()
		d := &Discovery{Issuer: srv.URL, HTTP: hc, Now: func() time.Time { return now }}
		for range 3 {
			if _, err := d.Metadata(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if hits.Load() != 1 {
			t.Fatalf("%d reads within the TTL", hits.Load())
		}
		now = now.Add(DiscoveryTTL + time.Second)
		d.Metadata(context.Background())
		if hits.Load() != 2 {
			t.Fatalf("%d reads after the TTL, want 2", hits.Load())
		}
		// The server goes away: stale metadata keeps serving, retried after DiscoveryRetry.
		srv.Close()
		now = now.Add(DiscoveryTTL + time.Second)
		if md, err := d.Metadata(context.Background()); err != nil || md == nil {
			t.Fatalf("stale metadata not served: %v", err)
		}
		now = now.Add(DiscoveryMaxStale)
		if _, err := d.Metadata(context.Background()); err == nil {
			t.Fatal("metadata older than DiscoveryMaxStale served")
		}
	})

	t.Run("bad issuer", func(t *testing.T) {
		for _, iss := range []string{"https://x.example/?a=b", "ftp://x.example", "not a url"} {
			if _, err := WellKnownURLs(iss); err == nil {
				t.Errorf("%q accepted", iss)
			}
		}
	})
}

// An endpoint with discovery takes the token URL and the strongest
// advertised method from the metadata; explicit values win.
func TestEndpointWithDiscovery(t *testing.T) {
	var gotAuth atomic.Value
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			writeJSONBody(w, 200, `{"issuer":"`+srv.URL+`","token_endpoint":"`+srv.URL+`/discovered-token","revocation_endpoint":"`+srv.URL+`/revoke",`+
				`"token_endpoint_auth_methods_supported":["client_secret_post","client_secret_basic"]}`)
		case "/discovered-token", "/explicit-token":
			r.ParseForm()
			gotAuth.Store(r.URL.Path + " basic=" + boolStr(r.Header.Get("Authorization") != "") + " post=" + boolStr(r.PostForm.Has("client_secret")))
			answerOK(w, r, 0)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	hc, _ := NewHTTPClient(5*time.Second, "")
	e := &Endpoint{Config: "d", ClientID: testClientID, ClientSecret: testClientSecret, HTTP: hc, Retry: RetryPolicy{Attempts: 1},
		Discovery: &Discovery{Issuer: srv.URL, HTTP: hc}}
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err != nil {
		t.Fatal(err)
	}
	if gotAuth.Load() != "/discovered-token basic=true post=false" {
		t.Fatalf("got %v", gotAuth.Load())
	}
	e.TokenURL, e.ClientAuth = srv.URL+"/explicit-token", ClientAuthPost
	if _, err := e.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials}); err != nil {
		t.Fatal(err)
	}
	if gotAuth.Load() != "/explicit-token basic=false post=true" {
		t.Fatalf("got %v", gotAuth.Load())
	}
	tu, ru, a, err := e.Resolved(context.Background())
	if err != nil || tu != srv.URL+"/explicit-token" || ru != srv.URL+"/revoke" || a != ClientAuthPost {
		t.Fatalf("Resolved = %s %s %s %v", tu, ru, a, err)
	}
	// Discovery failure names the URL.
	bad := &Endpoint{Config: "d", ClientID: testClientID, ClientSecret: testClientSecret, HTTP: hc, Retry: RetryPolicy{Attempts: 1},
		Discovery: &Discovery{Issuer: srv.URL + "/nothing", HTTP: hc}}
	_, err = bad.RequestToken(context.Background(), TokenRequest{Grant: GrantClientCredentials})
	var idpErr *IdPError
	if !errors.As(err, &idpErr) || !strings.Contains(err.Error(), srv.URL+"/nothing/.well-known/openid-configuration") {
		t.Fatalf("err = %v", err)
	}
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// The device authorization endpoint receives the client secret as the token
// endpoint does, so discovery holds it to the same rules: no plain http off
// loopback, and only hosts in allowed_hosts. The metadata server is on
// loopback; the device endpoints it names are never contacted.
func TestDiscoveryChecksTheDeviceEndpoint(t *testing.T) {
	hc, _ := NewHTTPClient(5*time.Second, "")
	withDevice := func(device string) func(string) string {
		return metadataDoc("", `,"device_authorization_endpoint":"`+device+`"`)
	}

	srv, _ := discoveryServer(t, map[string]func(string) string{"/.well-known/openid-configuration": withDevice("http://idp.example.com/device")})
	d := &Discovery{Issuer: srv.URL, HTTP: hc}
	_, err := d.Metadata(context.Background())
	if err == nil || !strings.Contains(err.Error(), "device_authorization_endpoint") || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("http device endpoint off loopback: %v", err)
	}

	srv, _ = discoveryServer(t, map[string]func(string) string{"/.well-known/openid-configuration": withDevice("https://device.example.net/device")})
	d = &Discovery{Issuer: srv.URL, HTTP: hc, AllowedHosts: func() ([]string, error) { return []string{"127.0.0.1"}, nil }}
	_, err = d.Metadata(context.Background())
	if err == nil || !strings.Contains(err.Error(), "device_authorization_endpoint") || !strings.Contains(err.Error(), "allowed_hosts") {
		t.Fatalf("device endpoint outside allowed_hosts: %v", err)
	}

	// On an allowed host, it is kept.
	srv, _ = discoveryServer(t, map[string]func(string) string{"/.well-known/openid-configuration": func(base string) string {
		return withDevice(base + "/device")(base)
	}})
	d = &Discovery{Issuer: srv.URL, HTTP: hc, AllowedHosts: func() ([]string, error) { return []string{"127.0.0.1"}, nil }}
	md, err := d.Metadata(context.Background())
	if err != nil || md.DeviceAuthorizationEndpoint != srv.URL+"/device" {
		t.Fatalf("loopback device endpoint: %v %+v", err, md)
	}
}
