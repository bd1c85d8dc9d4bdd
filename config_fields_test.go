package idptokens

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// FuzzConfigFields writes arbitrary values to a config and a role through
// the framework's field parsing: a write never panics, either is refused or
// stores something that reads back without any secret, and a refused write
// stores nothing.
func FuzzConfigFields(f *testing.F) {
	f.Add("mwi", "https://identity.magicwrighter.com/connect/token", "client", "secret", "basic", `11112222`, "testuser", "testseckey", "test_api", "30", "audience=x")
	f.Add("microtek", "", "00000000-0000-0000-0000-000000000000", "password", "post", "", "", "", "public-api", "", "")
	f.Add("oauth2", "http://127.0.0.1:1/t", "c", "s", "jwt", "", "a\\b", "", "a b", "-1", "=")
	f.Add("screening-eagle", "https://u:p@x/t#f", "", "s", "", "", "", "", "openid,email", "1h", "client_secret=x")
	f.Fuzz(func(t *testing.T, provider, tokenURL, clientID, secret, clientAuth, accessCode, username, securityKey, scopes, timeout, extra string) {
		// A marker no preset default or plain field holds, so that finding
		// it in a read means a secret leaked, not a coincidence.
		const marker = "zq9-secret-"
		for _, plain := range []string{provider, tokenURL, clientID, clientAuth, accessCode, username, scopes, timeout, extra} {
			if strings.Contains(plain, marker) {
				t.Skip()
			}
		}
		secret, securityKey = marker+secret, marker+"k"+securityKey
		e := newTestEnv(t)
		data := map[string]any{
			"provider": provider, "token_url": tokenURL, "client_id": clientID, "client_secret": secret,
			"client_auth": clientAuth, "access_code": accessCode, "username": username,
			"security_key": securityKey, "password": secret, "scopes": scopes, "request_timeout": timeout,
		}
		resp, err := e.do(logical.UpdateOperation, "config/f", data)
		stored, _ := e.storage.Get(context.Background(), "config/f")
		if err != nil || resp.IsError() {
			if stored != nil {
				t.Fatalf("a refused config was stored: %v %v", err, respErr(resp))
			}
			return
		}
		read := e.ok(logical.ReadOperation, "config/f", nil)
		for k, v := range read.Data {
			if s, ok := v.(string); ok && strings.Contains(s, marker) {
				t.Fatalf("read field %s shows a secret", k)
			}
		}
		for _, f := range secretFields {
			if _, has := read.Data[f]; has {
				t.Fatalf("read shows %s", f)
			}
		}
		resp, err = e.do(logical.UpdateOperation, "roles/f", map[string]any{"config": "f", "scopes": scopes, "extra_params": extra, "ttl": timeout})
		roleStored, _ := e.storage.Get(context.Background(), "roles/f")
		if (err != nil || resp.IsError()) && roleStored != nil {
			t.Fatal("a refused role was stored")
		}
	})
}
