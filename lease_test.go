package idptokens

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeclock"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// Cache hits ask Vault for the mount's max lease TTL at most once a second.
func TestCredsCacheHitReusesMountMaxTTL(t *testing.T) {
	b, _, req := newWarmEnv(t)
	sys := b.System().(*countingSys)
	sys.SystemView.(*logical.StaticSystemView).MaxLeaseTTLVal = 10 * time.Minute
	b.forgetMountLimits()
	sys.maxLeaseTTL.Store(0)
	for range 20 {
		r := *req
		resp, err := b.HandleRequest(context.Background(), &r)
		if err != nil || resp.Secret.TTL != 10*time.Minute {
			t.Fatalf("creds: %v, TTL %v; want the mount's max 10m", err, resp.Secret.TTL)
		}
	}
	if n := sys.maxLeaseTTL.Load(); n != 1 {
		t.Fatalf("20 reads asked for MaxLeaseTTL %d times, want 1", n)
	}
}

// The lease is the token's remaining life, capped by role ttl/max_ttl and
// the mount, never 0.
func TestCredsLeaseCaps(t *testing.T) {
	e := newTestEnv(t)
	e.setupMWI(fakeidp.Options{TokenTTL: 30 * time.Minute})
	if ttl := leaseTTL(e.creds("mwi")); ttl < 30*time.Minute-3*time.Second || ttl > 30*time.Minute {
		t.Fatalf("lease %s, want ~30m", ttl)
	}
	e.ok(logical.UpdateOperation, "roles/mwi", map[string]any{"max_ttl": 600})
	if ttl := leaseTTL(e.creds("mwi")); ttl != 10*time.Minute {
		t.Fatalf("lease %s, want max_ttl 10m", ttl)
	}
	e.ok(logical.UpdateOperation, "roles/mwi", map[string]any{"ttl": 60})
	if ttl := leaseTTL(e.creds("mwi")); ttl != time.Minute {
		t.Fatalf("lease %s, want ttl 1m", ttl)
	}
	e.ok(logical.UpdateOperation, "roles/mwi", map[string]any{"ttl": 0, "max_ttl": 0})
	e.sys.MaxLeaseTTLVal = 5 * time.Minute
	e.b.forgetMountLimits() // the mount's max is reused for a second
	if ttl := leaseTTL(e.creds("mwi")); ttl != 5*time.Minute {
		t.Fatalf("lease %s, want the mount's max 5m", ttl)
	}
}

// On an ordinary config a lease is exactly the token's remaining life less
// one second, in whole seconds, on the first read and on a cached one; the
// unleased read's expires_in is the same figure.
func TestCredsLeaseIsRemainingLifeLessOneSecond(t *testing.T) {
	clock := fakeclock.New(testT0)
	e := newTestEnv(t, withClock(clock))
	idp := e.setupMWI(fakeidp.Options{TokenTTL: time.Hour})
	idp.SetClock(clock.Now)
	if ttl := leaseTTL(e.creds("mwi")); ttl != time.Hour-time.Second {
		t.Fatalf("first lease %s, want 59m59s", ttl)
	}
	clock.Advance(10*time.Minute + 500*time.Millisecond)
	if ttl := leaseTTL(e.creds("mwi")); ttl != 49*time.Minute+58*time.Second {
		t.Fatalf("cached lease %s, want 49m58s (49m59.5s left, less 1s, whole seconds)", ttl)
	}
	if in := e.ok(logical.ReadOperation, "token/mwi", nil).Data["expires_in"]; in != int64(2998) {
		t.Fatalf("token/ expires_in %v, want 2998", in)
	}
	if idp.TokenRequests() != 1 {
		t.Fatalf("%d token requests, want 1", idp.TokenRequests())
	}
}
