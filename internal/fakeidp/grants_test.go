package fakeidp

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The fakes of the extension grants refuse what a strict server refuses, so a
// plugin test passing against them proves the wire format.

func postForm(t *testing.T, u string, form url.Values, user, pass string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestJWTBearerFakeIsStrict(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	j := NewJWTBearer(JWTBearerOptions{Key: &key.PublicKey, KeyID: "k", Issuer: "svc", Google: true, Scope: "s"})
	srv := httptest.NewServer(j)
	defer srv.Close()
	sign := func(k *rsa.PrivateKey, jti string, extra map[string]any) string {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", "k"))
		now := time.Now()
		out, _ := jwt.Signed(s).Claims(jwt.Claims{Issuer: "svc", Audience: jwt.Audience{srv.URL + "/token"}, ID: jti,
			IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute))}).Claims(extra).Serialize()
		return out
	}
	good := url.Values{"grant_type": {JWTBearerGrantType}, "assertion": {sign(key, "1", map[string]any{"scope": "s"})}}
	if st, body := postForm(t, srv.URL+"/token", good, "", ""); st != 200 || !j.Valid(body["access_token"].(string)) {
		t.Fatalf("a good assertion: %d %v", st, body)
	}
	for _, c := range []struct {
		name string
		form url.Values
		user string
		want string
	}{
		{"replayed jti", good, "", "jti replayed"},
		{"other key", url.Values{"grant_type": {JWTBearerGrantType}, "assertion": {sign(other, "2", map[string]any{"scope": "s"})}}, "", "does not verify"},
		{"wrong scope claim", url.Values{"grant_type": {JWTBearerGrantType}, "assertion": {sign(key, "3", map[string]any{"scope": "x"})}}, "", "scope claim"},
		{"scope in the form", url.Values{"grant_type": {JWTBearerGrantType}, "scope": {"s"}, "assertion": {sign(key, "4", map[string]any{"scope": "s"})}}, "", "unexpected parameter scope"},
		{"client authentication", url.Values{"grant_type": {JWTBearerGrantType}, "assertion": {sign(key, "5", map[string]any{"scope": "s"})}}, "c", "no client authentication"},
	} {
		if st, body := postForm(t, srv.URL+"/token", c.form, c.user, "p"); st == 200 || !strings.Contains(body["error_description"].(string), c.want) {
			t.Errorf("%s: %d %v, want a refusal containing %q", c.name, st, body, c.want)
		}
	}
}

func TestTokenExchangeFakeIsStrict(t *testing.T) {
	x := NewTokenExchange(TokenExchangeOptions{ClientID: "c", ClientSecret: "s", ValidSubject: func(s string) bool { return s == "good" },
		Audience: []string{"a", "b"}})
	srv := httptest.NewServer(x)
	defer srv.Close()
	base := func() url.Values {
		return url.Values{"grant_type": {TokenExchangeGrantType}, "subject_token": {"good"}, "subject_token_type": {AccessTokenType}, "audience": {"a", "b"}}
	}
	if st, body := postForm(t, srv.URL, base(), "c", "s"); st != 200 || body["issued_token_type"] != AccessTokenType {
		t.Fatalf("good exchange: %d %v", st, body)
	}
	for _, c := range []struct {
		name   string
		change func(url.Values)
		want   string
	}{
		{"unknown subject", func(f url.Values) { f.Set("subject_token", "bad") }, "subject_token is not an active"},
		{"one audience missing", func(f url.Values) { f["audience"] = []string{"a"} }, "audience"},
		{"actor without type", func(f url.Values) { f.Set("actor_token", "good") }, "actor_token_type"},
		{"subject type missing", func(f url.Values) { f.Del("subject_token_type") }, "subject_token_type"},
	} {
		f := base()
		c.change(f)
		if st, body := postForm(t, srv.URL, f, "c", "s"); st == 200 || !strings.Contains(body["error_description"].(string), c.want) {
			t.Errorf("%s: %d %v, want a refusal containing %q", c.name, st, body, c.want)
		}
	}
}

func TestDeviceFakeIsStrict(t *testing.T) {
	d := NewDevice(DeviceOptions{ClientID: "c", ClientSecret: "s", Scope: "x", Interval: 60})
	srv := httptest.NewServer(d)
	defer srv.Close()
	st, auth := postForm(t, srv.URL+"/device", url.Values{"scope": {"x"}}, "c", "s")
	if st != 200 || auth["interval"] != float64(60) {
		t.Fatalf("device authorization: %d %v", st, auth)
	}
	poll := url.Values{"grant_type": {DeviceGrantType}, "device_code": {auth["device_code"].(string)}}
	if _, body := postForm(t, srv.URL+"/token", poll, "c", "s"); body["error"] != "authorization_pending" {
		t.Fatalf("first poll: %v", body)
	}
	if _, body := postForm(t, srv.URL+"/token", poll, "c", "s"); body["error"] != "slow_down" {
		t.Fatalf("a poll before the interval: %v, want slow_down", body)
	}
	if _, early, _ := d.Stats(); early != 1 {
		t.Fatalf("too-early polls counted %d, want 1", early)
	}
	if st, _ := postForm(t, srv.URL+"/token", poll, "c", "wrong"); st != 401 {
		t.Fatalf("wrong client secret: %d", st)
	}
}
