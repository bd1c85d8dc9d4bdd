package idptokens

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// Hints name the mount the request came in on.
func TestHintsNameTheMount(t *testing.T) {
	a := setupMyID(t, fakeidp.Options{}, nil)
	resp, err := a.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.ReadOperation, Path: "creds/myid", Storage: a.storage, MountPoint: "team-a/tokens/",
	})
	if err != nil || !strings.Contains(respErr(resp), "vault write -f team-a/tokens/auth-url/myid") {
		t.Fatalf("needs-login hint: %v %q", err, respErr(resp))
	}
	resp, _ = a.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.UpdateOperation, Path: "roles/r", Storage: a.storage, MountPoint: "team-a/tokens/", Data: map[string]any{"config": "nope"},
	})
	if !strings.Contains(respErr(resp), "write team-a/tokens/config/nope first") {
		t.Fatalf("missing-config hint: %q", respErr(resp))
	}
}
