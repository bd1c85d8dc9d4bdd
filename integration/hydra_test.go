//go:build integration

package integration

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Hydra is Ory Hydra (OpenID Certified) run with DSN=memory on loopback,
// built from its Go module by scripts/install-hydra.sh. Its public port is
// reached through a recording proxy, which is the address Hydra names as
// its issuer (so that client assertions' aud is the proxy's token URL):
// the proxy notes each token request's assertion kid and answer.
type Hydra struct {
	Issuer   string // http://127.0.0.1:<proxy>/
	TokenURL string
	admin    string
	rec      *assertionLog
}

// StartHydra runs `hydra serve all --dev` (http on loopback) with
// access tokens of tokenTTL.
func StartHydra(t *testing.T, tokenTTL time.Duration) *Hydra {
	t.Helper()
	requireSetup(t)
	bin := hydraInstall.get(t)
	public, admin := freePort(t), freePort(t)
	rec := &assertionLog{}
	target, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", public))
	proxy := httputil.NewSingleHostReverseProxy(target)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rec.wrap(proxy, "/oauth2/token"), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	issuer := "http://" + ln.Addr().String() + "/"

	logPath := filepath.Join(t.TempDir(), "hydra.log")
	env := append(os.Environ(),
		"DSN=memory",
		"SERVE_PUBLIC_HOST=127.0.0.1", fmt.Sprintf("SERVE_PUBLIC_PORT=%d", public),
		"SERVE_ADMIN_HOST=127.0.0.1", fmt.Sprintf("SERVE_ADMIN_PORT=%d", admin),
		"URLS_SELF_ISSUER="+issuer, "URLS_SELF_PUBLIC="+issuer,
		"SECRETS_SYSTEM=idp-tokens-integration-hydra-secret",
		"TTL_ACCESS_TOKEN="+tokenTTL.String(),
		"LOG_LEVEL=warn")
	startProc(t, "hydra", logPath, env, bin, "serve", "all", "--dev", "--sqa-opt-out")
	h := &Hydra{Issuer: issuer, TokenURL: issuer + "oauth2/token", admin: fmt.Sprintf("http://127.0.0.1:%d", admin), rec: rec}
	if !eventually(60*time.Second, 200*time.Millisecond, func() bool {
		resp, err := http.Get(h.admin + "/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("Hydra did not become ready:\n%s", tail(logPath, 30))
	}
	return h
}

// CreateClient registers an OAuth2 client through the admin API.
func (h *Hydra) CreateClient(t *testing.T, client map[string]any) {
	t.Helper()
	body, _ := json.Marshal(client)
	resp, err := http.Post(h.admin+"/admin/clients", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("Hydra refused the client: %d %s", resp.StatusCode, out)
	}
}

// Introspect asks Hydra's admin introspection endpoint about token.
func (h *Hydra) Introspect(t *testing.T, token string) map[string]any {
	t.Helper()
	resp, err := http.PostForm(h.admin+"/admin/oauth2/introspect", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// seenAssertion is one token request an IdP took: when, its answer's
// status, and the kid of its client assertion and grant assertion.
type seenAssertion struct {
	At        time.Time
	Client    string
	Grant     string
	Status    int
	ClientKid string
	GrantKid  string
}

// assertionLog records the token requests that go through a proxy.
type assertionLog struct {
	mu   sync.Mutex
	seen []seenAssertion
}

func (l *assertionLog) all() []seenAssertion {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]seenAssertion(nil), l.seen...)
}

// wrap records POSTs to path: the form's assertions and the answer.
func (l *assertionLog) wrap(next http.Handler, path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != path {
			next.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		s := seenAssertion{At: time.Now(), Client: form.Get("client_id"), Grant: form.Get("grant_type"),
			ClientKid: jwsKid(form.Get("client_assertion")), GrantKid: jwsKid(form.Get("assertion"))}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		s.Status = sw.status
		l.mu.Lock()
		l.seen = append(l.seen, s)
		l.mu.Unlock()
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// jwsKid is the kid of a compact JWS's header ("" when none).
func jwsKid(jws string) string {
	head, _, ok := strings.Cut(jws, ".")
	if !ok {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(raw, &h)
	return h.Kid
}
