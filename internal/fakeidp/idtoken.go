package fakeidp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"
)

// idToken makes an HS256 JWT shaped like Screening Eagle's, signed with a
// per-server key: plugins may store or pass it on but must not need to
// verify it.
func (s *Server) idToken(clientID, subject string, ttl time.Duration) string {
	now := s.now()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	head := enc(map[string]string{"alg": "HS256", "typ": "JWT"})
	claims := enc(map[string]any{
		"iss": "fakeidp",
		"aud": clientID,
		"sub": subject,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	})
	mac := hmac.New(sha256.New, s.idKey)
	mac.Write([]byte(head + "." + claims))
	return head + "." + claims + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
