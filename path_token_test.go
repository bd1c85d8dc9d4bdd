package idptokens

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeclock"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/promtext"
)

func (e *testEnv) token(role string, data map[string]any) *logical.Response {
	e.t.Helper()
	return e.ok(logical.ReadOperation, "token/"+role, data)
}

// token/<role> answers the cached token creds/<role> hands out, with every
// field an SDK needs and no lease.
func TestTokenReadIsTheCachedTokenWithoutALease(t *testing.T) {
	e := newTestEnv(t)
	idp, url := startIdP(t, fakeidp.Options{Style: fakeidp.StyleScreeningEagle, ClientID: "se", ClientSecret: "se-secret", IDTokens: true, RefreshTokens: true})
	e.ok(logical.UpdateOperation, "config/se", map[string]any{"provider": "screening-eagle", "token_url": url, "client_id": "se", "client_secret": "se-secret"})
	e.ok(logical.UpdateOperation, "roles/se", map[string]any{"config": "se", "scopes": "openid,inspect"})

	resp := e.token("se", nil)
	if resp.Secret != nil {
		t.Fatalf("token/<role> made a lease: %+v", resp.Secret)
	}
	tok, _ := resp.Data["access_token"].(string)
	if !idp.Valid(tok) {
		t.Fatal("the IdP does not accept the token")
	}
	if resp.Data["token_type"] != "Bearer" || resp.Data["scope"] != "openid inspect" || resp.Data["id_token"] == "" || resp.Data["id_token"] == nil {
		t.Fatalf("token_type=%v scope=%v id_token present=%v", resp.Data["token_type"], resp.Data["scope"], resp.Data["id_token"] != nil)
	}
	in, ok := resp.Data["expires_in"].(int64)
	if !ok || in < 3597 || in > 3600 {
		t.Fatalf("expires_in %#v, want about 3600 seconds as a number", resp.Data["expires_in"])
	}
	exp, err := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
	if err != nil || exp.Sub(time.Now()) < 59*time.Minute {
		t.Fatalf("expires_at %v (%v)", resp.Data["expires_at"], err)
	}
	for _, k := range []string{"refresh_token", "client_secret"} {
		if _, has := resp.Data[k]; has {
			t.Fatalf("token/<role> leaked %s", k)
		}
	}
	if creds := e.creds("se"); creds.Data["access_token"] != tok || idp.TokenRequests() != 1 {
		t.Fatalf("creds after token: same token=%v, IdP requests %d; want one cached token", creds.Data["access_token"] == tok, idp.TokenRequests())
	}
}

// Concurrent token reads of a cold role make one IdP request; a reader's
// min_ttl above what the cached token has left gets a new one, as on creds.
func TestTokenReadSharesTheFlightAndMinTTL(t *testing.T) {
	e := newTestEnv(t)
	idp, url := startIdP(t, fakeidp.Options{ClientID: "app", ClientSecret: "secret", Scopes: []string{"read"}, TokenTTL: time.Hour})
	idp.SetDelay(50 * time.Millisecond)
	e.ok(logical.UpdateOperation, "config/c", map[string]any{"token_url": url, "client_id": "app", "client_secret": "secret"})
	e.ok(logical.UpdateOperation, "roles/r", map[string]any{"config": "c", "scopes": "read"})
	var wg sync.WaitGroup
	tokens := make([]string, 20)
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "token/r", Storage: e.storage})
			if err == nil && !resp.IsError() {
				tokens[i], _ = resp.Data["access_token"].(string)
			}
		}()
	}
	wg.Wait()
	for _, tok := range tokens {
		if tok == "" || tok != tokens[0] {
			t.Fatal("concurrent readers did not all get the one token")
		}
	}
	if n := idp.TokenRequests(); n != 1 {
		t.Fatalf("20 concurrent cold token reads made %d IdP requests, want 1", n)
	}
	idp.SetDelay(0)
	e.b.now = func() time.Time { return time.Now().Add(50 * time.Minute) }
	if got := e.token("r", nil).Data["access_token"]; got != tokens[0] {
		t.Fatal("a token with 10m left was replaced without a min_ttl")
	}
	if got := e.token("r", map[string]any{"min_ttl": "15m"}).Data["access_token"]; got == tokens[0] || idp.TokenRequests() != 2 {
		t.Fatalf("a reader's min_ttl above the token's 10m left: new token=%v, IdP requests %d", got != tokens[0], idp.TokenRequests())
	}
}

// On a single_active_token config expires_in is how long the token may be
// relied on (until the next one may be minted), the same as the creds
// lease; a reader's min_ttl above the role's is refused.
func TestTokenSingleActiveExpiresInIsTheHoldingPeriod(t *testing.T) {
	m := setupMicroTek(t, 20*time.Second)
	m.ok(logical.UpdateOperation, "roles/x", map[string]any{"config": "mt", "min_ttl": 8})
	creds := m.creds("x")
	tok := m.token("x", nil)
	if tok.Data["access_token"] != creds.Data["access_token"] {
		t.Fatal("token and creds handed out different tokens")
	}
	// 20 s token, next mint at 12 s, every holder done by 11 s.
	if got, want := tok.Data["expires_in"], int64(creds.Secret.TTL/time.Second); got != want || want > 11 {
		t.Fatalf("expires_in %v, want the creds lease's %d s (at most 11)", got, want)
	}
	m.clock.Advance(5 * time.Second)
	if got := m.token("x", nil).Data["expires_in"]; got != int64(6) {
		t.Fatalf("5 s later expires_in %v, want 6", got)
	}
	reliedUntil := m.clock.Now().Add(6 * time.Second)
	m.fails(logical.ReadOperation, "token/x", map[string]any{"min_ttl": 9}, "min_ttl")
	m.clock.Advance(7500 * time.Millisecond)
	next := m.token("x", nil)
	if next.Data["access_token"] == creds.Data["access_token"] {
		t.Fatal("no new token after the holding period")
	}
	killed, dead := m.idp.KilledAt(creds.Data["access_token"].(string))
	if !dead || killed.Before(reliedUntil) {
		t.Fatalf("the old token died at %s, before its expires_in ran out", killed.Format(time.TimeOnly))
	}
}

// A cache-hit token read makes no storage call, as a creds read.
func TestTokenCacheHitMakesNoStorageCalls(t *testing.T) {
	b, storage, _ := newWarmEnv(t)
	storage.Reset()
	for range 10 {
		resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "token/app", Storage: storage})
		if err != nil || resp.IsError() || resp.Data["access_token"] == "" {
			t.Fatalf("token: %v %v", err, resp)
		}
	}
	if n := storage.Total(); n != 0 {
		t.Fatalf("10 cache-hit token reads made %d storage calls, want 0", n)
	}
}

// Reads are counted per path, creds and token, in fixed series.
func TestTokenReadsAreCountedByPath(t *testing.T) {
	e := newTestEnv(t)
	e.setupMWI(fakeidp.Options{})
	e.creds("mwi") // miss
	e.creds("mwi") // hit
	for range 3 {
		e.token("mwi", nil) // hits
	}
	mwi := e.metricsJSON().Configs["mwi"]
	if mwi.Reads["creds"]["hit"] != 1 || mwi.Reads["creds"]["miss"] != 1 || mwi.Reads["token"]["hit"] != 3 || mwi.Reads["token"]["miss"] != 0 {
		t.Fatalf("reads by path %v, want creds 1 hit 1 miss, token 3 hits", mwi.Reads)
	}
	if mwi.CacheHits != 4 || mwi.CacheMisses != 1 {
		t.Fatalf("totals %d/%d, want 4 hits and 1 miss over both paths", mwi.CacheHits, mwi.CacheMisses)
	}
	fams := e.metricsProm()
	p := "vault_idp_tokens_reads_total"
	for _, c := range []struct {
		path, result string
		want         float64
	}{{"creds", "hit", 1}, {"creds", "miss", 1}, {"token", "hit", 3}, {"token", "miss", 0}} {
		got, ok := promtext.Value(fams, p, map[string]string{"config": "mwi", "path": c.path, "result": c.result})
		if !ok || got != c.want {
			t.Fatalf("%s{path=%q,result=%q} = %v (present %v), want %v", p, c.path, c.result, got, ok, c.want)
		}
	}
}

// BenchmarkTokenCacheHit is the unleased hot path: a token read through
// the framework's HandleRequest with a warm cache.
func BenchmarkTokenCacheHit(b *testing.B) {
	be, storage, _ := newWarmEnv(b)
	ctx := context.Background()
	storage.Reset()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := be.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "token/app", Storage: storage})
		if err != nil || resp.Data["access_token"] == nil {
			b.Fatal(err, resp)
		}
	}
	b.ReportMetric(float64(storage.Total())/float64(b.N), "storage-calls/op")
}

// On a config whose tokens do not kill each other, expires_in is the same
// holding period as the creds lease at that moment (remaining life less the
// skew), as docs/api.md promises: a reader of token/ is not told it may rely
// on the token a second longer than a reader of creds/.
func TestTokenExpiresInIsTheCredsLease(t *testing.T) {
	e := newTestEnv(t)
	e.setupMWI(fakeidp.Options{TokenTTL: time.Hour})
	clock := fakeclock.New(time.Now())
	e.b.now = clock.Now
	start := clock.Now()
	creds := e.creds("mwi")
	for _, at := range []time.Duration{0, 10 * time.Minute, 54*time.Minute + 30*time.Second} { // the last with 5m30s left: above the 5m margin
		clock.Set(start.Add(at))
		lease := int64(leaseTTL(e.creds("mwi")) / time.Second)
		tok := e.token("mwi", nil)
		if tok.Data["access_token"] != creds.Data["access_token"] {
			t.Fatal("token and creds handed out different tokens")
		}
		if got := tok.Data["expires_in"]; got != lease {
			t.Fatalf("after %s: expires_in %v, want the creds lease's %d s", at, got, lease)
		}
	}
}

// fataler is a test or a rapid sequence.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// answerTTL is an unleased answer's ttl.
func answerTTL(t fataler, resp *logical.Response) time.Duration {
	t.Helper()
	n, ok := resp.Data["ttl"].(int64)
	if !ok || n < 1 {
		t.Fatalf("ttl %#v, want a whole number of seconds, at least 1", resp.Data["ttl"])
	}
	return time.Duration(n) * time.Second
}

// answerRotation is an unleased answer's last_vault_rotation.
func answerRotation(t fataler, resp *logical.Response) time.Time {
	t.Helper()
	s, _ := resp.Data["last_vault_rotation"].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("last_vault_rotation %#v: %v", resp.Data["last_vault_rotation"], err)
	}
	return at
}

// On a config whose tokens do not kill each other, ttl is exact for the
// cache's own rule: a read ttl after the answer (creds or token) is still
// handed the token, a read ttl + 1 s after it the next one, while the old
// token still has its margin less under a second left. Read as Vault
// Agent reads (again ttl + 1 s after each answer), that is one IdP request
// and one re-read per token.
func TestTokenTTLIsWhenTheNextTokenIsHandedOut(t *testing.T) {
	const lifetime = 20 * time.Second
	for _, tc := range []struct {
		name   string
		minTTL int
		margin time.Duration
	}{
		{"the margin", 0, 4 * time.Second}, // a fifth of 20 s
		{"the role's larger min_ttl", 8, 8 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := fakeclock.New(testT0)
			e := newTestEnv(t, withClock(clock))
			idp := e.setupMWI(fakeidp.Options{TokenTTL: lifetime})
			idp.SetClock(clock.Now)
			e.ok(logical.UpdateOperation, "roles/mwi", map[string]any{"min_ttl": tc.minTTL})
			resp := e.token("mwi", nil)
			const tokens = 4
			for i := range tokens {
				tok := resp.Data["access_token"]
				if p := resp.Data["rotation_period"]; p != int64(lifetime/time.Second) {
					t.Fatalf("rotation_period %v, want the token's lifetime, 20", p)
				}
				obtained := answerRotation(t, resp)
				// A re-read at a fraction of a second: the answer's ttl in
				// whole seconds, what is left of it less than a second.
				clock.Advance(time.Duration(100+300*i) * time.Millisecond)
				resp = e.token("mwi", nil)
				at, ttl := clock.Now(), answerTTL(t, resp)
				if resp.Data["access_token"] != tok || !answerRotation(t, resp).Equal(obtained) {
					t.Fatalf("token %d: the re-read was handed another token", i)
				}
				if want := obtained.Add(lifetime - tc.margin).Sub(at).Truncate(time.Second); ttl != want {
					t.Fatalf("token %d: ttl %s, want %s (until %s left)", i, ttl, want, tc.margin)
				}
				clock.Set(at.Add(ttl))
				if same := e.creds("mwi"); same.Data["access_token"] != tok {
					t.Fatalf("token %d: the creds read ttl after the answer was handed the next token", i)
				}
				if same := e.token("mwi", nil); same.Data["access_token"] != tok {
					t.Fatalf("token %d: the token read ttl after the answer was handed the next token", i)
				}
				clock.Set(at.Add(ttl + time.Second))
				resp = e.token("mwi", nil)
				if resp.Data["access_token"] == tok {
					t.Fatalf("token %d: the read ttl + 1 s after the answer was handed the same token", i)
				}
				if !answerRotation(t, resp).After(obtained) {
					t.Fatalf("token %d: last_vault_rotation did not change with the token", i)
				}
				if left := obtained.Add(lifetime).Sub(clock.Now()); left < tc.margin-time.Second || left >= tc.margin {
					t.Fatalf("token %d: the old token had %s left when the next was handed out, want its margin %s less under a second", i, left, tc.margin)
				}
			}
			if n := idp.TokenRequests(); n != tokens+1 {
				t.Fatalf("%d IdP requests for %d tokens", n, tokens+1)
			}
		})
	}
}

// On a single_active_token config ttl is the holding period: the read
// ttl + 1 s after an answer mints the next token, killing the old one,
// exactly when the last lease or promise (answer + ttl) of it has ended
// (a second before the kill), and no sooner.
func TestTokenTTLSingleActiveMintsWhenNoHolderIsLeft(t *testing.T) {
	m := setupMicroTek(t, 20*time.Second)
	m.ok(logical.UpdateOperation, "roles/x", map[string]any{"config": "mt", "min_ttl": 8})
	resp := m.token("x", nil)
	const tokens = 4
	for i := range tokens {
		tok := resp.Data["access_token"].(string)
		obtained := answerRotation(t, resp)
		var promised []time.Time // when each answer of tok stops being relied on
		promised = append(promised, m.clock.Now().Add(answerTTL(t, resp)))
		clock := m.clock
		clock.Advance(time.Duration(200+300*i) * time.Millisecond)
		lease := m.creds("x")
		promised = append(promised, m.leaseEnd(lease))
		resp = m.token("x", nil)
		at, ttl := clock.Now(), answerTTL(t, resp)
		promised = append(promised, at.Add(ttl))
		if resp.Data["access_token"] != tok || lease.Data["access_token"] != tok {
			t.Fatalf("token %d: the re-reads were handed another token", i)
		}
		if ttl != time.Duration(resp.Data["expires_in"].(int64))*time.Second {
			t.Fatalf("token %d: ttl %s is not the holding period (expires_in %v)", i, ttl, resp.Data["expires_in"])
		}
		clock.Set(at.Add(ttl + time.Second))
		resp = m.token("x", nil)
		if resp.Data["access_token"] == tok {
			t.Fatalf("token %d: the read ttl + 1 s after the answer was handed the same token", i)
		}
		killed, dead := m.idp.KilledAt(tok)
		if !dead {
			t.Fatalf("token %d: the next token did not kill the old one", i)
		}
		// The mint waits for MintAfter (expiry less the role's min_ttl),
		// under a second after the read.
		if mintAfter := obtained.Add(12 * time.Second); !killed.Equal(mintAfter) || killed.Sub(at.Add(ttl+time.Second)) >= time.Second {
			t.Fatalf("token %d: killed at +%s, want at +%s, under a second after the read at +%s",
				i, killed.Sub(obtained), mintAfter.Sub(obtained), at.Add(ttl+time.Second).Sub(obtained))
		}
		for _, end := range promised {
			if killed.Before(end.Add(backend.HoldSkew)) {
				t.Fatalf("token %d killed at %s, within a second of a promise that ran until %s", i, killed.Format(time.StampMilli), end.Format(time.StampMilli))
			}
		}
	}
	if n := m.idp.TokenRequests(); n != tokens+1 {
		t.Fatalf("%d IdP requests for %d tokens", n, tokens+1)
	}
}

// Terraform's ephemeral vault_generic_secret unwraps a top-level "data"
// field when an answer has one (docs/leases.md): the token answer must not.
func TestTokenAnswerHasNoDataField(t *testing.T) {
	for _, leased := range []bool{false, true} {
		if _, has := answerSchema(leased)["data"]; has {
			t.Fatalf("the token answer (leased %v) has a field named data", leased)
		}
	}
}
