package fakeidp

import "net/http"

// handleRevocation is RFC 7009: the client authenticates as it does at the
// token endpoint, and any token, known or not, is answered 200.
func (s *Server) handleRevocation(w http.ResponseWriter, r *http.Request) {
	form, parseErr := readForm(r)
	if e := checkPost(r, form, parseErr); e != nil {
		s.writeError(w, e)
		return
	}
	clientID, e := s.authenticateClient(r, form)
	if e != nil {
		s.writeError(w, e)
		return
	}
	tok := form.Get("token")
	if tok == "" {
		s.writeError(w, invalidRequest("token is required"))
		return
	}
	s.mu.Lock()
	s.revokeLocked(clientID, tok)
	s.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
