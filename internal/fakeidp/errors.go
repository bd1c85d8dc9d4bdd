package fakeidp

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// oauthError is a token- or revocation-endpoint error before it is written in
// the style's format.
type oauthError struct {
	status int
	code   string
	desc   string
}

func errf(status int, code, desc string) *oauthError {
	return &oauthError{status: status, code: code, desc: desc}
}

func invalidRequest(desc string) *oauthError { return errf(400, "invalid_request", desc) }
func invalidClient(desc string) *oauthError  { return errf(401, "invalid_client", desc) }
func invalidGrant(desc string) *oauthError   { return errf(400, "invalid_grant", desc) }
func invalidScope(desc string) *oauthError   { return errf(400, "invalid_scope", desc) }

// injectedError picks a plausible error code for a status forced by FailNext
// or SetFailEvery.
func injectedError(status int) *oauthError {
	code := "invalid_request"
	switch {
	case status == http.StatusUnauthorized:
		code = "invalid_client"
	case status == http.StatusForbidden:
		code = "access_denied"
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		code = "temporarily_unavailable"
	case status >= 500:
		code = "server_error"
	}
	return errf(status, code, "injected failure ("+strconv.Itoa(status)+")")
}

// writeError answers e in the style's format: Screening Eagle documents
// {"error","errorDescription"} (camelCase); everyone else uses RFC 6749 5.2.
func (s *Server) writeError(w http.ResponseWriter, e *oauthError) {
	descKey := "error_description"
	if s.opts.Style == StyleScreeningEagle {
		descKey = "errorDescription"
	}
	h := w.Header()
	if e.status == http.StatusUnauthorized {
		// RFC 6749 5.2: a 401 carries the scheme the client should use.
		h.Set("WWW-Authenticate", `Basic realm="fakeidp"`)
	}
	if e.status == http.StatusTooManyRequests {
		h.Set("Retry-After", "1")
	}
	writeJSON(w, e.status, map[string]any{"error": e.code, descKey: e.desc})
}

// writeJSON sends v with the headers RFC 6749 5.1 requires on token answers.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
