package fakeidp

import (
	"net/http"
	"net/url"
)

// authenticateClient checks client authentication the way the style's
// document prescribes and returns the authenticated client ID.
//
//   - MWI, Screening Eagle: only Authorization: Basic base64(id:secret),
//     with id and secret raw (the documents base64 the plain pair), and no
//     credentials in the body.
//   - MicroTek: only client_id and client_secret in the body; an
//     Authorization header is refused.
//   - MyID, OAuth2: either, not both (RFC 6749 2.3). Basic halves are
//     form-decoded first as RFC 6749 2.3.1 requires.
func (s *Server) authenticateClient(r *http.Request, form url.Values) (string, *oauthError) {
	hdrs := r.Header.Values("Authorization")
	if len(hdrs) > 1 {
		return "", invalidRequest("more than one Authorization header")
	}
	hasHdr := len(hdrs) == 1
	_, bodyID := form["client_id"]
	_, bodySecret := form["client_secret"]

	switch s.opts.Style {
	case StyleMWI, StyleScreeningEagle:
		if !hasHdr {
			return "", invalidClient("client authentication must use the HTTP Basic Authorization header")
		}
		if bodyID || bodySecret {
			return "", invalidRequest("client credentials must not also be sent in the body")
		}
		id, secret, ok := parseBasic(hdrs[0])
		if !ok {
			return "", invalidClient("malformed Basic Authorization header")
		}
		return s.checkClient(id, secret)

	case StyleMicroTek:
		if hasHdr {
			return "", invalidRequest("client credentials must be sent in the body, not an Authorization header")
		}
		if !bodyID || !bodySecret {
			return "", invalidClient("client_id and client_secret are required in the body")
		}
		return s.checkClient(form.Get("client_id"), form.Get("client_secret"))
	}

	// MyID and OAuth2.
	if hasHdr {
		if bodySecret {
			return "", invalidRequest("use one client authentication method, not both")
		}
		rawID, rawSecret, ok := parseBasic(hdrs[0])
		if !ok {
			return "", invalidClient("malformed Basic Authorization header")
		}
		id, err1 := url.QueryUnescape(rawID)
		secret, err2 := url.QueryUnescape(rawSecret)
		if err1 != nil || err2 != nil {
			return "", invalidClient("Basic credentials are not form-encoded")
		}
		// A client_id in the body beside Basic is common and harmless if it
		// names the same client.
		if bodyID && form.Get("client_id") != id {
			return "", invalidRequest("client_id in the body does not match the Authorization header")
		}
		return s.checkClient(id, secret)
	}
	if !bodyID {
		return "", invalidClient("client authentication is required")
	}
	return s.checkClient(form.Get("client_id"), form.Get("client_secret"))
}

// checkClient compares both halves without saying which one was wrong.
func (s *Server) checkClient(id, secret string) (string, *oauthError) {
	if !secureEqual(id, s.opts.ClientID) || !secureEqual(secret, s.opts.ClientSecret) {
		return "", invalidClient("unknown client or wrong secret")
	}
	return id, nil
}
