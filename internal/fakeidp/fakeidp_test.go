package fakeidp

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The secret has characters that differ between raw and form-encoded Basic
// credentials, so each style's choice is actually exercised.
const (
	testID     = "client-1"
	testSecret = "p@ss:w+rd%/="
	mwiUser    = `lbso\11112222\testuser\testseckey`
	mwiPass    = "testpassword"
	redirect   = "https://app.example/callback"
	verifier   = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)

// call is one HTTP request to the fake, built by the table tests.
type call struct {
	method string // default POST
	path   string // default the style's token path
	ctype  string // default form; "-" sends none
	auth   string // Authorization header value
	form   url.Values
	query  string
	raw    string // body sent verbatim instead of form
}

// rawBasic is the header the MWI and Screening Eagle documents show.
func rawBasic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

// formBasic is RFC 6749 2.3.1: each half form-encoded before base64.
func formBasic(id, secret string) string {
	return rawBasic(url.QueryEscape(id), url.QueryEscape(secret))
}

type result struct {
	status int
	header http.Header
	json   map[string]any
	text   string
}

func do(t *testing.T, ts *httptest.Server, s *Server, c call) result {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	if c.path == "" {
		c.path = s.TokenPath()
	}
	body := c.raw
	if body == "" && c.form != nil {
		body = c.form.Encode()
	}
	u := ts.URL + c.path
	if c.query != "" {
		u += "?" + c.query
	}
	req, err := http.NewRequest(c.method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	switch c.ctype {
	case "":
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	case "-":
	default:
		req.Header.Set("Content-Type", c.ctype)
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	cl := *ts.Client() // a copy: tests run requests concurrently
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, header: resp.Header, text: string(b)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &r.json); err != nil {
			t.Fatalf("bad JSON %q: %v", b, err)
		}
	}
	return r
}

func newFake(t *testing.T, o Options) (*Server, *httptest.Server) {
	t.Helper()
	if o.ClientID == "" {
		o.ClientID, o.ClientSecret = testID, testSecret
	}
	s := New(o)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

// wantError checks status, code and the style's error format.
func wantError(t *testing.T, s *Server, r result, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d (body %s)", r.status, status, r.text)
	}
	if r.json["error"] != code {
		t.Fatalf("error = %v, want %q (body %s)", r.json["error"], code, r.text)
	}
	good, bad := "error_description", "errorDescription"
	if s.opts.Style == StyleScreeningEagle {
		good, bad = bad, good
	}
	if _, ok := r.json[good]; !ok {
		t.Fatalf("no %s in %s", good, r.text)
	}
	if _, ok := r.json[bad]; ok {
		t.Fatalf("unexpected %s in %s", bad, r.text)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control = %q", r.header.Get("Cache-Control"))
	}
}

// wantToken checks a success body and returns it. If keys is not empty it
// lists the optional members that must be present; the others must be absent.
func wantToken(t *testing.T, r result, keys ...string) map[string]any {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status = %d, want 200 (body %s)", r.status, r.text)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control = %q", r.header.Get("Cache-Control"))
	}
	if tok, _ := r.json["access_token"].(string); tok == "" {
		t.Fatalf("no access_token in %s", r.text)
	}
	if r.json["token_type"] != "Bearer" {
		t.Fatalf("token_type = %v", r.json["token_type"])
	}
	if len(keys) == 0 {
		return r.json
	}
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	for _, k := range []string{"expires_in", "scope", "refresh_token", "id_token"} {
		if _, ok := r.json[k]; ok != want[k] {
			t.Fatalf("%s present = %v, want %v (body %s)", k, ok, want[k], r.text)
		}
	}
	return r.json
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// with returns a copy of v with k set (or removed when val is "-").
func with(v url.Values, k, val string) url.Values {
	out := cloneValues(v)
	if val == "-" {
		out.Del(k)
	} else {
		out.Set(k, val)
	}
	return out
}

func resource(t *testing.T, ts *httptest.Server, tok string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/resource", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
