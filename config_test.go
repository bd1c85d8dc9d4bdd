package idptokens

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// request_timeout is the one bound of a token request: it governs every
// try and wait, and the HTTP client; values outside 1s..90s are refused.
func TestRequestTimeoutIsOneBound(t *testing.T) {
	m := setupMicroTek(t, time.Hour)
	m.ok(logical.UpdateOperation, "config/mt", map[string]any{"request_timeout": 45})
	st, err := m.b.config(context.Background(), m.storage, "mt")
	if err != nil {
		t.Fatal(err)
	}
	if st.endpoint.Retry.MaxElapsed != 45*time.Second || st.endpoint.HTTP.Timeout != 45*time.Second {
		t.Fatalf("retry bound %s, HTTP timeout %s; want both 45s", st.endpoint.Retry.MaxElapsed, st.endpoint.HTTP.Timeout)
	}
	m.fails(logical.UpdateOperation, "config/mt", map[string]any{"request_timeout": 91}, "request_timeout")
	m.ok(logical.UpdateOperation, "config/mt", map[string]any{"request_timeout": 0})
	st, _ = m.b.config(context.Background(), m.storage, "mt")
	if st.endpoint.Retry.MaxElapsed != backend.DefaultRequestTimeout || st.endpoint.HTTP.Timeout != backend.DefaultRequestTimeout {
		t.Fatal("request_timeout=0 does not restore the default bound")
	}
}
