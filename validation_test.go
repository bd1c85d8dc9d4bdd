package idptokens

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// Bad requests to every path, found by hand and by thinking like a fuzzer:
// each is answered with a 4xx-class error and leaves storage as it was.
// (TestBadInput holds the field-by-field cases for config and roles.)
func TestBadRequestsEveryPath(t *testing.T) {
	huge := strings.Repeat("a", 1<<20)
	cases := []struct {
		name string
		op   logical.Operation
		path string
		data map[string]any
	}{
		{"config: huge client_id", logical.UpdateOperation, "config/x", map[string]any{"client_id": huge}},
		{"config: huge ca_cert", logical.UpdateOperation, "config/x", map[string]any{"ca_cert": huge}},
		{"config: newline in client_id", logical.UpdateOperation, "config/x", map[string]any{"client_id": "a\nb"}},
		{"config: NUL in username", logical.UpdateOperation, "config/x", map[string]any{"username": "a\x00b"}},
		{"config: unicode scope", logical.UpdateOperation, "config/x", map[string]any{"scopes": "lecture,écriture"}},
		{"config: too many scopes", logical.UpdateOperation, "config/x", map[string]any{"scopes": strings.Repeat("s,", 100)}},
		{"config: provider a number", logical.UpdateOperation, "config/x", map[string]any{"provider": []int{1}}},
		{"config: timeout a list", logical.UpdateOperation, "config/x", map[string]any{"request_timeout": []string{"1"}}},
		{"config: bool not a bool", logical.UpdateOperation, "config/x", map[string]any{"allow_insecure_http": "maybe"}},
		{"config: empty body", logical.UpdateOperation, "config/x", map[string]any{}},
		{"config: javascript url", logical.UpdateOperation, "config/x", map[string]any{"token_url": "javascript:alert(1)"}},
		{"config: file url", logical.UpdateOperation, "config/x", map[string]any{"token_url": "file:///etc/passwd"}},
		{"config: fragment url", logical.UpdateOperation, "config/x", map[string]any{"token_url": "https://idp.example/t#frag"}},
		{"config: path traversal name", logical.UpdateOperation, "config/../roles/x", map[string]any{"client_id": "c"}},
		{"config: unicode name", logical.UpdateOperation, "config/δοκιμή", map[string]any{"client_id": "c"}},
		{"config: name with slash", logical.UpdateOperation, "config/a/b", map[string]any{"client_id": "c"}},
		{"roles: path traversal name", logical.UpdateOperation, "roles/../config/c", map[string]any{"config": "c"}},
		{"roles: config a list", logical.UpdateOperation, "roles/x", map[string]any{"config": []string{"c"}}},
		{"roles: huge extra param", logical.UpdateOperation, "roles/x", map[string]any{"config": "c", "extra_params": map[string]any{"audience": huge}}},
		{"roles: empty extra param name", logical.UpdateOperation, "roles/x", map[string]any{"config": "c", "extra_params": map[string]any{"": "v"}}},
		{"roles: ttl a word", logical.UpdateOperation, "roles/x", map[string]any{"config": "c", "ttl": "forever"}},
		{"roles: max_ttl negative", logical.UpdateOperation, "roles/x", map[string]any{"config": "c", "max_ttl": "-1h"}},
		{"roles: grant refresh_token", logical.UpdateOperation, "roles/x", map[string]any{"config": "c", "grant_type": "refresh_token"}},
		{"roles: empty body", logical.UpdateOperation, "roles/x", map[string]any{}},
		{"creds: unknown role", logical.ReadOperation, "creds/nope", nil},
		{"creds: negative min_ttl", logical.ReadOperation, "creds/r", map[string]any{"min_ttl": -5}},
		{"creds: min_ttl a word", logical.ReadOperation, "creds/r", map[string]any{"min_ttl": "soon"}},
		{"creds: path traversal", logical.ReadOperation, "creds/../config/c", nil},
		{"creds: write", logical.UpdateOperation, "creds/r", map[string]any{"x": 1}},
		{"creds: delete", logical.DeleteOperation, "creds/r", nil},
		{"unknown path", logical.ReadOperation, "secrets/x", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.ok(logical.UpdateOperation, "config/c", map[string]any{"token_url": "https://idp.example/token", "client_id": "c", "client_secret": "s"})
			e.ok(logical.UpdateOperation, "roles/r", map[string]any{"config": "c"})
			before := storageKeys(t, e.storage)
			resp, err := e.do(c.op, c.path, c.data)
			if !isClientError(resp, err) {
				t.Fatalf("want a 4xx-class refusal, got resp=%v err=%v", resp, err)
			}
			if after := storageKeys(t, e.storage); !slices.Equal(before, after) {
				t.Fatalf("storage changed: %v -> %v", before, after)
			}
		})
	}
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
