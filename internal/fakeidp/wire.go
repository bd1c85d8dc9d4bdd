package fakeidp

import (
	"crypto/subtle"
	"encoding/base64"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

const maxBody = 1 << 20

// readForm reads the body as a form whatever the Content-Type, so the
// recorder shows what was really sent; checkPost judges the request itself.
func readForm(r *http.Request) (url.Values, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return nil, err
	}
	return url.ParseQuery(string(body))
}

// checkPost enforces what every document shows: a POST whose body is
// application/x-www-form-urlencoded, each parameter once (RFC 6749 3.2), and
// nothing in the query string, where secrets would end up in access logs.
func checkPost(r *http.Request, form url.Values, parseErr error) *oauthError {
	if r.Method != http.MethodPost {
		return errf(http.StatusMethodNotAllowed, "invalid_request", "only POST is accepted")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return invalidRequest("Content-Type must be application/x-www-form-urlencoded")
	}
	if r.URL.RawQuery != "" {
		return invalidRequest("parameters must be sent in the request body, not the URL")
	}
	if parseErr != nil {
		return invalidRequest("malformed form body")
	}
	for k, vs := range form {
		if len(vs) > 1 {
			return invalidRequest("parameter " + k + " sent more than once")
		}
	}
	return nil
}

// parseBasic splits an Authorization: Basic header without any decoding of
// the two halves; callers decide whether they are form-encoded.
func parseBasic(h string) (user, pass string, ok bool) {
	const p = "Basic "
	if len(h) < len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", "", false
	}
	dec, err := base64.StdEncoding.DecodeString(h[len(p):])
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(dec), ":")
}

func secureEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// checkScope splits scope on single spaces (RFC 6749 3.3) and requires each
// entry to be one the client may ask for. A comma-joined list is one unknown
// scope, so it fails too, which is the point.
func (s *Server) checkScope(scope string, required bool) *oauthError {
	if scope == "" {
		if required {
			return invalidRequest("scope is required")
		}
		return nil
	}
	for _, sc := range strings.Split(scope, " ") {
		if sc == "" {
			return invalidScope("scope must be single-space separated")
		}
		if !slices.Contains(s.opts.Scopes, sc) {
			return invalidScope("scope " + sc + " is not allowed for this client")
		}
	}
	return nil
}

// scopeSubset reports whether every entry of req is in granted.
func scopeSubset(req, granted string) bool {
	have := strings.Split(granted, " ")
	for _, sc := range strings.Split(req, " ") {
		if !slices.Contains(have, sc) {
			return false
		}
	}
	return true
}
