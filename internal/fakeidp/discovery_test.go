package fakeidp

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The fake serves its own discovery metadata, naming its endpoints.
func TestDiscoveryMetadata(t *testing.T) {
	s := New(Options{Style: StyleScreeningEagle, ClientID: "c", ClientSecret: "s"})
	srv := httptest.NewServer(s)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	if md["issuer"] != srv.URL || md["token_endpoint"] != srv.URL+"/api/id/v1/auth/token" || md["authorization_endpoint"] != srv.URL+"/connect/authorize" {
		t.Fatalf("metadata %v", md)
	}
	s.SetMetadata(func(string) string { return "" })
	if resp, _ := http.Get(srv.URL + "/.well-known/openid-configuration"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("metadata switched off answered %d", resp.StatusCode)
	}
}
