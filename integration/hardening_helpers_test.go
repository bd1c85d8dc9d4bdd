//go:build integration

package integration

// Helpers of the hardening tests (audit, load, HA): a recorder of every
// token the fake IdP issues, and a plain net/http reader of creds.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// recordingIdP is a fake IdP whose issued tokens (access, refresh, id) are
// all recorded from its responses, so tests can look for them in logs.
type recordingIdP struct {
	*FakeIdP
	mu     sync.Mutex
	issued []string
}

// startRecordingIdP serves fakeidp.New(opts) on loopback, recording tokens.
func startRecordingIdP(t *testing.T, opts fakeidp.Options) *recordingIdP {
	t.Helper()
	srv := fakeidp.New(opts)
	r := &recordingIdP{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := &teeWriter{ResponseWriter: w}
		srv.ServeHTTP(rec, req)
		var body struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
			IDToken      string `json:"id_token"`
		}
		if json.Unmarshal(rec.buf.Bytes(), &body) == nil {
			r.mu.Lock()
			for _, tok := range []string{body.AccessToken, body.RefreshToken, body.IDToken} {
				if tok != "" {
					r.issued = append(r.issued, tok)
				}
			}
			r.mu.Unlock()
		}
	}))
	t.Cleanup(hs.Close)
	r.FakeIdP = &FakeIdP{Server: srv, URL: hs.URL, opts: opts}
	return r
}

// Issued is every token the IdP has handed out so far.
func (r *recordingIdP) Issued() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.issued...)
}

type teeWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (w *teeWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	return w.ResponseWriter.Write(p)
}

// credsReader reads creds through Vault's HTTP API with keep-alive.
type credsReader struct {
	client *http.Client
	token  string
}

func newCredsReader(token string, conns int) *credsReader {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
	}
	return &credsReader{client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, token: token}
}

// read GETs addr/v1/idp/creds/role and returns the access token.
func (c *credsReader) read(addr, role string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, addr+"/v1/idp/creds/"+role, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("X-Vault-Token", c.token)
	resp, err := c.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	var out struct {
		Data struct {
			AccessToken string `json:"access_token"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Data.AccessToken == "" {
		return "", fmt.Errorf("no access_token in %q (%v)", body, err)
	}
	return out.Data.AccessToken, nil
}

func (c *credsReader) close() { c.client.CloseIdleConnections() }
