package fakeidp

import (
	"encoding/json"
	"net/http"
)

// Discovery: the server's metadata at /.well-known/openid-configuration
// (OpenID Connect Discovery 1.0), with the server's own URL as issuer.

// SetMetadata replaces the metadata document: fn gets the server's base
// URL and returns the JSON to serve; "" serves 404. nil restores the
// server's own document.
func (s *Server) SetMetadata(fn func(base string) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metadata = fn
}

func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	base := "http://" + r.Host
	s.mu.Lock()
	fn := s.metadata
	s.mu.Unlock()
	var doc []byte
	if fn != nil {
		doc = []byte(fn(base))
	} else {
		doc = s.ownMetadata(base)
	}
	if len(doc) == 0 {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(doc)
}

// ownMetadata describes the endpoints and client authentication this
// style has.
func (s *Server) ownMetadata(base string) []byte {
	md := map[string]any{
		"issuer":                                base,
		"token_endpoint":                        base + s.tokenPath,
		"revocation_endpoint":                   base + "/connect/revocation",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
	}
	if s.hasAuthorize() {
		md["authorization_endpoint"] = base + "/connect/authorize"
	}
	if s.opts.DeviceCodes {
		md["device_authorization_endpoint"] = base + "/device"
	}
	if s.opts.OIDC {
		md["jwks_uri"] = base + "/jwks"
	}
	raw, _ := json.Marshal(md)
	return raw
}
