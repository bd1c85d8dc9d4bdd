package idptokens

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"pgregory.net/rapid"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeclock"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

// The lease promise through every door that writes a token: creds and
// token reads, logins completing (authorization-code callback, device-code
// poll), caller-subject token exchanges, role delete and re-create, drops,
// refused refreshes, lost answers and restarts on a node whose clock lags.
// Config "sa" is single-active (its IdP kills the client's earlier tokens
// on every issue, of every grant); its roles a and b share one grant,
// drawn per sequence. Config "std" has role x, which exchanges subject
// tokens the caller brings. After every step:
//
//  1. every token handed out (a creds lease until hand-out + TTL, a token
//     read until hand-out + expires_in) is valid at the IdP when handed
//     out, and is neither killed nor expired before its end, unless an
//     operator's answer warned (a drop of the shared token);
//  2. no two token requests of the single-active client overlap;
//  3. memory holds what storage holds;
//  4. no token or pending device login is kept for a role deleted (or a
//     key dropped) after the request that produced it began, and a login
//     role written again after every role of its config was deleted needs
//     a login before it serves;
//  5. exchanges are of the very subject sent, never of an expired JWT
//     subject, and of a revoked subject never past the exchange cache's
//     60 s;
//  6. a callback refused on the single-active config leaves the previous
//     token stored and alive;
//  7. a token_exchange role without subject_role is refused on a
//     single-active config (checked once, beside the sequences).
//
// Times are the fake clock's, which the IdPs read; a lagging node's clock
// runs behind it. "during" runs a drop, a delete or another login while a
// token request is in flight (fakeidp's SetBeforeAnswer). RAPID_CHECKS
// sets the number of sequences, RAPID_SEED replays one; DOOR_TOLERATE
// counts the named violations instead of failing, and DOOR_WITHOUT leaves
// out the named steps, to look past a known violation for the next.
func TestTokenDoorInvariants(t *testing.T) {
	t.Parallel() // the models share nothing: one a core
	t.Run("exchange role on a single-active config", checkExchangeRoleRefusedOnSingleActive)
	stats := &doorStats{counts: map[string]*atomic.Int64{}}
	t.Run("sequences", func(t *testing.T) { checkDoorSequences(t, stats) })
	t.Logf("coverage over all sequences: %s", stats)
}

func checkDoorSequences(t *testing.T, stats *doorStats) {
	rapid.Check(t, func(rt *rapid.T) {
		m := newDoorModel(rt, stats)
		defer m.close()
		rt.Repeat(withoutSteps(map[string]func(*rapid.T){
			// rapid draws the first names in order more often: reads,
			// the clock, "during" and exchanges come first.
			"":                m.checkInvariants,
			"creds":           func(rt *rapid.T) { m.read(rt, "creds") },
			"token":           func(rt *rapid.T) { m.read(rt, "token") },
			"login":           m.login,
			"poll":            m.poll,
			"clock":           m.advance,
			"tokenDrop":       m.drop,
			"roleDelete":      m.deleteRole,
			"roleRecreate":    m.recreateRole,
			"during":          m.during,
			"restart":         m.restart,
			"loseAnswers":     m.loseAnswers,
			"idpDown":         m.idpDown,
			"storageFault":    m.storageFault,
			"refuseRefreshes": m.refuseRefreshes,
			"exchange":        m.exchange,
			"outliveSubject":  m.outliveSubject,
			"revokeSubject":   m.revokeSubject,
		}))
	})
}

// withoutSteps leaves out the steps DOOR_WITHOUT names (comma-separated),
// to look for a violation's other causes.
func withoutSteps(steps map[string]func(*rapid.T)) map[string]func(*rapid.T) {
	for _, name := range strings.Split(os.Getenv("DOOR_WITHOUT"), ",") {
		if name != "" { // "" is the invariant check
			delete(steps, name)
		}
	}
	return steps
}

// A token_exchange role without subject_role exchanges whatever a caller
// brings, and each exchange on a single-active client kills the shared
// token under its leases: such a role must be refused there.
func checkExchangeRoleRefusedOnSingleActive(t *testing.T) {
	idp := fakeidp.New(fakeidp.Options{ClientID: doorClient, ClientSecret: doorSecret, SingleActive: true, TokenExchange: true})
	srv := httptest.NewServer(idp)
	defer srv.Close()
	e := newTestEnv(t)
	e.b.Logger().SetLevel(hclog.Off)
	e.ok(logical.UpdateOperation, "config/sa", map[string]any{"provider": "oauth2", "single_active_token": true,
		"token_url": srv.URL + idp.TokenPath(), "client_id": doorClient, "client_secret": doorSecret})
	resp, err := e.do(logical.UpdateOperation, "roles/sx", map[string]any{"config": "sa", "grant_type": "token_exchange"})
	if err == nil && !resp.IsError() {
		t.Errorf("a grant_type=token_exchange role without subject_role was accepted on single-active config sa: " +
			"every caller's exchange would kill the shared token under its leases")
	}
}

const (
	doorClient    = "sa-client"
	doorSecret    = "sa secret+/:%41é"
	doorStdClient = "std-client"
	doorStdSecret = "std secret+/:%41ü"
	doorTokenTTL  = time.Minute
	doorStdTTL    = 5 * time.Minute
	doorRedirect  = "http://127.0.0.1/cb"
	exchangeCache = 60 * time.Second // the exchange cache's planned default life
	// hookWait bounds how long an answer waits for the action run while its
	// request is in flight: an action that waits for that very request
	// (a lock, a flight) goes on after the answer.
	hookWait = 50 * time.Millisecond
)

var saRoles = []string{"a", "b"}

// doorLease is a token handed out, and until when its holder relies on it.
type doorLease struct {
	idp       *fakeidp.Server
	role, via string
	token     string
	end       time.Time
	// excess is how far the handing node's clock lagged past the one
	// second skew the promise allows for: the lease may run that much
	// longer than the token lives, and no more (see clockExcess).
	excess time.Duration
}

// doorSubject is a subject token a caller may bring to exchange/x.
type doorSubject struct {
	name, token string
	jwt         bool
	exp         time.Time // JWTs: the exp claim; opaque: when the IdP stops accepting it
	revoked     bool
}

type doorModel struct {
	rt      *rapid.T
	stats   *doorStats
	clock   *fakeclock.Clock
	lag     time.Duration // the node's clock runs this far behind the IdPs'
	sa, std *fakeidp.Server
	srvs    []*httptest.Server
	saURL   string
	storage *faultyStorage
	b       *idpBackend

	grant    string // of roles a and b
	roleMin  map[string]time.Duration
	exists   map[string]bool
	subjects []*doorSubject
	leases   []doorLease

	seq int // numbers requests and operator actions in the order they began
	// forbidden: per token key, the access tokens no request begun after
	// a drop or delete may be served.
	forbidden map[string]map[string]forbidden
	// orphan: every role of sa was deleted while its login token stayed;
	// needLogin: roles written since then, which must ask for a login.
	orphan    bool
	needLogin map[string]int
	// overlapSeen: overlapping requests were reported (tolerated) once.
	overlapSeen bool
	// stepStart: during a "during" step, what both IdPs had issued when it
	// began.
	stepStart map[string]bool
}

func newDoorModel(rt *rapid.T, stats *doorStats) *doorModel {
	clock := fakeclock.New(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	m := &doorModel{
		rt: rt, stats: stats, clock: clock,
		storage: &faultyStorage{Storage: &logical.InmemStorage{}},
		roleMin: map[string]time.Duration{}, exists: map[string]bool{},
		forbidden: map[string]map[string]forbidden{}, needLogin: map[string]int{},
	}
	m.sa = fakeidp.New(fakeidp.Options{ClientID: doorClient, ClientSecret: doorSecret, TokenTTL: doorTokenTTL,
		Scopes: []string{"api", "reports"}, SingleActive: true, RefreshTokens: true, DeviceCodes: true, RedirectURIs: []string{doorRedirect},
		OnTokenRequest: func(grant string, status int, errCode string) {
			grant = strings.TrimPrefix(grant, "urn:ietf:params:oauth:grant-type:")
			switch {
			case grant == "refresh_token" && errCode == "invalid_grant":
				stats.add("idp: refresh refused")
			case errCode == "" && status != 200:
				stats.add("idp: answer lost after a " + grant + " mint")
			}
		}})
	m.std = fakeidp.New(fakeidp.Options{ClientID: doorStdClient, ClientSecret: doorStdSecret, TokenTTL: doorStdTTL, TokenExchange: true})
	for _, idp := range []*fakeidp.Server{m.sa, m.std} {
		idp.SetClock(clock.Now)
		m.srvs = append(m.srvs, httptest.NewServer(idp))
	}
	m.saURL = m.srvs[0].URL
	m.mount()
	m.mustWrite("config/sa", map[string]any{"provider": "oauth2", "single_active_token": true,
		"token_url": m.saURL + m.sa.TokenPath(), "auth_url": m.saURL + "/connect/authorize", "device_authorization_url": m.saURL + "/device",
		"redirect_uris": doorRedirect, "client_id": doorClient, "client_secret": doorSecret})
	m.mustWrite("config/std", map[string]any{"token_url": m.srvs[1].URL + m.std.TokenPath(), "client_id": doorStdClient, "client_secret": doorStdSecret})
	m.grant = rapid.SampledFrom([]string{"client_credentials", "authorization_code", "device_code"}).Draw(rt, "grant")
	for _, role := range saRoles {
		m.roleMin[role] = rapid.SampledFrom([]time.Duration{0, 5 * time.Second, 15 * time.Second, 40 * time.Second}).Draw(rt, "min_ttl_"+role)
	}
	for _, role := range []string{"a", "b", "x"} {
		m.mustWrite("roles/"+role, m.roleData(role))
		m.exists[role] = true
	}
	start := clock.Now()
	for i, life := range []time.Duration{
		rapid.SampledFrom([]time.Duration{20 * time.Second, 45 * time.Second, 90 * time.Second}).Draw(rt, "jwt0_life"),
		rapid.SampledFrom([]time.Duration{30 * time.Second, 2 * time.Minute, 4 * time.Minute}).Draw(rt, "jwt1_life"),
	} {
		name := fmt.Sprintf("jwt%d", i)
		s := &doorSubject{name: name, jwt: true, exp: start.Add(life)}
		s.token = unsignedJWT(name, s.exp)
		m.subjects = append(m.subjects, s)
	}
	for i := range 2 {
		name := fmt.Sprintf("opaque%d", i)
		m.subjects = append(m.subjects, &doorSubject{name: name, token: "op_" + name + "_" + strings.Repeat("k", 24), exp: start.Add(3 * time.Hour)})
	}
	for _, s := range m.subjects {
		m.std.AllowSubject(s.token, s.exp)
	}
	return m
}

// unsignedJWT is a JWT-shaped subject token whose exp claim is exp; no one
// here verifies its signature.
func unsignedJWT(sub string, exp time.Time) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte(fmt.Sprintf(`{"sub":%q,"exp":%d}`, sub, exp.Unix()))) + "." +
		enc.EncodeToString([]byte("unverified-"+sub))
}

func (m *doorModel) roleData(role string) map[string]any {
	if role == "x" {
		return map[string]any{"config": "std", "grant_type": "token_exchange"}
	}
	return map[string]any{"config": "sa", "grant_type": m.grant, "scopes": "api", "min_ttl": int(m.roleMin[role].Seconds())}
}

func (m *doorModel) close() {
	m.b.Cleanup(context.Background())
	for _, s := range m.srvs {
		s.Close()
	}
}

// mount starts a backend on the model's storage whose clock lags the
// IdPs' by m.lag. Its device pollers are off: the model polls.
func (m *doorModel) mount() {
	if m.b != nil {
		m.b.Cleanup(context.Background()) // the old node is gone, and its connections
	}
	conf := logical.TestBackendConfig()
	conf.Logger = hclog.NewNullLogger()
	conf.StorageView = m.storage
	conf.System = &logical.StaticSystemView{DefaultLeaseTTLVal: 768 * time.Hour, MaxLeaseTTLVal: 768 * time.Hour}
	b, err := Factory(context.Background(), conf)
	if err != nil {
		m.rt.Fatal(err)
	}
	m.b = b.(*idpBackend)
	lag, clock := m.lag, m.clock
	m.b.now = func() time.Time { return clock.Now().Add(-lag) }
	m.b.sleep = clock.Sleep
	m.b.devices.storage = nil
}

func (m *doorModel) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return m.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: path, Data: data, Storage: m.storage, MountPoint: "idp/",
	})
}

func (m *doorModel) mustWrite(path string, data map[string]any) {
	if resp, err := m.do(logical.UpdateOperation, path, data); err != nil || resp.IsError() {
		m.rt.Fatalf("write %s: %v %v", path, err, respErr(resp))
	}
}

func (m *doorModel) next() int { m.seq++; return m.seq }

// doorTolerate lists violation names (comma-separated, from DOOR_TOLERATE)
// that are counted instead of failing, to look past a known violation.
var doorTolerate = strings.Split(os.Getenv("DOOR_TOLERATE"), ",")

// violate fails the sequence, naming the violation, unless it is tolerated.
// The failure names only the violation, and the details (times, which
// retry jitter moves) go to the log: rapid shrinks only a failure it
// reproduces to the letter.
func (m *doorModel) violate(rt *rapid.T, name, format string, args ...any) {
	if slices.Contains(doorTolerate, name) {
		m.stats.add("tolerated " + name)
		return
	}
	rt.Logf("["+name+"] "+format, args...)
	rt.Fatalf("[%s] violated (details in the line above)", name)
}

// idpOf is the IdP behind a role.
func (m *doorModel) idpOf(role string) *fakeidp.Server {
	if role == "x" {
		return m.std
	}
	return m.sa
}

// keyOf is the token key a role's tokens live under.
func keyOf(role string) string {
	if role == "x" {
		return roleTokenKey("x").String()
	}
	return configTokenKey("sa").String()
}

func (m *doorModel) loginGrant() bool { return m.grant != "client_credentials" }

// clockExcess is how far this node's clock lags past the one second
// (backend.HoldSkew) by which Vault nodes' clocks may disagree under the
// lease promise: leases and expiries computed on this node may be off by
// that much. A token killed at the IdP is never excused.
func (m *doorModel) clockExcess() time.Duration { return max(0, m.lag-backend.HoldSkew) }

func (m *doorModel) faulty(idp *fakeidp.Server) bool {
	return idp.PendingFaults() > 0 || m.storage.pending() > 0
}

// liveLease says whether a lease of the IdP's tokens still runs.
func (m *doorModel) liveLease(idp *fakeidp.Server) bool {
	now := m.clock.Now()
	for _, l := range m.leases {
		if l.idp == idp && l.end.After(now) {
			return true
		}
	}
	return false
}

// stored is the access token storage holds under a token key ("" if none).
func (m *doorModel) stored(key string) string {
	raw, err := m.storage.Get(context.Background(), backend.TokenPrefix+key)
	if err != nil || raw == nil {
		return ""
	}
	var st backend.StoredToken
	if json.Unmarshal(raw.Value, &st) != nil {
		return "?unreadable"
	}
	return st.AccessToken
}

// pendingDevice is the role's stored device login, as its JSON says.
type pendingDevice struct {
	ID       string        `json:"id"`
	Interval time.Duration `json:"interval"`
	Ended    string        `json:"ended"`
}

func (m *doorModel) deviceLogin(role string) (*pendingDevice, bool) {
	raw, err := m.storage.Get(context.Background(), deviceLoginPrefix+role)
	if err != nil || raw == nil {
		return nil, false
	}
	var l pendingDevice
	if json.Unmarshal(raw.Value, &l) != nil {
		return nil, false
	}
	return &l, true
}

// killedBy names the grant whose issue killed tok (or "revocation").
func killedBy(idp *fakeidp.Server, tok string) string {
	by, _ := idp.KilledBy(tok)
	return strings.TrimPrefix(by, "urn:ietf:params:oauth:grant-type:")
}

// issued is every access token the IdP has issued so far.
func issuedSet(idp *fakeidp.Server) map[string]bool {
	out := map[string]bool{}
	for _, tok := range idp.IssuedAccessTokens() {
		out[tok] = true
	}
	return out
}

// forbidden says why a token may not be served to requests begun after
// the action numbered seq.
type forbidden struct {
	seq  int
	why  string // "drop" or "delete", "-in-flight" for a token its request was fetching
	what string
}

// forbid records that no request begun after the action may be served any
// token in toks through key.
func (m *doorModel) forbid(key string, toks map[string]bool, f forbidden) {
	if m.forbidden[key] == nil {
		m.forbidden[key] = map[string]forbidden{}
	}
	for tok := range toks {
		if _, ok := m.forbidden[key][tok]; ok {
			continue
		}
		g := f
		if m.stepStart != nil && !m.stepStart[tok] {
			g.why += "-in-flight" // issued by the request the action interrupted
		}
		m.forbidden[key][tok] = g
	}
}

// handOut is a token as its reader got it: when, and whether the IdP
// accepted it then.
type handOut struct {
	token string
	at    time.Time
	valid bool
}

// received notes the token of a successful answer the moment it arrives.
func (m *doorModel) received(idp *fakeidp.Server, resp *logical.Response, err error) handOut {
	if err != nil || resp == nil || resp.IsError() {
		return handOut{}
	}
	tok, _ := resp.Data["access_token"].(string)
	return handOut{token: tok, at: m.clock.Now(), valid: idp.Valid(tok)}
}

// serve checks a token handed out to a request begun at seq, and holds it.
func (m *doorModel) serve(rt *rapid.T, role, via string, h handOut, ttl time.Duration, seq int) {
	idp, tok, now := m.idpOf(role), h.token, h.at
	if !h.valid {
		killed, dead := idp.KilledAt(tok)
		// Killed when it was handed out: a kill after it (an action in
		// flight beside the read) is the leases' business, checked there.
		dead = dead && !killed.After(now)
		exp, _ := idp.ExpiresAt(tok)
		if !dead && !exp.Before(now.Add(-m.clockExcess())) {
			// Expired by no more than this node's clock lags past the skew:
			// what the promise excuses (a killed token never is).
			m.stats.add("expired by the clock's lag")
			return
		}
		why := "expired"
		if dead {
			why = "killed-by-" + killedBy(idp, tok) + " at " + killed.Format(time.TimeOnly)
		}
		m.violate(rt, "served-"+strings.Fields(why)[0], "%s of role %s handed out a token the IdP no longer accepts (%s; it expires %s, now is %s)",
			via, role, why, exp.Format(time.TimeOnly), now.Format(time.TimeOnly))
		return
	}
	if f, ok := m.forbidden[keyOf(role)][tok]; ok && f.seq < seq {
		exp, _ := idp.ExpiresAt(tok)
		m.violate(rt, "served-after-"+f.why, "%s of role %s (request #%d) handed out a token (expiring %s) the IdP issued before #%d, %s",
			via, role, seq, exp.Format(time.TimeOnly), f.seq, f.what)
		return
	}
	if at, ok := m.needLogin[role]; ok && at < seq {
		m.violate(rt, "served-without-login", "%s of role %s handed out a token although every role of sa was deleted and %s written again since: it must ask for a login first", via, role, role)
		return
	}
	if ttl < time.Second {
		m.violate(rt, "short-hold", "%s of role %s: holding period %s, want at least 1s", via, role, ttl)
		return
	}
	m.leases = append(m.leases, doorLease{idp: idp, role: role, via: via, token: tok, end: now.Add(ttl), excess: m.clockExcess()})
	m.stats.add(via + " served")
}

// excuse forgets the leases of sa's tokens: a drop's answer said that the
// shared token may die under them.
func (m *doorModel) excuse(rt *rapid.T, resp *logical.Response, why string) {
	if resp == nil || len(resp.Warnings) == 0 {
		m.violate(rt, "drop-without-warning", "%s replaces the shared token, and its answer must say so", why)
	}
	m.leases = slices.DeleteFunc(m.leases, func(l doorLease) bool { return l.idp == m.sa })
}

// ---- operations: perform does the I/O (it may run while another request
// is in flight, so it touches no model state); settle checks and records.

type readResult struct {
	role, path string
	readerMin  *time.Duration
	existed    bool
	faulty     bool
	seq        int
	resp       *logical.Response
	err        error
	got        handOut
}

func (m *doorModel) drawRead(rt *rapid.T, path string) (string, *time.Duration) {
	role := rapid.SampledFrom(saRoles).Draw(rt, "role")
	readerMin := drawReaderMinTTL(rt, m.roleMin[role])
	return role, readerMin
}

func (m *doorModel) performRead(role, path string, readerMin *time.Duration, seq int) readResult {
	r := readResult{role: role, path: path, readerMin: readerMin, existed: m.exists[role], faulty: m.faulty(m.sa), seq: seq}
	data := map[string]any{}
	if readerMin != nil {
		data["min_ttl"] = int(readerMin.Seconds())
	}
	r.resp, r.err = m.do(logical.ReadOperation, path+"/"+role, data)
	r.got = m.received(m.sa, r.resp, r.err)
	return r
}

func (m *doorModel) settleRead(rt *rapid.T, r readResult, interfered bool) {
	failed := r.err != nil || r.resp == nil || r.resp.IsError()
	msg := respErr(r.resp)
	if r.err != nil {
		msg = r.err.Error()
	}
	via := r.path
	if !r.existed && !interfered {
		if !failed {
			m.violate(rt, "deleted-role-served", "%s/%s of a deleted role answered a token", r.path, r.role)
		}
		m.stats.add(via + " of a deleted role")
		return
	}
	if at, ok := m.needLogin[r.role]; ok && at < r.seq {
		defer delete(m.needLogin, r.role) // only the first read after the write is bound
	}
	if r.existed && !interfered && r.readerMin != nil && *r.readerMin > m.roleMin[r.role] {
		if !failed || !strings.Contains(msg, "min_ttl") {
			m.violate(rt, "min-ttl", "a reader's min_ttl %s above role %s's %s must be refused with a 400 naming min_ttl, got %v %q", r.readerMin, r.role, m.roleMin[r.role], r.err, msg)
		}
		return
	}
	if failed {
		switch {
		case m.loginGrant() && strings.Contains(msg, "login"):
			m.stats.add(via + " needs a login")
		case interfered || r.faulty:
			m.stats.add(via + " failed (fault or interference)")
		default:
			m.violate(rt, "read-failed", "%s/%s failed with no fault injected: %q", r.path, r.role, msg)
		}
		return
	}
	var ttl time.Duration
	if r.path == "creds" {
		if r.resp.Secret == nil {
			m.violate(rt, "no-lease", "creds/%s answered no lease", r.role)
			return
		}
		ttl = r.resp.Secret.TTL
	} else {
		secs, _ := r.resp.Data["expires_in"].(int64)
		ttl = time.Duration(secs) * time.Second
	}
	m.serve(rt, r.role, via, r.got, ttl, r.seq)
}

// loginResult is one login: begun (auth-url or device-code), completed at
// the IdP (code issued, or device approved) and finished (callback, poll).
type loginResult struct {
	role      string
	existed   bool
	faulty    bool
	seq       int
	beginErr  string // the begin step's refusal
	finishErr string // the callback's refusal
	completed bool   // a token was stored
	polled    bool
	prev      string // the stored shared token before the finish
	prevAlive bool
	after     string
}

func (m *doorModel) performLogin(role string, seq int) loginResult {
	r := loginResult{role: role, existed: m.exists[role], faulty: m.faulty(m.sa), seq: seq}
	errOf := func(resp *logical.Response, err error) string {
		switch {
		case err != nil:
			return err.Error()
		case resp == nil:
			return ""
		case resp.IsError():
			return "refused: " + respErr(resp)
		}
		return ""
	}
	switch m.grant {
	case "client_credentials":
		resp, err := m.do(logical.UpdateOperation, "auth-url/"+role, nil)
		if e := errOf(resp, err); e == "" {
			r.beginErr = "ok" // must not happen: checked in settle
		}
		return r
	case "authorization_code":
		resp, err := m.do(logical.UpdateOperation, "auth-url/"+role, nil)
		if e := errOf(resp, err); e != "" {
			r.beginErr = e
			return r
		}
		u, perr := url.Parse(fmt.Sprint(resp.Data["url"]))
		if perr != nil {
			r.beginErr = "unparsable login url: " + perr.Error()
			return r
		}
		q := u.Query()
		code := m.sa.IssueCode(q.Get("redirect_uri"), q.Get("scope"), q.Get("code_challenge"))
		r.prev = m.stored(keyOf(role))
		r.prevAlive = r.prev != "" && m.sa.Valid(r.prev)
		cb, err := m.do(logical.UpdateOperation, "callback", map[string]any{"code": code, "state": resp.Data["state"]})
		r.finishErr = errOf(cb, err)
		r.completed = r.finishErr == ""
	case "device_code":
		resp, err := m.do(logical.UpdateOperation, "device-code/"+role, nil)
		if e := errOf(resp, err); e != "" {
			r.beginErr = e
			return r
		}
		if uc, _ := resp.Data["user_code"].(string); !m.sa.ApproveDevice(uc) {
			r.beginErr = fmt.Sprintf("the IdP knows no user code %q", uc)
			return r
		}
		r.prev = m.stored(keyOf(role))
		r.prevAlive = r.prev != "" && m.sa.Valid(r.prev)
		r.polled, r.completed = m.pollOnce(role)
	}
	r.after = m.stored(keyOf(role))
	return r
}

// pollOnce waits the pending login's interval, as the poller does, and
// polls once; completed when the poll stored a new token.
func (m *doorModel) pollOnce(role string) (polled, completed bool) {
	l, ok := m.deviceLogin(role)
	if !ok || l.Ended != "" {
		return false, false
	}
	m.clock.Advance(max(l.Interval, time.Second))
	before := m.stored(keyOf(role))
	m.b.pollDeviceOnce(context.Background(), m.storage, role, l.ID)
	after := m.stored(keyOf(role))
	return true, after != "" && after != before
}

func (m *doorModel) settleLogin(rt *rapid.T, r loginResult, interfered bool) {
	if !r.existed {
		if r.completed {
			m.violate(rt, "login-of-deleted-role", "a login of deleted role %s stored a token", r.role)
		}
		return
	}
	if m.grant == "client_credentials" {
		if r.beginErr == "ok" {
			m.violate(rt, "auth-url-for-cc", "auth-url/%s began a login for a client_credentials role", r.role)
		}
		return
	}
	if r.beginErr != "" {
		if !interfered && !r.faulty {
			m.violate(rt, "login-begin-failed", "beginning a login of %s failed with no fault injected: %s", r.role, r.beginErr)
		}
		return
	}
	if r.completed {
		m.stats.add(m.grant + " login completed")
		m.orphan = false
		clear(m.needLogin)
		return
	}
	if m.grant == "authorization_code" {
		m.stats.add("callback refused")
		if !interfered && !r.faulty && !m.liveLease(m.sa) && !strings.Contains(r.finishErr, "single_active_token") {
			m.violate(rt, "callback-refused-needlessly", "the callback of %s was refused with nothing to protect: %s", r.role, r.finishErr)
		}
	} else {
		m.stats.add("device login not completed")
	}
	if !interfered && !r.faulty {
		if r.after != r.prev {
			m.violate(rt, "login-replaced-token", "a login of %s that did not complete replaced the stored token", r.role)
		}
		if r.prevAlive && !m.sa.Valid(r.prev) {
			m.violate(rt, "login-killed-token", "a login of %s that did not complete killed the stored token at the IdP", r.role)
		}
	}
}

type pollResult struct {
	role              string
	existed           bool
	faulty            bool
	polled, completed bool
	prev, after       string
	prevAlive         bool
}

func (m *doorModel) performPoll(role string) pollResult {
	r := pollResult{role: role, existed: m.exists[role], faulty: m.faulty(m.sa), prev: m.stored(keyOf(role))}
	r.prevAlive = r.prev != "" && m.sa.Valid(r.prev)
	r.polled, r.completed = m.pollOnce(role)
	r.after = m.stored(keyOf(role))
	return r
}

func (m *doorModel) settlePoll(rt *rapid.T, r pollResult, interfered bool) {
	if !r.polled {
		return
	}
	m.stats.add("poll")
	if r.completed {
		if !r.existed && !interfered {
			m.violate(rt, "poll-of-deleted-role", "a poll for deleted role %s stored a token", r.role)
			return
		}
		m.stats.add("device login completed by a later poll")
		m.orphan = false
		clear(m.needLogin)
		return
	}
	if !interfered && !r.faulty {
		if r.after != r.prev {
			m.violate(rt, "poll-replaced-token", "a poll of %s that did not complete the login replaced the stored token", r.role)
		}
		if r.prevAlive && !m.sa.Valid(r.prev) {
			m.violate(rt, "poll-killed-token", "a poll of %s that did not complete the login killed the stored token at the IdP", r.role)
		}
	}
}

type dropResult struct {
	role    string
	existed bool
	seq     int
	issued  map[string]bool // what the IdP had issued when the drop began
	resp    *logical.Response
	err     error
}

func (m *doorModel) performDrop(role string, seq int) dropResult {
	r := dropResult{role: role, existed: m.exists[role], seq: seq, issued: issuedSet(m.idpOf(role))}
	r.resp, r.err = m.do(logical.UpdateOperation, "creds/"+role+"/drop", nil)
	return r
}

func (m *doorModel) settleDrop(rt *rapid.T, r dropResult, interfered bool) {
	failed := r.err != nil || r.resp == nil || r.resp.IsError()
	if !r.existed {
		if !failed && !interfered {
			m.violate(rt, "drop-of-deleted-role", "a drop of deleted role %s succeeded", r.role)
		}
		return
	}
	if failed {
		if !interfered {
			m.violate(rt, "drop-failed", "drop of %s: %v %v", r.role, r.err, respErr(r.resp))
		}
		return
	}
	m.forbid(keyOf(r.role), r.issued, forbidden{r.seq, "drop", "the drop of role " + r.role})
	if r.role != "x" {
		m.excuse(rt, r.resp, "a drop of "+r.role)
		m.orphan = false
		clear(m.needLogin)
	}
	m.stats.add("drop")
}

type deleteResult struct {
	role      string
	seq       int
	issued    map[string]bool
	err       string
	leftover  string // what storage kept of the role right after its delete
	recreate  bool
	recreated bool
	faulty    bool
	otherLeft bool // another role of sa existed at the delete
	existed   bool // the role existed at the delete
	resp      *logical.Response
}

func (m *doorModel) performDelete(role string, recreate bool, seq int) deleteResult {
	r := deleteResult{role: role, seq: seq, issued: issuedSet(m.idpOf(role)), recreate: recreate, faulty: m.storage.pending() > 0, existed: m.exists[role]}
	for _, o := range saRoles {
		if o != role && m.exists[o] {
			r.otherLeft = true
		}
	}
	resp, err := m.do(logical.DeleteOperation, "roles/"+role, nil)
	if err != nil || (resp != nil && resp.IsError()) {
		r.err = fmt.Sprint(err, respErr(resp))
		return r
	}
	r.resp = resp
	if m.stored(roleTokenKey(role).String()) != "" {
		r.leftover = "a token at " + backend.TokenPrefix + roleTokenKey(role).String()
	}
	if _, ok := m.deviceLogin(role); ok {
		r.leftover = "a device login at " + deviceLoginPrefix + role
	}
	if recreate {
		resp, err := m.do(logical.UpdateOperation, "roles/"+role, m.roleData(role))
		r.recreated = err == nil && !resp.IsError()
	}
	return r
}

func (m *doorModel) settleDelete(rt *rapid.T, r deleteResult, interfered bool) {
	if r.err != "" {
		if !interfered {
			m.violate(rt, "delete-failed", "delete of role %s: %s", r.role, r.err)
		}
		return
	}
	if r.leftover != "" {
		m.violate(rt, "delete-leftover", "right after role %s was deleted, storage still holds %s", r.role, r.leftover)
	}
	m.exists[r.role] = false
	m.stats.add("delete")
	if r.role == "x" {
		m.forbid(keyOf("x"), r.issued, forbidden{r.seq, "delete", "the delete of role x"})
	} else if m.loginGrant() && !r.otherLeft {
		// No role of sa is left to hold the login's token: the delete drops
		// (and revokes) it, and its answer must say so.
		m.orphan = true
		m.forbid(keyOf(r.role), r.issued, forbidden{r.seq, "delete", "the delete of role " + r.role + ", the last of config sa"})
		if r.existed {
			m.excuse(rt, r.resp, "the delete of the last role of a login config")
		}
	}
	if r.recreate {
		if !r.recreated {
			if !r.faulty && !interfered {
				m.violate(rt, "recreate-failed", "writing role %s again failed with no fault injected", r.role)
			}
			return
		}
		m.recreated(r.role, r.seq)
	}
}

func (m *doorModel) recreated(role string, seq int) {
	m.exists[role] = true
	m.stats.add("recreate")
	if role != "x" && m.orphan {
		m.needLogin[role] = seq
	}
}

type exchangeResult struct {
	subject *doorSubject
	existed bool
	faulty  bool
	seq     int
	resp    *logical.Response
	err     error
	got     handOut
	at      time.Time // when the answer came
}

func (m *doorModel) performExchange(s *doorSubject, seq int) exchangeResult {
	r := exchangeResult{subject: s, existed: m.exists["x"], faulty: m.faulty(m.std), seq: seq}
	data := map[string]any{"subject_token": s.token}
	if s.jwt {
		data["subject_token_type"] = fakeidp.JWTTokenType
	}
	r.resp, r.err = m.do(logical.UpdateOperation, "exchange/x", data)
	r.got, r.at = m.received(m.std, r.resp, r.err), m.clock.Now()
	return r
}

func (m *doorModel) settleExchange(rt *rapid.T, r exchangeResult, interfered bool) {
	s, now := r.subject, r.at
	failed := r.err != nil || r.resp == nil || r.resp.IsError()
	if !r.existed && !interfered {
		if !failed {
			m.violate(rt, "exchange-of-deleted-role", "exchange/x answered a token while role x was deleted")
		}
		return
	}
	if failed {
		m.stats.add("exchange refused")
		subjectDead := s.revoked || !now.Before(s.exp)
		if !interfered && !r.faulty && !subjectDead && s.exp.Sub(now) >= 5*time.Second {
			m.violate(rt, "exchange-failed", "exchange of live subject %s failed with no fault injected: %v %q", s.name, r.err, respErr(r.resp))
		}
		return
	}
	tok, now := r.got.token, r.got.at
	if got := m.std.SubjectOf(tok); got != s.token {
		m.violate(rt, "exchange-other-subject", "exchange of subject %s answered a token the IdP issued for another subject", s.name)
		return
	}
	if s.jwt && !now.Add(-m.clockExcess()).Before(s.exp) {
		m.violate(rt, "exchange-expired-jwt", "exchange of JWT subject %s answered OK at %s, after its exp %s", s.name, now.Format(time.TimeOnly), s.exp.Format(time.TimeOnly))
	}
	exp, _ := m.std.ExpiresAt(tok)
	if fetched := exp.Add(-doorStdTTL); s.revoked && now.Sub(fetched) > exchangeCache+m.clockExcess() {
		m.violate(rt, "exchange-revoked-subject", "exchange of revoked subject %s answered a token fetched from the IdP %s earlier, past the exchange cache's %s",
			s.name, now.Sub(fetched).Truncate(time.Second), exchangeCache)
	}
	var ttl time.Duration
	if r.resp.Secret != nil {
		ttl = r.resp.Secret.TTL
	}
	m.serve(rt, "x", "exchange", r.got, ttl, r.seq)
}

// ---- steps

func (m *doorModel) read(rt *rapid.T, path string) {
	role, readerMin := m.drawRead(rt, path)
	r := m.performRead(role, path, readerMin, m.next())
	m.settleRead(rt, r, false)
}

func (m *doorModel) login(rt *rapid.T) {
	role := rapid.SampledFrom(saRoles).Draw(rt, "role")
	m.settleLogin(rt, m.performLogin(role, m.next()), false)
}

func (m *doorModel) poll(rt *rapid.T) {
	role := rapid.SampledFrom(saRoles).Draw(rt, "role")
	m.next()
	m.settlePoll(rt, m.performPoll(role), false)
}

func (m *doorModel) advance(rt *rapid.T) {
	ms := rapid.SampledFrom([]int{0, 1, 250, 999, 1000, 1001, 1500, 2000, 3000, 5000, 9000, 14_000, 29_000, 31_000, 45_000, 61_000}).Draw(rt, "advance_ms")
	m.clock.Advance(time.Duration(ms) * time.Millisecond)
}

func (m *doorModel) drop(rt *rapid.T) {
	role := rapid.SampledFrom([]string{"a", "b", "x"}).Draw(rt, "role")
	m.settleDrop(rt, m.performDrop(role, m.next()), false)
}

func (m *doorModel) deleteRole(rt *rapid.T) {
	role := rapid.SampledFrom([]string{"a", "b", "x"}).Draw(rt, "role")
	recreate := drawRecreate(rt)
	m.settleDelete(rt, m.performDelete(role, recreate, m.next()), false)
}

// drawRecreate: a delete is mostly followed by writing the role again at
// once, so that most steps find the roles there.
func drawRecreate(rt *rapid.T) bool { return rapid.IntRange(0, 2).Draw(rt, "recreate") > 0 }

func (m *doorModel) recreateRole(rt *rapid.T) {
	var gone []string
	for _, role := range []string{"a", "b", "x"} {
		if !m.exists[role] {
			gone = append(gone, role)
		}
	}
	if len(gone) == 0 {
		return
	}
	role := rapid.SampledFrom(gone).Draw(rt, "role")
	faulty := m.storage.pending() > 0
	resp, err := m.do(logical.UpdateOperation, "roles/"+role, m.roleData(role))
	if err != nil || resp.IsError() {
		if !faulty {
			m.violate(rt, "recreate-failed", "writing role %s again: %v %v", role, err, respErr(resp))
		}
		return
	}
	m.recreated(role, m.next())
}

// during runs an operator's action, or another login, while a token
// request of a read, login, poll or exchange is in flight: after the IdP
// computed its answer, before the answer is sent.
func (m *doorModel) during(rt *rapid.T) {
	trigger := rapid.SampledFrom([]string{"readCreds", "readToken", "login", "poll", "exchange"}).Draw(rt, "trigger")
	var action string
	var actionRole string
	if trigger == "exchange" {
		action = rapid.SampledFrom([]string{"delete", "drop"}).Draw(rt, "action")
		actionRole = "x"
	} else {
		action = rapid.SampledFrom([]string{"delete", "drop", "login", "poll"}).Draw(rt, "action")
		actionRole = rapid.SampledFrom(saRoles).Draw(rt, "action_role")
	}
	recreate := action == "delete" && drawRecreate(rt)

	var (
		role      string
		readerMin *time.Duration
		subject   *doorSubject
	)
	switch trigger {
	case "readCreds", "readToken":
		role, readerMin = m.drawRead(rt, map[string]string{"readCreds": "creds", "readToken": "token"}[trigger])
	case "login", "poll":
		role = rapid.SampledFrom(saRoles).Draw(rt, "role")
	case "exchange":
		subject = m.drawSubject(rt, m.subjects)
	}
	trigSeq, actSeq := m.next(), m.next()
	m.stepStart = issuedSet(m.sa)
	maps.Copy(m.stepStart, issuedSet(m.std))
	defer func() { m.stepStart = nil }()

	var settleAction func()
	act := func() {
		switch action {
		case "delete":
			r := m.performDelete(actionRole, recreate, actSeq)
			settleAction = func() { m.settleDelete(rt, r, true) }
		case "drop":
			r := m.performDrop(actionRole, actSeq)
			settleAction = func() { m.settleDrop(rt, r, true) }
		case "login":
			r := m.performLogin(actionRole, actSeq)
			settleAction = func() { m.settleLogin(rt, r, true) }
		case "poll":
			r := m.performPoll(actionRole)
			settleAction = func() { m.settlePoll(rt, r, true) }
		}
	}
	idp := m.sa
	if trigger == "exchange" {
		idp = m.std
	}
	var fired atomic.Bool
	done := make(chan struct{})
	idp.SetBeforeAnswer(func(string) {
		if !fired.CompareAndSwap(false, true) {
			return
		}
		go func() { defer close(done); act() }()
		select {
		case <-done:
		case <-time.After(hookWait):
			m.stats.add("during: answer sent before the action ended")
		}
	})
	var settleTrigger func()
	switch trigger {
	case "readCreds", "readToken":
		r := m.performRead(role, map[string]string{"readCreds": "creds", "readToken": "token"}[trigger], readerMin, trigSeq)
		settleTrigger = func() { m.settleRead(rt, r, true) }
	case "login":
		r := m.performLogin(role, trigSeq)
		settleTrigger = func() { m.settleLogin(rt, r, true) }
	case "poll":
		r := m.performPoll(role)
		settleTrigger = func() { m.settlePoll(rt, r, true) }
	case "exchange":
		r := m.performExchange(subject, trigSeq)
		settleTrigger = func() { m.settleExchange(rt, r, true) }
	}
	idp.SetBeforeAnswer(nil)
	if fired.Load() {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			rt.Fatalf("the %s run while a %s was in flight never ended", action, trigger)
		}
		m.stats.add("during: action in flight")
		settleAction()
		settleTrigger()
		return
	}
	// No token request went out: the action follows the trigger.
	act()
	settleTrigger()
	settleAction()
}

func (m *doorModel) restart(rt *rapid.T) {
	m.checkMemoryMatchesStorage(rt)
	m.lag = rapid.SampledFrom([]time.Duration{0, time.Second, 3 * time.Second, 5 * time.Second}).Draw(rt, "lag")
	m.mount()
	if m.lag > 0 {
		m.stats.add("restart with a lagging clock")
	}
}

func (m *doorModel) drawIdP(rt *rapid.T) *fakeidp.Server {
	if rapid.Bool().Draw(rt, "std") {
		return m.std
	}
	return m.sa
}

func (m *doorModel) loseAnswers(rt *rapid.T) {
	idp := m.drawIdP(rt)
	n := rapid.IntRange(1, 3).Draw(rt, "lost")
	how := rapid.SampledFrom([]fakeidp.Loss{fakeidp.LossGateway, fakeidp.LossHangUp}).Draw(rt, "how")
	idp.LoseNextAnswers(n, how)
}

func (m *doorModel) idpDown(rt *rapid.T) {
	m.drawIdP(rt).FailNext(rapid.IntRange(1, 3).Draw(rt, "failures"), 503)
}

func (m *doorModel) storageFault(rt *rapid.T) {
	m.storage.mu.Lock()
	m.storage.failPuts = rapid.IntRange(1, 2).Draw(rt, "failed_puts")
	m.storage.mu.Unlock()
}

func (m *doorModel) refuseRefreshes(*rapid.T) { m.sa.RefuseRefreshes() }

func (m *doorModel) exchange(rt *rapid.T) {
	s := m.drawSubject(rt, m.subjects)
	m.settleExchange(rt, m.performExchange(s, m.next()), false)
}

// drawSubject draws one of from by name.
func (m *doorModel) drawSubject(rt *rapid.T, from []*doorSubject) *doorSubject {
	names := make([]string, len(from))
	for i, s := range from {
		names[i] = s.name
	}
	return from[slices.Index(names, rapid.SampledFrom(names).Draw(rt, "subject"))]
}

// outliveSubject moves the clock just past a subject's life.
func (m *doorModel) outliveSubject(rt *rapid.T) {
	s := m.drawSubject(rt, m.subjects[:2])
	if left := s.exp.Sub(m.clock.Now()); left >= 0 && left < 10*time.Minute {
		m.clock.Advance(left + time.Second)
	}
}

// revokeSubject revokes an opaque subject at the IdP, and may then let the
// exchange cache's life pass.
func (m *doorModel) revokeSubject(rt *rapid.T) {
	s := m.drawSubject(rt, m.subjects[2:])
	m.std.RevokeSubject(s.token)
	s.revoked = true
	if rapid.Bool().Draw(rt, "outlive_cache") {
		m.clock.Advance(exchangeCache + time.Second)
	}
}

// checkInvariants runs after every step.
func (m *doorModel) checkInvariants(rt *rapid.T) {
	now := m.clock.Now()
	var live []doorLease
	for _, l := range m.leases {
		if killed, dead := l.idp.KilledAt(l.token); dead && killed.Before(l.end.Add(-l.excess)) {
			by := killedBy(l.idp, l.token)
			m.violate(rt, "lease-killed-by-"+by, "a %s hand-out of role %s runs until %s, but the IdP killed its token at %s (%s early) issuing a token for %s",
				l.via, l.role, l.end.Format(time.TimeOnly), killed.Format(time.TimeOnly), l.end.Sub(killed).Truncate(time.Second), by)
			continue // reported once
		}
		if exp, ok := l.idp.ExpiresAt(l.token); !ok || exp.Before(l.end.Add(-l.excess)) {
			m.violate(rt, "lease-outlives-token", "a %s hand-out of role %s runs until %s, past its token's expiry %s", l.via, l.role, l.end.Format(time.TimeOnly), exp.Format(time.TimeOnly))
			continue
		}
		if l.end.After(now) {
			live = append(live, l)
		}
	}
	m.leases = live
	if n := m.sa.MaxConcurrentTokenRequests(); n > 1 && !m.overlapSeen {
		m.overlapSeen = true
		m.violate(rt, "overlap", "%d token requests of the single-active client overlapped", n)
	}
	m.checkMemoryMatchesStorage(rt)
	for _, role := range []string{"a", "b", "x"} {
		if m.exists[role] {
			continue
		}
		if m.stored(roleTokenKey(role).String()) != "" {
			m.violate(rt, "deleted-role-token", "role %s was deleted, but storage holds a token at %s", role, backend.TokenPrefix+roleTokenKey(role).String())
		}
		if _, ok := m.deviceLogin(role); ok {
			m.violate(rt, "deleted-role-device-login", "role %s was deleted, but storage holds its device login", role)
		}
	}
}

func (m *doorModel) checkMemoryMatchesStorage(rt *rapid.T) {
	for _, key := range []string{configTokenKey("sa").String(), roleTokenKey("a").String(), roleTokenKey("b").String(), roleTokenKey("x").String()} {
		mem, ok := m.b.tokens.InMemory(key)
		if !ok {
			continue
		}
		raw, err := m.storage.Get(context.Background(), backend.TokenPrefix+key)
		if err != nil || raw == nil {
			m.violate(rt, "memory-storage", "token %s is held in memory but not in storage (%v)", key, err)
			continue
		}
		var stored backend.StoredToken
		if err := json.Unmarshal(raw.Value, &stored); err != nil {
			rt.Fatal(err)
		}
		if stored.AccessToken != mem.AccessToken || stored.Unusable != mem.Unusable || !stored.MintAfter.Equal(mem.MintAfter) ||
			stored.Fingerprint != mem.Fingerprint || stored.RefreshToken != mem.RefreshToken {
			m.violate(rt, "memory-storage", "token %s: memory and storage differ (memory unusable=%v mint_after=%s, storage unusable=%v mint_after=%s, same access token %v)",
				key, mem.Unusable, mem.MintAfter.Format(time.TimeOnly), stored.Unusable, stored.MintAfter.Format(time.TimeOnly), stored.AccessToken == mem.AccessToken)
		}
	}
}

// doorStats counts what the sequences exercised, so that a run shows its
// doors were really used.
type doorStats struct {
	mu     sync.Mutex
	counts map[string]*atomic.Int64
}

func (s *doorStats) add(what string) {
	s.mu.Lock()
	c, ok := s.counts[what]
	if !ok {
		c = &atomic.Int64{}
		s.counts[what] = c
	}
	s.mu.Unlock()
	c.Add(1)
}

func (s *doorStats) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.counts))
	for k := range s.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, s.counts[k].Load())
	}
	return strings.Join(parts, ", ")
}
