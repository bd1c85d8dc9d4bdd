package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/crypto/bcrypt"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/vaultproc"
)

// The per-person stage: o.entities userpass users, each logged in to Vault
// (so each request carries its own identity entity) and at the IdP, each
// holding its own token under one per_entity role, on the dev and on the
// raft Vault. It measures a person's cache-hit read of their own token
// against the floor plugin (paired rounds, as the cache-hit cells), the
// plugin's memory per person's token, the first reads after a plugin
// reload, and on the dev Vault the periodic sweep of their expired tokens.

const (
	peopleRole     = "pe"
	peopleConfig   = "people"
	peopleClient   = "people-client"
	peoplePassword = "bench-people-pw"
	peopleConc     = 16 // clients that write the users and log them in
	peoplePolicy   = `
path "idp/creds/pe"    { capabilities = ["read"] }
path "idp/token/pe"    { capabilities = ["read"] }
path "idp/auth-url/pe" { capabilities = ["update"] }
path "floor/creds/pe"  { capabilities = ["read"] }
path "floor/token/pe"  { capabilities = ["read"] }
`
)

// peopleReads are the per-person cells: each read with a person's own
// Vault token; the floor reads with the same people's tokens, so that
// Vault's token lookup and lease bookkeeping cost both alike.
var peopleReads = []hotRead{
	{"idp/creds (own token, cache hit, leased)", "idp/creds", "idp/creds/" + peopleRole, "floor/creds"},
	{"floor/creds (constant, leased)", "floor/creds", "floor/creds/" + peopleRole, ""},
	{"idp/token (own token, cache hit, no lease)", "idp/token", "idp/token/" + peopleRole, "floor/token"},
	{"floor/token (constant, no lease)", "floor/token", "floor/token/" + peopleRole, ""},
}

// countingHandler counts every request that reaches the IdP, of any kind.
type countingHandler struct {
	h http.Handler
	n atomic.Int64
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	c.h.ServeHTTP(w, r)
}

// peopleOn is the people of one Vault and their IdP.
type peopleOn struct {
	t         *vaultTarget
	ttl       time.Duration // life of the IdP's tokens
	idp       *fakeidp.Server
	hits      *countingHandler
	ts        *httptest.Server
	names     []string
	tokens    []string // Vault client token of each person
	lastIssue time.Time
	row       *peopleVault
}

type peopleStage struct {
	e         *env
	hash      string // bcrypt hash of peoplePassword at bcrypt.MinCost
	dev, raft *peopleOn
}

// entityStages are the per-person stages, run after every other: the dev
// Vault's people, the raft Vault's, then the dev Vault's sweep, by which
// time the dev people's tokens (e.o.entityTTL) have expired.
func (e *env) entityStages() []struct {
	name string
	f    func() error
} {
	if e.o.entities <= 0 {
		return nil
	}
	s := &peopleStage{e: e}
	e.rep.people.n = e.o.entities
	stages := []struct {
		name string
		f    func() error
	}{
		{"storage calls at a start with people's tokens (in-process)", e.peopleStartupCalls},
		{"per-person tokens (dev)", func() (err error) { s.dev, err = s.on(e.dev, e.o.entityTTL, e.o.n); return err }},
	}
	if e.raft != nil {
		stages = append(stages, struct {
			name string
			f    func() error
		}{"per-person tokens (raft)", func() (err error) { s.raft, err = s.on(e.raft, time.Hour, e.o.raftN); return err }})
	}
	return append(stages, struct {
		name string
		f    func() error
	}{"sweep of expired people's tokens (dev)", s.sweep})
}

// on sets up the people on t and measures their reads: ttl is the life of
// their tokens, n the requests per cell.
func (s *peopleStage) on(t *vaultTarget, ttl time.Duration, n int) (*peopleOn, error) {
	e := s.e
	N := e.o.entities
	if s.hash == "" {
		// Vault's userpass hashes a password at bcrypt's default cost (10),
		// tens of milliseconds of CPU per user write and per login: the
		// people get a pre-hashed password at the least cost instead.
		h, err := bcrypt.GenerateFromPassword([]byte(peoplePassword), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		s.hash = string(h)
	}
	p := &peopleOn{t: t, ttl: ttl, names: make([]string, N), tokens: make([]string, N), row: &peopleVault{server: t.label, n: N, ttl: ttl, loadStart: loadAvg()}}
	defer func() { p.row.loadEnd = loadAvg() }()
	e.rep.people.vaults = append(e.rep.people.vaults, p.row)
	callback := t.srv.Addr + "/v1/idp/callback"
	p.idp = fakeidp.New(fakeidp.Options{ClientID: peopleClient, ClientSecret: secret, Scopes: []string{"read"},
		RedirectURIs: []string{callback}, TokenTTL: ttl})
	p.hits = &countingHandler{h: p.idp}
	p.ts = httptest.NewServer(p.hits)
	ts := p.ts

	c := t.srv.Client
	c.SetClientTimeout(5 * time.Minute) // the revocation of the cells' leases
	if err := c.Sys().EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}); err != nil {
		return nil, err
	}
	if err := c.Sys().PutPolicy("people", peoplePolicy); err != nil {
		return nil, err
	}
	if err := t.v.write("idp/config/"+peopleConfig, map[string]any{
		"token_url": ts.URL + p.idp.TokenPath(), "auth_url": ts.URL + "/connect/authorize",
		"client_id": peopleClient, "client_secret": secret, "redirect_uris": callback,
	}); err != nil {
		return nil, err
	}
	if err := t.v.write("idp/roles/"+peopleRole, map[string]any{"config": peopleConfig, "grant_type": "authorization_code", "scopes": "read", "per_entity": true}); err != nil {
		return nil, err
	}
	if t == e.dev {
		if err := s.defaultCostLogins(t); err != nil {
			return nil, err
		}
	}

	pids, err := t.srv.PluginPIDs(pluginName)
	if err != nil || len(pids) != 1 {
		return nil, fmt.Errorf("want one %s process, found %v (%v)", pluginName, pids, err)
	}
	time.Sleep(3 * time.Second) // let the plugin's GC and scavenger settle
	if p.row.rssBefore, err = vaultproc.RSS(pids[0]); err != nil {
		return nil, err
	}

	// The users, their Vault logins, their logins at the IdP: one pass each.
	t0 := time.Now()
	if err := parallel(peopleConc, N, func(i int) error {
		p.names[i] = fmt.Sprintf("p%05d", i)
		return t.v.write("auth/userpass/users/"+p.names[i], map[string]any{"password_hash": s.hash, "token_policies": "people"})
	}); err != nil {
		return nil, fmt.Errorf("writing users: %w", err)
	}
	p.row.users = time.Since(t0)
	t0 = time.Now()
	anon := t.v.as("")
	if err := parallel(peopleConc, N, func(i int) error {
		b, err := anon.do(http.MethodPost, "auth/userpass/login/"+p.names[i], map[string]any{"password": peoplePassword})
		if err != nil {
			return err
		}
		var login struct {
			Auth struct {
				ClientToken string `json:"client_token"`
				EntityID    string `json:"entity_id"`
			} `json:"auth"`
		}
		if err := json.Unmarshal(b, &login); err != nil {
			return err
		}
		if login.Auth.ClientToken == "" || login.Auth.EntityID == "" {
			return fmt.Errorf("userpass login of %s gave no token or entity", p.names[i])
		}
		p.tokens[i] = login.Auth.ClientToken
		return nil
	}); err != nil {
		return nil, fmt.Errorf("logging users in: %w", err)
	}
	p.row.logins = time.Since(t0)
	browser := &http.Client{
		Transport:     &http.Transport{MaxIdleConnsPerHost: peopleConc},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	idp0 := p.idp.TokenRequests()
	t0 = time.Now()
	if err := parallel(peopleConc, N, func(i int) error { return p.login(browser, i) }); err != nil {
		return nil, fmt.Errorf("people's logins at the IdP: %w", err)
	}
	p.lastIssue = time.Now()
	p.row.idpLogins = p.lastIssue.Sub(t0)
	p.row.setupIdP = p.idp.TokenRequests() - idp0
	time.Sleep(3 * time.Second)
	if p.row.rssAfter, err = vaultproc.RSS(pids[0]); err != nil {
		return nil, err
	}

	if err := s.cells(p, n); err != nil {
		return nil, err
	}
	if t == e.dev {
		// The cells' leases end with the people's short-lived tokens, in
		// the middle of the raft stage: revoke them now instead.
		t0 := time.Now()
		if p.row.revoked, err = t.v.count("sys/leases/lookup/idp/creds/" + peopleRole + "/"); err != nil {
			return nil, err
		}
		if err := c.Sys().RevokePrefix("idp/creds/" + peopleRole); err != nil {
			return nil, err
		}
		p.row.revoke = time.Since(t0)
	}
	return p, s.reloadReads(p)
}

// login is person i's login at the IdP: auth-url with their own Vault
// token, the IdP's authorize step (approved at once as fake_user, a 302 to
// the callback, not followed), the callback written with the code and
// state, and their first read, whose token must act as them.
func (p *peopleOn) login(browser *http.Client, i int) error {
	v := p.t.v
	var begun struct {
		URL string `json:"url"`
	}
	if err := v.as(p.tokens[i]).writeData("idp/auth-url/"+peopleRole, nil, &begun); err != nil {
		return err
	}
	u, err := url.Parse(begun.URL)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("fake_user", p.names[i])
	u.RawQuery = q.Encode()
	resp, err := browser.Get(u.String())
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || loc.Query().Get("code") == "" {
		return fmt.Errorf("authorize: HTTP %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if err := v.write("idp/callback", map[string]any{"code": loc.Query().Get("code"), "state": loc.Query().Get("state")}); err != nil {
		return err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := v.as(p.tokens[i]).getData("idp/token/"+peopleRole, &tok); err != nil {
		return err
	}
	if owner := p.idp.OwnerOf(tok.AccessToken); owner != p.names[i] {
		return fmt.Errorf("%s read a token acting as %q", p.names[i], owner)
	}
	return nil
}

// defaultCostLogins times a few users written with a password (Vault
// hashes it at bcrypt's default cost) and their logins, one at a time: what
// the people would cost without a pre-hashed password.
func (s *peopleStage) defaultCostLogins(t *vaultTarget) error {
	const k = 5
	var write, login []time.Duration
	for i := range k {
		name := fmt.Sprintf("bcrypt%d", i)
		t0 := time.Now()
		if err := t.v.write("auth/userpass/users/"+name, map[string]any{"password": peoplePassword, "token_policies": "people"}); err != nil {
			return err
		}
		write = append(write, time.Since(t0))
		t0 = time.Now()
		if _, err := t.v.as("").do(http.MethodPost, "auth/userpass/login/"+name, map[string]any{"password": peoplePassword}); err != nil {
			return err
		}
		login = append(login, time.Since(t0))
	}
	s.e.rep.people.costWrite, s.e.rep.people.costLogin = median(write), median(login)
	return nil
}

// coprimeStride is a step through n people that visits each once per n
// requests, spreading consecutive requests over the people.
func coprimeStride(n int) int {
	gcd := func(a, b int) int {
		for b != 0 {
			a, b = b, a%b
		}
		return a
	}
	for _, s := range []int{7919, 7907, 7901, 7883, 1} {
		if gcd(s, n) == 1 {
			return s
		}
	}
	return 1
}

// cells: the per-person cache-hit reads against the floor at each client
// count, split into rounds interleaved across the reads with a rotating
// order (as hotOn does); within a round every read is made by the same
// people, each with their own Vault token.
func (s *peopleStage) cells(p *peopleOn, n int) error {
	e, t := s.e, p.t
	N := len(p.tokens)
	stride := coprimeStride(N)
	person := func(i int) string { return p.tokens[(i*stride)%N] }
	for _, r := range peopleReads { // warm-up: connections, the floor's first reads
		if smp := loadAs(t.v, 8, 200, func(i int) (string, string) { return person(i), r.path }); smp.err != nil {
			return smp.err
		}
	}
	cpu, err := processCPU(t)
	if err != nil {
		return err
	}
	idp0 := p.idp.TokenRequests()
	next := 0 // the first person of the next round
	for _, c := range e.o.conc {
		first := next // each round reads other people: round r begins at first + r*per
		per := n / e.o.rounds
		rows, err := pairedRounds(t, peopleReads, c, e.o.rounds, per, cpu, func(i, r, per int) sample {
			base := first + r*per
			return loadAs(t.v, c, per, func(j int) (string, string) { return person(base + j), peopleReads[i].path })
		})
		if err != nil {
			return err
		}
		next = first + e.o.rounds*per
		e.rep.people.hot = append(e.rep.people.hot, rows...)
	}
	p.row.cellIdP = p.idp.TokenRequests() - idp0
	p.row.cellPeople = min(next, N)
	return nil
}

// reloadMount reloads the plugin's mount on t (a new backend: nothing in
// memory, the sweep's clock reset) and answers how long Vault took.
func reloadMount(t *vaultTarget) (time.Duration, error) {
	t0 := time.Now()
	err := t.v.write("sys/plugins/reload/backend", map[string]any{"mounts": []string{"idp/"}})
	return time.Since(t0), err
}

// reloadReads: a plugin reload, then the first read of one person's token
// (the config, the role and the token loaded on use), first reads of other
// people (each loads its token), and the same people again (cache hits).
func (s *peopleStage) reloadReads(p *peopleOn) error {
	t := p.t
	N := len(p.tokens)
	others := min(1000, N-1)
	idp0 := p.idp.TokenRequests()
	var err error
	if p.row.reload, err = reloadMount(t); err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := t.v.as(p.tokens[N/2]).get("idp/token/" + peopleRole); err != nil {
		return err
	}
	p.row.first = time.Since(t0)
	stride := coprimeStride(N)
	other := func(i int) (string, string) { return p.tokens[(N/2+1+i*stride)%N], "idp/token/" + peopleRole }
	first := loadAs(t.v, 1, others, other)
	if first.err != nil {
		return first.err
	}
	again := loadAs(t.v, 1, others, other)
	if again.err != nil {
		return again.err
	}
	p.row.others, p.row.again, p.row.othersN = first.stats(), again.stats(), others
	p.row.reloadIdP = p.idp.TokenRequests() - idp0
	return nil
}

// sweep (dev): once the people's tokens have expired (no refresh tokens),
// a plugin reload, so that the periodic function's next run (Vault runs it
// about every minute) sweeps at once rather than up to 10 minutes after the
// reload of reloadReads; the stored tokens are counted through sys/raw
// until none is left. The IdP must see no request.
func (s *peopleStage) sweep() error {
	p, t := s.dev, s.e.dev
	if p == nil {
		return fmt.Errorf("the dev stage set up no people")
	}
	defer func() { // the people's last stage: their IdPs are done with
		for _, q := range []*peopleOn{s.dev, s.raft} {
			if q != nil {
				q.ts.Close()
			}
		}
	}()
	row := &s.e.rep.people.sweep
	defer func() { row.load = loadAvg() }()
	row.wait = max(0, time.Until(p.lastIssue.Add(p.ttl+2*time.Second)))
	logf("waiting %s for the people's tokens to expire", row.wait.Round(time.Second))
	time.Sleep(row.wait)
	var mount struct {
		UUID string `json:"uuid"`
	}
	if err := t.v.getData("sys/mounts/idp", &mount); err != nil {
		return err
	}
	prefix := "sys/raw/logical/" + mount.UUID + "/tokens/entity/" + peopleRole + "/"
	var err error
	if row.stored, err = t.v.count(prefix); err != nil {
		return err
	}
	row.roles, _ = t.v.count("idp/roles/")
	tok0, any0 := p.idp.TokenRequests(), p.hits.n.Load()
	r0 := time.Now()
	if _, err := reloadMount(t); err != nil {
		return err
	}
	pids, _ := t.srv.PluginPIDs(pluginName)
	cpu := func() (d time.Duration) {
		for _, pid := range pids {
			c, _ := vaultproc.CPUTime(pid)
			d += c
		}
		return d
	}
	cpu0 := cpu()
	vcpu0, _ := vaultproc.CPUTime(t.srv.VaultPID())
	lastFull, firstLess := r0, time.Time{}
	row.left = row.stored
	for time.Since(r0) < 4*time.Minute && row.left > 0 {
		time.Sleep(250 * time.Millisecond)
		if row.left, err = t.v.count(prefix); err != nil {
			return err
		}
		now := time.Now()
		row.polls++
		switch {
		case row.left == row.stored:
			lastFull = now
		case firstLess.IsZero():
			firstLess = now
		}
	}
	done := time.Now()
	row.pluginCPU = cpu() - cpu0
	vcpu1, _ := vaultproc.CPUTime(t.srv.VaultPID())
	row.vaultCPU = vcpu1 - vcpu0
	if !firstLess.IsZero() {
		row.toFirst = firstLess.Sub(r0)
		row.minDur, row.maxDur = done.Sub(firstLess), done.Sub(lastFull)
	}
	row.idpToken, row.idpAny = p.idp.TokenRequests()-tok0, int(p.hits.n.Load()-any0)
	// A person whose token was swept is told to log in again.
	if _, err := t.v.as(p.tokens[0]).get("idp/token/" + peopleRole); err != nil {
		row.after = err.Error()
	}
	return nil
}

// loadAvg is the machine's load average over 1, 5 and 15 minutes.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// as is v with another Vault token ("": none), sharing its connections.
func (v *vaultHTTP) as(token string) *vaultHTTP {
	c := *v
	c.token = token
	return &c
}

// writeData writes body to path and decodes the response's data into out.
func (v *vaultHTTP) writeData(path string, body map[string]any, out any) error {
	b, err := v.do(http.MethodPost, path, body)
	if err != nil {
		return err
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return err
	}
	return json.Unmarshal(env.Data, out)
}

// loadAs is load with a Vault token per request: req gives request i's
// token and path.
func loadAs(v *vaultHTTP, conc, n int, req func(i int) (token, path string)) sample {
	return loadEach(conc, n, func(i int) (*vaultHTTP, string) {
		token, path := req(i)
		return v.as(token), path
	})
}
