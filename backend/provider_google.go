package backend

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ProviderGoogleServiceAccount is Google's OAuth 2.0 for server-to-server
// applications: a service account signs a JWT (RFC 7523 2.1) with the key
// from its JSON key file, with no client authentication, and the scopes in
// the assertion's scope claim.
const ProviderGoogleServiceAccount = "google-service-account"

func init() {
	providers[ProviderGoogleServiceAccount] = &Provider{
		Name:              ProviderGoogleServiceAccount,
		Title:             "Google service account (JWT bearer grant from a JSON key file)",
		DefaultGrant:      GrantJWTBearer,
		Grants:            []GrantType{GrantJWTBearer},
		ClientAuth:        ClientAuthNone,
		DefaultTokenURL:   "https://oauth2.googleapis.com/token",
		ScopesInAssertion: true,
		ComposeUsername:   plainUsername,
	}
}

// ServiceAccountKey is what the engine takes from a Google service-account
// JSON key file.
type ServiceAccountKey struct {
	ClientEmail  string
	PrivateKey   string
	PrivateKeyID string
	TokenURI     string
}

// ParseServiceAccountKey reads a Google service-account key file. Errors
// never quote the file.
func ParseServiceAccountKey(raw string) (*ServiceAccountKey, error) {
	var f struct {
		Type         string `json:"type"`
		ClientEmail  string `json:"client_email"`
		PrivateKey   string `json:"private_key"`
		PrivateKeyID string `json:"private_key_id"`
		TokenURI     string `json:"token_uri"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(raw)), &f); err != nil {
		return nil, errors.New("is not a JSON service-account key file")
	}
	if f.Type != "service_account" {
		return nil, fmt.Errorf("is a key file of type %q, not service_account", Sanitize(f.Type, 40))
	}
	var missing []string
	for _, x := range []struct{ name, v string }{{"client_email", f.ClientEmail}, {"private_key", f.PrivateKey}, {"private_key_id", f.PrivateKeyID}} {
		if x.v == "" {
			missing = append(missing, x.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("lacks %s", strings.Join(missing, ", "))
	}
	if _, err := ParsePrivateKeyPEM(f.PrivateKey); err != nil {
		return nil, fmt.Errorf("private_key %v", err)
	}
	return &ServiceAccountKey{ClientEmail: f.ClientEmail, PrivateKey: f.PrivateKey, PrivateKeyID: f.PrivateKeyID, TokenURI: f.TokenURI}, nil
}
