package fakeidp

import (
	"mime"
	"net/http"
	"net/url"
	"slices"
)

// handleAuthorize stands in for the interactive login: it validates the
// authorization request and approves it at once. MyID's document says the
// request is posted, OIDC allows GET too, so both are accepted.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	var q url.Values
	switch r.Method {
	case http.MethodGet:
		q = r.URL.Query()
	case http.MethodPost:
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/x-www-form-urlencoded" || r.ParseForm() != nil {
			http.Error(w, "authorization request must be a form post", http.StatusBadRequest)
			return
		}
		q = r.PostForm
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}

	// RFC 6749 4.1.2.1: with a bad client or redirect_uri the user must not be
	// sent anywhere, so those are plain 400s.
	if len(q["client_id"]) != 1 || q.Get("client_id") != s.opts.ClientID {
		http.Error(w, "invalid client_id", http.StatusBadRequest)
		return
	}
	redirect := q.Get("redirect_uri")
	if len(q["redirect_uri"]) != 1 || !slices.Contains(s.opts.RedirectURIs, redirect) {
		http.Error(w, "redirect_uri is missing or not registered for this client", http.StatusBadRequest)
		return
	}
	target, err := url.Parse(redirect)
	if err != nil || !target.IsAbs() {
		http.Error(w, "redirect_uri must be an absolute URL", http.StatusBadRequest)
		return
	}

	code, desc := s.checkAuthorize(q)
	params := target.Query()
	if code != "" {
		params.Set("error", code)
		params.Set("error_description", desc)
	} else {
		// fake_user (a test's stand-in for who logs in at the form) is the
		// subject; nonce goes into the ID token.
		params.Set("code", s.IssueCodeFor(q.Get("fake_user"), q.Get("nonce"), redirect, q.Get("scope"), q.Get("code_challenge")))
	}
	if st := q.Get("state"); st != "" {
		params.Set("state", st)
	}
	target.RawQuery = params.Encode()
	http.Redirect(w, r, target.String(), http.StatusFound)
}

// checkAuthorize returns an RFC 6749 4.1.2.1 error code and description, or
// "" when the request may be approved.
func (s *Server) checkAuthorize(q url.Values) (code, desc string) {
	for k, vs := range q {
		if len(vs) > 1 {
			return "invalid_request", "parameter " + k + " sent more than once"
		}
	}
	switch rt := q.Get("response_type"); rt {
	case "code":
	case "":
		return "invalid_request", "response_type is required"
	default:
		return "unsupported_response_type", "only response_type=code is supported"
	}
	// MyID's document says scope is set to myid.rest.basic, so it is required.
	if e := s.checkScope(q.Get("scope"), s.opts.Style == StyleMyID); e != nil {
		return e.code, e.desc
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return "invalid_request", "code_challenge_method without code_challenge"
	case challenge == "":
	case method != "S256":
		// plain (or the RFC 7636 default of plain when omitted) is refused:
		// the plugin must hash its verifier.
		return "invalid_request", "code_challenge_method must be S256"
	case !pkceValueOK(challenge) || len(challenge) != 43:
		return "invalid_request", "code_challenge is not an S256 challenge"
	}
	return "", ""
}
