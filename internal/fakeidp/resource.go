package fakeidp

import (
	"net/http"
	"strings"
)

// handleResource is the protected API: 200 for a usable bearer token, 401
// otherwise. It is what "the token works" means in tests.
func (s *Server) handleResource(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	const p = "Bearer "
	h := r.Header.Get("Authorization")
	clientID := ""
	if len(h) > len(p) && strings.EqualFold(h[:len(p)], p) {
		s.mu.Lock()
		clientID = s.validLocked(h[len(p):])
		s.mu.Unlock()
	}
	if clientID == "" {
		// RFC 6750 3.1.
		w.Header().Set("WWW-Authenticate", `Bearer realm="fakeidp", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"ok": false, "error": "invalid_token"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "client_id": clientID})
}
