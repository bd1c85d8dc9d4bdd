package main

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/vaultproc"
)

// Vault Agent templates on the raft Vault: what an Agent that renders a
// role's token costs Vault per token life when it reads idp/creds (a lease
// per render) and when it reads idp/token (no lease: the answer's ttl,
// rotation_period and last_vault_rotation tell Agent when to read again).

const agentClient = "bench-agent-client"

// agentRenders runs one Agent template on idp/creds/<role> and then one on
// idp/token/<role>, each for o.agentLives lives of o.agentLife tokens from
// a fake IdP of their own.
func (e *env) agentRenders() error {
	t := e.raft
	idp := fakeidp.New(fakeidp.Options{ClientID: agentClient, ClientSecret: secret, Scopes: []string{"read"}, TokenTTL: e.o.agentLife})
	ts := httptest.NewServer(idp)
	defer ts.Close()
	if err := t.v.write("idp/config/ag", map[string]any{"token_url": ts.URL + idp.TokenPath(), "client_id": agentClient, "client_secret": secret}); err != nil {
		return err
	}
	for _, r := range []struct {
		read, role string
		path       backend.ReadPath
	}{
		{"idp/creds (leased)", "agc", backend.ReadCreds},
		{"idp/token (no lease; ttl, rotation_period)", "agt", backend.ReadToken},
	} {
		if err := t.v.write("idp/roles/"+r.role, map[string]any{"config": "ag", "scopes": "read"}); err != nil {
			return err
		}
		row, err := e.agentRun(t, idp, r.read, r.role, r.path)
		if err != nil {
			return fmt.Errorf("%s: %w", r.read, err)
		}
		e.rep.raft.agent = append(e.rep.raft.agent, row)
	}
	return nil
}

// agentRun runs the Agent on path/role, samples its file every 100 ms and
// its live leases every second, stops it after the lives, and waits for
// the leases it was handed to expire, so that their expiry's raft writes
// count too.
func (e *env) agentRun(t *vaultTarget, idp *fakeidp.Server, read, role string, path backend.ReadPath) (agentRow, error) {
	dir := filepath.Join(e.tmp, "agent-"+role)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return agentRow{}, err
	}
	secretPath := "idp/" + path.String() + "/" + role
	conf, rendered, err := vaultproc.WriteAgentTemplateConfig(dir, t.srv.Addr, t.srv.Token, secretPath, "exit_on_retry_failure = true", "access_token")
	if err != nil {
		return agentRow{}, err
	}
	leases := "sys/leases/lookup/" + secretPath + "/"
	engine0, err := e.engineReadsOf(t, "ag", path)
	if err != nil {
		return agentRow{}, err
	}
	idp0 := idp.TokenRequests()
	i0, err := t.raft.CommittedIndex()
	if err != nil {
		return agentRow{}, err
	}
	log := filepath.Join(dir, "agent.log")
	p, err := vaultproc.StartProc(e.vault, []string{"agent", "-config=" + conf}, vaultproc.Env(dir, t.srv.Addr), log)
	if err != nil {
		return agentRow{}, err
	}
	defer p.Stop()
	row := agentRow{read: read, lives: e.o.agentLives, life: e.o.agentLife, leased: path == backend.ReadCreds}
	run := time.Duration(e.o.agentLives) * e.o.agentLife
	var last string
	var deadline, nextCount time.Time
	for start := time.Now(); deadline.IsZero() || time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if p.Exited() {
			return row, fmt.Errorf("vault agent exited:\n%s", vaultproc.Tail(log, 20))
		}
		b, _ := os.ReadFile(rendered)
		if tok := strings.TrimSpace(string(b)); tok != "" && tok != last {
			last = tok
			row.renders++
			if deadline.IsZero() { // the lives count from the first render
				deadline = time.Now().Add(run)
			}
		}
		if deadline.IsZero() && time.Since(start) > 30*time.Second {
			return row, fmt.Errorf("vault agent rendered nothing in 30 s:\n%s", vaultproc.Tail(log, 20))
		}
		if time.Now().After(nextCount) {
			n, err := t.v.count(leases)
			if err != nil {
				return row, err
			}
			row.mostLive = max(row.mostLive, n)
			nextCount = time.Now().Add(time.Second)
		}
	}
	p.Stop()
	if row.idpRequests = idp.TokenRequests() - idp0; row.idpRequests == 0 {
		return row, fmt.Errorf("the IdP saw no request")
	}
	engine1, err := e.engineReadsOf(t, "ag", path)
	if err != nil {
		return row, err
	}
	row.engineReads = engine1 - engine0
	if row.liveAtStop, err = t.v.count(leases); err != nil {
		return row, err
	}
	left := row.liveAtStop
	for until := time.Now().Add(e.o.agentLife + 10*time.Second); left > 0 && time.Now().Before(until); {
		time.Sleep(500 * time.Millisecond)
		if left, err = t.v.count(leases); err != nil {
			return row, err
		}
	}
	row.liveAfter = left
	i1, err := t.raft.CommittedIndex()
	row.raftWrites = i1 - i0
	return row, err
}
