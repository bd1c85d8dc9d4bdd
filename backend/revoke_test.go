package backend

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// Revocation: token and token_type_hint with the client's authentication;
// 200 is success, an error names the status and quotes nothing sent.
func TestRevoke(t *testing.T) {
	idp := newRecordingIdP(t, func(w http.ResponseWriter, r *http.Request, n int) {
		r.ParseForm()
		if r.Form.Get("token") == "bad-token-123" {
			writeJSONBody(w, 400, `{"error":"unsupported_token_type","error_description":"cannot revoke bad-token-123"}`)
			return
		}
		w.WriteHeader(200)
	})
	e := newTestEndpoint(t, "oauth2", idp.tokenURL())
	if err := e.Revoke(context.Background(), "x", HintAccessToken); !errors.Is(err, ErrNoRevocationEndpoint) {
		t.Fatalf("without revocation_url: %v", err)
	}
	e.RevocationURL = idp.URL + "/revoke"
	if err := e.Revoke(context.Background(), "rt-1", HintRefreshToken); err != nil {
		t.Fatal(err)
	}
	r := idp.requests()[0]
	if r.Path != "/revoke" || r.Form.Get("token") != "rt-1" || r.Form.Get("token_type_hint") != "refresh_token" || r.Header.Get("Authorization") != basicOf(testClientID+":"+strings.NewReplacer("+", "%2B", "/", "%2F", ":", "%3A", "=", "%3D", "%", "%25").Replace(testClientSecret)) {
		t.Fatalf("request = %+v", r)
	}
	err := e.Revoke(context.Background(), "bad-token-123", HintAccessToken)
	if err == nil || !strings.Contains(err.Error(), "unsupported_token_type") || strings.Contains(err.Error(), "bad-token-123") {
		t.Fatalf("err = %v", err)
	}
}
