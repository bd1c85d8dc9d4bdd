package backend

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/testkeys"
)

func TestParseServiceAccountKey(t *testing.T) {
	keyPEM, _ := testkeys.RSA(t, 2048)
	raw, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": "a@p.iam.gserviceaccount.com",
		"private_key": keyPEM, "private_key_id": "kid", "token_uri": "https://oauth2.googleapis.com/token"})
	k, err := ParseServiceAccountKey(string(raw))
	if err != nil || k.ClientEmail != "a@p.iam.gserviceaccount.com" || k.PrivateKeyID != "kid" || k.TokenURI != "https://oauth2.googleapis.com/token" || k.PrivateKey != keyPEM {
		t.Fatalf("%+v %v", k, err)
	}
	for _, c := range []struct{ file, want string }{
		{`{"type":"authorized_user"}`, "not service_account"},
		{`{"type":"service_account","client_email":"a"}`, "lacks private_key, private_key_id"},
		{`not json`, "not a JSON"},
		{`{"type":"service_account","client_email":"a","private_key_id":"k","private_key":"-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----"}`, "private_key"},
	} {
		_, err := ParseServiceAccountKey(c.file)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "QUJD") {
			t.Errorf("%s: %v, want an error containing %q that does not quote the key", c.file, err, c.want)
		}
	}
}
