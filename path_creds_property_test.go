package idptokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"pgregory.net/rapid"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeclock"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// The lease promise as a property. Against a strict single-live-token IdP
// (MicroTek: a new token kills the client's older ones at once), random
// sequences of reads (with and without a reader's min_ttl, alone and
// concurrent), clock moves, role and config writes, drops, restarts, lost
// answers, hang-ups, IdP outages and storage failures keep these invariants
// after every step:
//
//  1. every lease handed out holds a token that lives at least until the
//     lease ends (unless an operator's drop or config change said otherwise
//     in its answer);
//  2. no two token requests for the client overlap;
//  3. what the engine holds in memory is what storage holds, so a restart
//     serves the same;
//  4. no accepted write makes two roles of the config ask differently.
//
// RAPID_CHECKS sets the number of sequences (make test runs thousands),
// RAPID_SEED replays one; a failure is shrunk to a minimal sequence.
func TestLeasePromiseInvariants(t *testing.T) {
	t.Parallel() // the models share nothing: one a core
	rapid.Check(t, func(rt *rapid.T) {
		m := newPromiseModel(rt)
		defer m.close()
		rt.Repeat(map[string]func(*rapid.T){
			"":                m.checkInvariants,
			"read":            m.read,
			"concurrentReads": m.concurrentReads,
			"advanceClock":    m.advance,
			"setRoleMinTTL":   m.setRoleMinTTL,
			"setRoleScopes":   m.setRoleScopes,
			"setConfigScopes": m.setConfigScopes,
			"harmlessConfig":  m.harmlessConfig,
			"secondConfig":    m.secondConfig,
			"drop":            m.drop,
			"restart":         m.restart,
			"loseAnswers":     m.loseAnswers,
			"idpDown":         m.idpDown,
			"storageFault":    m.storageFault,
		})
	})
}

const (
	promiseClient   = "00000000-0000-0000-0000-000000000000"
	promiseSecret   = "mt+/:%é-secret"
	promiseTokenTTL = time.Minute
)

// drawReaderMinTTL is a reader's min_ttl of a read of a role whose own is
// roleMin: none, the role's, above it (which a single-active config
// refuses), or 0.
func drawReaderMinTTL(rt *rapid.T, roleMin time.Duration) *time.Duration {
	var d time.Duration
	switch rapid.IntRange(0, 3).Draw(rt, "reader_min_ttl") {
	case 0:
		return nil
	case 1:
		d = roleMin
	case 2:
		d = roleMin + 10*time.Second
	}
	return &d
}

// faultyStorage lets skipPuts writes through, then fails the next failPuts.
type faultyStorage struct {
	logical.Storage
	mu       sync.Mutex
	skipPuts int
	failPuts int
}

var errInjectedStorage = errors.New("storage unavailable (injected)")

func (s *faultyStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.mu.Lock()
	fail := false
	switch {
	case s.skipPuts > 0:
		s.skipPuts--
	case s.failPuts > 0:
		s.failPuts--
		fail = true
	}
	s.mu.Unlock()
	if fail {
		return errInjectedStorage
	}
	return s.Storage.Put(ctx, e)
}

func (s *faultyStorage) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failPuts
}

// heldLease is a lease a reader was handed.
type heldLease struct {
	role, token string
	end         time.Time
}

type promiseModel struct {
	rt      *rapid.T
	clock   *fakeclock.Clock
	idp     *fakeidp.Server
	srv     *httptest.Server
	storage *faultyStorage
	b       *idpBackend

	roleMin   map[string]time.Duration
	cfgScopes string // the config's scopes, as written
	bScopes   string // role b's own scopes ("" inherits the config's)
	leases    []heldLease
	idpFaults int // answers the IdP is still to lose or fail
}

func newPromiseModel(rt *rapid.T) *promiseModel {
	clock := fakeclock.New(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	idp := fakeidp.New(fakeidp.Options{Style: fakeidp.StyleMicroTek, ClientID: promiseClient, ClientSecret: promiseSecret,
		TokenTTL: promiseTokenTTL, Scopes: []string{"public-api", "reports"}})
	idp.SetClock(clock.Now)
	m := &promiseModel{
		rt: rt, clock: clock, idp: idp, srv: httptest.NewServer(idp),
		storage: &faultyStorage{Storage: &logical.InmemStorage{}},
		roleMin: map[string]time.Duration{}, cfgScopes: "public-api", bScopes: "public-api",
	}
	m.mount()
	m.mustWrite("config/mt", map[string]any{"provider": "microtek", "token_url": m.srv.URL + idp.TokenPath(),
		"client_id": promiseClient, "client_secret": promiseSecret})
	for _, role := range []string{"a", "b"} {
		m.roleMin[role] = rapid.SampledFrom([]time.Duration{0, 5 * time.Second, 15 * time.Second, 40 * time.Second}).Draw(rt, "min_ttl_"+role)
		data := map[string]any{"config": "mt", "min_ttl": int(m.roleMin[role].Seconds())}
		if role == "b" {
			data["scopes"] = m.bScopes
		}
		m.mustWrite("roles/"+role, data)
	}
	return m
}

func (m *promiseModel) close() { m.srv.Close() }

// mount starts a backend on the model's storage: at first, and as a restart.
func (m *promiseModel) mount() {
	conf := logical.TestBackendConfig()
	conf.Logger = hclog.NewNullLogger() // thousands of sequences
	conf.StorageView = m.storage
	conf.System = &logical.StaticSystemView{DefaultLeaseTTLVal: 768 * time.Hour, MaxLeaseTTLVal: 768 * time.Hour}
	b, err := Factory(context.Background(), conf)
	if err != nil {
		m.rt.Fatal(err)
	}
	m.b = b.(*idpBackend)
	m.b.now, m.b.sleep = m.clock.Now, m.clock.Sleep
}

func (m *promiseModel) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return m.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: path, Data: data, Storage: m.storage, MountPoint: "idp/",
	})
}

func (m *promiseModel) mustWrite(path string, data map[string]any) *logical.Response {
	resp, err := m.do(logical.UpdateOperation, path, data)
	if err != nil || resp.IsError() {
		m.rt.Fatalf("write %s: %v %v", path, err, respErr(resp))
	}
	return resp
}

// faultsPending says whether an injected fault may still make a request fail.
func (m *promiseModel) faultsPending() bool { return m.idpFaults > 0 || m.storage.pending() > 0 }

// excuse forgets the leases handed out so far: an operator's change said in
// its answer that they may lose their token.
func (m *promiseModel) excuse(resp *logical.Response, why string) {
	if resp == nil || len(resp.Warnings) == 0 {
		m.rt.Fatalf("%s replaces the shared token, and its answer must say so", why)
	}
	m.leases = nil
}

// readOnce performs one creds read; ok false for an error the faults allow.
func (m *promiseModel) readOnce(role string, readerMin *time.Duration, faulty bool) (*logical.Response, bool) {
	data := map[string]any{}
	if readerMin != nil {
		data["min_ttl"] = int(readerMin.Seconds())
	}
	resp, err := m.do(logical.ReadOperation, "creds/"+role, data)
	if readerMin != nil && *readerMin > m.roleMin[role] {
		if err != nil || !resp.IsError() || !strings.Contains(respErr(resp), "min_ttl") {
			m.rt.Fatalf("a reader's min_ttl %s above role %s's %s must be refused with a 400 naming min_ttl, got %v %v",
				readerMin, role, m.roleMin[role], err, respErr(resp))
		}
		return nil, false
	}
	if err != nil || resp.IsError() {
		if !faulty {
			m.rt.Fatalf("read of %s failed with no fault injected: %v %v", role, err, respErr(resp))
		}
		return nil, false
	}
	if resp.Secret == nil || resp.Secret.TTL < time.Second {
		m.rt.Fatalf("read of %s: lease %+v, want at least 1s", role, resp.Secret)
	}
	return resp, true
}

func (m *promiseModel) read(rt *rapid.T) {
	role := rapid.SampledFrom([]string{"a", "b"}).Draw(rt, "role")
	readerMin := drawReaderMinTTL(rt, m.roleMin[role])
	faulty := m.faultsPending()
	resp, ok := m.readOnce(role, readerMin, faulty)
	m.settleFaults()
	if ok {
		// A read alone moves the clock only before its lease is computed
		// (waits and retries), so the clock now is when the lease began.
		m.hold(role, resp, m.clock.Now())
	}
}

func (m *promiseModel) concurrentReads(rt *rapid.T) {
	n := rapid.IntRange(2, 6).Draw(rt, "readers")
	roles := make([]string, n)
	for i := range roles {
		roles[i] = rapid.SampledFrom([]string{"a", "b"}).Draw(rt, fmt.Sprintf("role_%d", i))
	}
	faulty := m.faultsPending()
	// Another reader's wait may move the clock before this one's lease is
	// computed, so the lease is taken to begin when the reads began: a
	// lenient bound; the single reads above check exactly.
	began := m.clock.Now()
	type result struct {
		resp *logical.Response
		err  error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i, role := range roles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := m.do(logical.ReadOperation, "creds/"+role, nil)
			results[i] = result{resp, err}
		}()
	}
	wg.Wait()
	m.settleFaults()
	for i, r := range results {
		if r.err != nil || r.resp.IsError() {
			if !faulty {
				rt.Fatalf("concurrent read of %s failed with no fault injected: %v %v", roles[i], r.err, respErr(r.resp))
			}
			continue
		}
		m.hold(roles[i], r.resp, began)
	}
}

// hold records a lease handed out at began.
func (m *promiseModel) hold(role string, resp *logical.Response, began time.Time) {
	m.leases = append(m.leases, heldLease{role: role, token: resp.Data["access_token"].(string), end: began.Add(resp.Secret.TTL)})
}

// settleFaults forgets IdP faults the last requests consumed.
func (m *promiseModel) settleFaults() { m.idpFaults = m.idp.PendingFaults() }

func (m *promiseModel) advance(rt *rapid.T) {
	ms := rapid.SampledFrom([]int{0, 1, 250, 999, 1000, 1001, 1500, 2000, 5000, 9000, 14_000, 29_000, 31_000, 45_000, 61_000}).Draw(rt, "advance_ms")
	m.clock.Advance(time.Duration(ms) * time.Millisecond)
}

func (m *promiseModel) setRoleMinTTL(rt *rapid.T) {
	role := rapid.SampledFrom([]string{"a", "b"}).Draw(rt, "role")
	d := rapid.SampledFrom([]time.Duration{0, 5 * time.Second, 15 * time.Second, 25 * time.Second, 40 * time.Second}).Draw(rt, "min_ttl")
	resp, err := m.do(logical.UpdateOperation, "roles/"+role, map[string]any{"min_ttl": int(d.Seconds())})
	if err != nil || resp.IsError() {
		if !errors.Is(err, errInjectedStorage) {
			rt.Fatalf("min_ttl write: %v %v", err, respErr(resp))
		}
		return
	}
	if resp != nil && len(resp.Warnings) > 0 {
		rt.Fatalf("a min_ttl change must not replace the shared token: %v", resp.Warnings)
	}
	m.roleMin[role] = d
}

// effective is what a role asks for, as the model sees it.
func (m *promiseModel) effective(own string) string {
	if own == "" {
		return strings.ReplaceAll(m.cfgScopes, " ", ",")
	}
	return strings.ReplaceAll(own, " ", ",")
}

func (m *promiseModel) setRoleScopes(rt *rapid.T) {
	scopes := rapid.SampledFrom([]string{"public-api", "public-api,reports", "public-api reports"}).Draw(rt, "scopes")
	resp, err := m.do(logical.UpdateOperation, "roles/b", map[string]any{"scopes": scopes})
	splits := m.effective(scopes) != m.effective("") // role a inherits the config's
	switch {
	case errors.Is(err, errInjectedStorage):
		return
	case splits:
		if err != nil || !resp.IsError() || !strings.Contains(respErr(resp), `a`) || !strings.Contains(respErr(resp), `b`) {
			rt.Fatalf("role b asking %q while role a asks %q must be refused naming both roles, got %v %v", scopes, m.cfgScopes, err, respErr(resp))
		}
	case err != nil || resp.IsError():
		rt.Fatalf("role b scopes %q: %v %v", scopes, err, respErr(resp))
	default:
		if m.effective(scopes) != m.effective(m.bScopes) {
			m.excuse(resp, "a role write that changes what the config's roles ask")
		}
		m.bScopes = scopes
	}
}

func (m *promiseModel) setConfigScopes(rt *rapid.T) {
	scopes := rapid.SampledFrom([]string{"public-api", "public-api,reports", "public-api reports"}).Draw(rt, "scopes")
	resp, err := m.do(logical.UpdateOperation, "config/mt", map[string]any{"scopes": scopes})
	was := m.effective("")
	now := strings.ReplaceAll(scopes, " ", ",")
	splits := now != m.effective(m.bScopes) // role a inherits, role b names its own
	switch {
	case errors.Is(err, errInjectedStorage):
		return
	case splits:
		if err != nil || !resp.IsError() || !strings.Contains(respErr(resp), "single_active_token") {
			rt.Fatalf("config scopes %q under role b's %q must be refused, got %v %v", scopes, m.bScopes, err, respErr(resp))
		}
	case err != nil || resp.IsError():
		rt.Fatalf("config scopes %q: %v %v", scopes, err, respErr(resp))
	default:
		if now != was {
			m.excuse(resp, "a config write that changes what its roles ask")
		}
		m.cfgScopes = scopes
	}
}

// harmlessConfig changes what does not touch the token: no answer warns,
// and no mint follows.
func (m *promiseModel) harmlessConfig(rt *rapid.T) {
	timeout := rapid.SampledFrom([]int{5, 10, 30}).Draw(rt, "request_timeout")
	resp, err := m.do(logical.UpdateOperation, "config/mt", map[string]any{"request_timeout": timeout})
	if errors.Is(err, errInjectedStorage) {
		return
	}
	if err != nil || resp.IsError() || (resp != nil && len(resp.Warnings) > 0) {
		rt.Fatalf("request_timeout write: %v %v %v", err, respErr(resp), resp)
	}
}

// secondConfig names the same MicroTek client again: refused.
func (m *promiseModel) secondConfig(rt *rapid.T) {
	resp, err := m.do(logical.UpdateOperation, "config/mt2", map[string]any{"provider": "microtek",
		"token_url": m.srv.URL + m.idp.TokenPath() + "/", "client_id": promiseClient, "client_secret": promiseSecret})
	if err != nil || !resp.IsError() || !strings.Contains(respErr(resp), "client_id") {
		rt.Fatalf("a second config for the single-active client must be refused naming client_id, got %v %v", err, respErr(resp))
	}
}

func (m *promiseModel) drop(rt *rapid.T) {
	role := rapid.SampledFrom([]string{"a", "b"}).Draw(rt, "role")
	resp, err := m.do(logical.UpdateOperation, "creds/"+role+"/drop", nil)
	if err != nil || resp.IsError() {
		rt.Fatalf("drop: %v %v", err, respErr(resp))
	}
	m.excuse(resp, "a drop")
}

func (m *promiseModel) restart(rt *rapid.T) {
	m.checkMemoryMatchesStorage(rt)
	m.mount()
}

func (m *promiseModel) loseAnswers(rt *rapid.T) {
	n := rapid.IntRange(1, 4).Draw(rt, "lost")
	how := rapid.SampledFrom([]fakeidp.Loss{fakeidp.LossGateway, fakeidp.LossHangUp}).Draw(rt, "how")
	m.idp.LoseNextAnswers(n, how)
	m.settleFaults()
}

func (m *promiseModel) idpDown(rt *rapid.T) {
	m.idp.FailNext(rapid.IntRange(1, 4).Draw(rt, "failures"), 503)
	m.settleFaults()
}

func (m *promiseModel) storageFault(rt *rapid.T) {
	m.storage.mu.Lock()
	m.storage.failPuts = rapid.IntRange(1, 2).Draw(rt, "failed_puts")
	m.storage.mu.Unlock()
}

// checkInvariants runs after every step.
func (m *promiseModel) checkInvariants(rt *rapid.T) {
	now := m.clock.Now()
	var live []heldLease
	for _, l := range m.leases {
		if killed, dead := m.idp.KilledAt(l.token); dead && killed.Before(l.end) {
			rt.Fatalf("a lease of role %s runs until %s, but the IdP killed its token at %s (%s early)",
				l.role, l.end.Format(time.TimeOnly), killed.Format(time.TimeOnly), l.end.Sub(killed))
		}
		if exp, ok := m.idp.ExpiresAt(l.token); !ok || exp.Before(l.end) {
			rt.Fatalf("a lease of role %s runs until %s, past its token's expiry %s", l.role, l.end, exp)
		}
		if l.end.After(now) {
			live = append(live, l)
		}
	}
	m.leases = live
	if n := m.idp.MaxConcurrentTokenRequests(); n > 1 {
		rt.Fatalf("%d token requests for the client overlapped", n)
	}
	m.checkMemoryMatchesStorage(rt)
	roles, err := m.b.rolesOf(context.Background(), m.storage, "mt")
	if err != nil {
		rt.Fatal(err)
	}
	cfg, err := m.b.config(context.Background(), m.storage, "mt")
	if err != nil || cfg == nil {
		rt.Fatalf("config: %v", err)
	}
	if resp := sharedTokenConflict(cfg, roles); resp != nil {
		rt.Fatalf("an accepted write split the shared token: %s", respErr(resp))
	}
}

// checkMemoryMatchesStorage: every token held in memory is stored as held.
func (m *promiseModel) checkMemoryMatchesStorage(rt *rapid.T) {
	for _, key := range []tokenKey{configTokenKey("mt"), roleTokenKey("a"), roleTokenKey("b")} {
		mem, ok := m.b.tokens.InMemory(key.String())
		if !ok {
			continue
		}
		raw, err := m.storage.Get(context.Background(), backend.TokenPrefix+key.String())
		if err != nil || raw == nil {
			rt.Fatalf("token %s is held in memory but not in storage (%v)", key, err)
		}
		var stored backend.StoredToken
		if err := json.Unmarshal(raw.Value, &stored); err != nil {
			rt.Fatal(err)
		}
		if stored.AccessToken != mem.AccessToken || stored.Unusable != mem.Unusable || !stored.MintAfter.Equal(mem.MintAfter) ||
			stored.Fingerprint != mem.Fingerprint || stored.RefreshToken != mem.RefreshToken {
			rt.Fatalf("token %s: memory holds %+v, storage %+v", key, mem, stored)
		}
	}
}
