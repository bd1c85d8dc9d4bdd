package idptokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// Bad requests to every path, found by hand and by thinking like a fuzzer:
// each is answered with a 4xx-class error that names its reason (the field,
// or why the path or operation is refused) and leaves storage as it was.
// Config writes carry a complete config besides the bad value, so that each
// is refused for the reason it claims and not for a missing field.
// (TestBadInput holds the field-by-field cases for config and roles.)
func TestBadRequestsEveryPath(t *testing.T) {
	huge := strings.Repeat("a", 1<<20)
	cases := []struct {
		name string
		op   logical.Operation
		path string
		data map[string]any
		want string // in the error text
	}{
		{"config: huge client_id", logical.UpdateOperation, "config/x", goodConfig(map[string]any{"client_id": huge}), "client_id: longer than 4096 bytes"},
		{"config: huge ca_cert", logical.UpdateOperation, "config/x", goodConfig(map[string]any{"ca_cert": huge}), "ca_cert: longer than"},
		{"config: newline in client_id", logical.UpdateOperation, "config/x", goodConfig(map[string]any{"client_id": "a\nb"}), "client_id: contains a control character"},
		{"config: NUL in username", logical.UpdateOperation, "config/x", goodConfig(map[string]any{"username": "a\x00b"}), "username: contains a control character"},
		{"config: unicode scope", logical.UpdateOperation, "config/x", goodConfig(map[string]any{"scopes": "lecture,écriture"}), `scopes: scope "écriture" contains a character RFC 6749 does not allow`},
		{"config: too many scopes", logical.UpdateOperation, "config/x", goodConfig(map[string]any{"scopes": manyScopes(maxScopes + 1)}), "scopes: more than 64 scopes"},
		{"config: provider a number", logical.UpdateOperation, "config/x", goodConfig(map[string]any{"provider": []int{1}}), `field "provider"`},
		{"config: timeout a list", logical.UpdateOperation, "config/x", goodConfig(map[string]any{"request_timeout": []string{"1"}}), `field "request_timeout"`},
		{"config: bool not a bool", logical.UpdateOperation, "config/x", goodConfig(map[string]any{"allow_insecure_http": "maybe"}), `field "allow_insecure_http"`},
		{"config: empty body", logical.UpdateOperation, "config/x", map[string]any{}, "token_url: required"},
		{"config: javascript url", logical.UpdateOperation, "config/x", goodConfig(map[string]any{"token_url": "javascript:alert(1)"}), "token_url:"},
		{"config: file url", logical.UpdateOperation, "config/x", goodConfig(map[string]any{"token_url": "file:///etc/passwd"}), "token_url:"},
		{"config: fragment url", logical.UpdateOperation, "config/x", goodConfig(map[string]any{"token_url": "https://idp.example/t#frag"}), "token_url:"},
		{"config: path traversal name", logical.UpdateOperation, "config/../roles/x", goodConfig(nil), "unsupported path"},
		{"config: unicode name", logical.UpdateOperation, "config/δοκιμή", goodConfig(nil), "unsupported path"},
		{"config: name with slash", logical.UpdateOperation, "config/a/b", goodConfig(nil), "unsupported path"},
		{"roles: path traversal name", logical.UpdateOperation, "roles/../config/c", map[string]any{"config": "c"}, "unsupported path"},
		{"roles: config a list", logical.UpdateOperation, "roles/x", map[string]any{"config": []string{"c"}}, `field "config"`},
		{"roles: huge extra param", logical.UpdateOperation, "roles/x", map[string]any{"config": "c", "extra_params": map[string]any{"audience": huge}}, `extra_params: parameter "audience" is too long`},
		{"roles: empty extra param name", logical.UpdateOperation, "roles/x", map[string]any{"config": "c", "extra_params": map[string]any{"": "v"}}, "extra_params:"},
		{"roles: ttl a word", logical.UpdateOperation, "roles/x", map[string]any{"config": "c", "ttl": "forever"}, `field "ttl"`},
		{"config: sub-second request_timeout", logical.UpdateOperation, "config/x", goodConfig(map[string]any{"request_timeout": "500ms"}), "request_timeout: 500ms is not a whole number of seconds"},
		{"config: fractional default_token_ttl", logical.UpdateOperation, "config/x", goodConfig(map[string]any{"default_token_ttl": 1.5}), "default_token_ttl: 1.5 is not a whole number of seconds"},
		{"roles: sub-second min_ttl", logical.UpdateOperation, "roles/x", map[string]any{"config": "c", "min_ttl": "1500ms"}, "min_ttl: 1500ms is not a whole number of seconds"},
		{"creds: sub-second reader min_ttl", logical.ReadOperation, "creds/x", map[string]any{"min_ttl": "0.5s"}, "min_ttl: 0.5s is not a whole number of seconds"},
		{"roles: max_ttl negative", logical.UpdateOperation, "roles/x", map[string]any{"config": "c", "max_ttl": "-1h"}, `field "max_ttl": cannot provide negative value`},
		{"roles: grant refresh_token", logical.UpdateOperation, "roles/x", map[string]any{"config": "c", "grant_type": "refresh_token"}, "grant_type: must be one of"},
		{"roles: empty body", logical.UpdateOperation, "roles/x", map[string]any{}, "config: required"},
		{"creds: unknown role", logical.ReadOperation, "creds/nope", nil, `no role named "nope"`},
		{"creds: negative min_ttl", logical.ReadOperation, "creds/r", map[string]any{"min_ttl": -5}, `field "min_ttl": cannot provide negative value`},
		{"creds: min_ttl a word", logical.ReadOperation, "creds/r", map[string]any{"min_ttl": "soon"}, `field "min_ttl"`},
		{"creds: path traversal", logical.ReadOperation, "creds/../config/c", nil, "unsupported path"},
		{"creds: write", logical.UpdateOperation, "creds/r", map[string]any{"x": 1}, "unsupported operation"},
		{"creds: delete", logical.DeleteOperation, "creds/r", nil, "unsupported operation"},
		{"unknown path", logical.ReadOperation, "secrets/x", nil, "unsupported path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.ok(logical.UpdateOperation, "config/c", goodConfig(nil))
			e.ok(logical.UpdateOperation, "roles/r", map[string]any{"config": "c"})
			before := storageKeys(t, e.storage)
			resp, err := e.do(c.op, c.path, c.data)
			if !isClientError(resp, err) {
				t.Fatalf("want a 4xx-class refusal, got resp=%v err=%v", resp, err)
			}
			if msg := errorText(resp, err); !strings.Contains(msg, c.want) {
				t.Errorf("refused with %q, want the reason %q", shorten(msg), c.want)
			}
			if after := storageKeys(t, e.storage); !slices.Equal(before, after) {
				t.Fatalf("storage changed: %v -> %v", before, after)
			}
		})
	}
}

// goodConfig is a complete, valid config write with the overrides applied.
func goodConfig(overrides map[string]any) map[string]any {
	d := map[string]any{"token_url": "https://idp.example/token", "client_id": "c", "client_secret": "s"}
	for k, v := range overrides {
		d[k] = v
	}
	return d
}

// manyScopes is n distinct valid scopes, comma-separated.
func manyScopes(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("scope%d", i)
	}
	return strings.Join(s, ",")
}

// errorText is the refusal's text: the response's error, else the error's.
func errorText(resp *logical.Response, err error) string {
	if msg := respErr(resp); msg != "" {
		return msg
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// shorten cuts a refusal for a test message (some quote 1 MiB).
func shorten(msg string) string {
	if len(msg) > 300 {
		return msg[:300] + "…"
	}
	return msg
}

// isClientError: a user error response, or one of the SDK errors Vault maps
// to 4xx (unsupported path or operation: 404/405, permission: 403).
func isClientError(resp *logical.Response, err error) bool {
	if err == nil {
		return resp != nil && resp.IsError()
	}
	return errors.Is(err, logical.ErrUnsupportedPath) || errors.Is(err, logical.ErrUnsupportedOperation) ||
		errors.Is(err, logical.ErrInvalidRequest) || errors.Is(err, logical.ErrPermissionDenied) ||
		(resp != nil && resp.IsError())
}

func storageKeys(t *testing.T, s logical.Storage) []string {
	t.Helper()
	var all []string
	var walk func(prefix string)
	walk = func(prefix string) {
		keys, err := s.List(context.Background(), prefix)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if strings.HasSuffix(k, "/") {
				walk(prefix + k)
			} else {
				all = append(all, prefix+k)
			}
		}
	}
	walk("")
	slices.Sort(all)
	return all
}
