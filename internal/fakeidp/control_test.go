package fakeidp

import (
	"encoding/json"
	"net/http"
	"testing"
)

func ccCall() call {
	return call{auth: formBasic(testID, testSecret), form: form("grant_type", "client_credentials")}
}

// SingleActive: every issue, of any grant, kills the client's earlier tokens.
func TestSingleActive(t *testing.T) {
	s, ts := newFake(t, Options{SingleActive: true, RefreshTokens: true, RedirectURIs: []string{redirect}})
	first := wantToken(t, do(t, ts, s, ccCall()))
	code := s.IssueCode(redirect, "", "")
	second := wantToken(t, do(t, ts, s, call{auth: formBasic(testID, testSecret),
		form: form("grant_type", "authorization_code", "code", code, "redirect_uri", redirect)}))
	if s.Valid(first["access_token"].(string)) {
		t.Fatal("a code exchange left the earlier token alive")
	}
	if _, dead := s.KilledAt(first["access_token"].(string)); !dead {
		t.Fatal("KilledAt does not say the superseded token died")
	}
	if by, _ := s.KilledBy(first["access_token"].(string)); by != "authorization_code" {
		t.Fatalf("KilledBy = %q, want the code exchange that superseded it", by)
	}
	if _, dead := s.KilledBy(second["access_token"].(string)); dead {
		t.Fatal("KilledBy names a killer of a live token")
	}
	refresh := func(rt string) result {
		return do(t, ts, s, call{auth: formBasic(testID, testSecret), form: form("grant_type", "refresh_token", "refresh_token", rt)})
	}
	wantError(t, s, refresh(first["refresh_token"].(string)), 400, "invalid_grant")
	third := wantToken(t, refresh(second["refresh_token"].(string)))
	if s.Valid(second["access_token"].(string)) || !s.Valid(third["access_token"].(string)) {
		t.Fatal("a refresh did not replace the earlier token")
	}

	plain, pts := newFake(t, Options{})
	a := wantToken(t, do(t, pts, plain, ccCall()))
	wantToken(t, do(t, pts, plain, ccCall()))
	if !plain.Valid(a["access_token"].(string)) {
		t.Fatal("without SingleActive a second token killed the first")
	}
}

func TestRefuseRefreshes(t *testing.T) {
	s, ts := newFake(t, Options{RefreshTokens: true})
	tok := wantToken(t, do(t, ts, s, ccCall()))
	s.RefuseRefreshes()
	r := do(t, ts, s, call{auth: formBasic(testID, testSecret), form: form("grant_type", "refresh_token", "refresh_token", tok["refresh_token"].(string))})
	wantError(t, s, r, 400, "invalid_grant")
	if !s.Valid(tok["access_token"].(string)) {
		t.Fatal("RefuseRefreshes killed an access token")
	}
	// Refresh tokens issued later work.
	next := wantToken(t, do(t, ts, s, ccCall()))
	wantToken(t, do(t, ts, s, call{auth: formBasic(testID, testSecret), form: form("grant_type", "refresh_token", "refresh_token", next["refresh_token"].(string))}))
}

// The hook runs while the request is in flight: the token is minted, the
// answer not yet written.
func TestSetBeforeAnswer(t *testing.T) {
	s, ts := newFake(t, Options{SingleActive: true})
	var grants []string
	var minted, inFlight int
	s.SetBeforeAnswer(func(grant string) {
		grants = append(grants, grant)
		minted = len(s.IssuedAccessTokens())
		s.mu.Lock()
		inFlight = s.inFlight
		s.mu.Unlock()
	})
	wantToken(t, do(t, ts, s, ccCall()))
	if len(grants) != 1 || grants[0] != "client_credentials" || minted != 1 || inFlight != 1 {
		t.Fatalf("hook saw grants %v, %d minted, %d in flight; want one client_credentials, 1, 1", grants, minted, inFlight)
	}
	s.SetBeforeAnswer(nil)
	wantToken(t, do(t, ts, s, ccCall()))
	if len(grants) != 1 {
		t.Fatal("the hook ran after it was turned off")
	}
}

func TestDiscoveryNamesDeviceEndpoint(t *testing.T) {
	_, ts := newFake(t, Options{DeviceCodes: true})
	resp, err := http.Get(ts.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	if md["device_authorization_endpoint"] != ts.URL+"/device" {
		t.Fatalf("metadata %v", md)
	}
}
