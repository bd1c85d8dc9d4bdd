package main

import (
	"context"
	"fmt"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/vaultproc"
)

// Stages on the single-node raft Vault: what leases cost in raft writes and
// live leases, many leases expiring at once, and a restart with many
// configs and roles in storage.

const costReads = 1000

// leaseCost: costReads reads each of idp/creds (a lease per read),
// idp/token (none) and idp/creds through Vault Proxy on a role with
// renewable_leases (one lease per token life), counting raft log entries
// (sys/leader's raft_committed_index), live leases and engine reads.
func (e *env) leaseCost() error {
	t := e.raft
	idle, err := e.raftWrites(func() error { time.Sleep(2 * time.Second); return nil })
	if err != nil {
		return err
	}
	e.rep.raft.idleWritesPerSec = float64(idle) / 2
	if err := t.v.write("idp/roles/px", map[string]any{"config": "c", "scopes": "read", "renewable_leases": true, "min_ttl": "30m"}); err != nil {
		return err
	}
	proxyAddr, proxy, err := e.startProxy(context.Background(), t)
	if err != nil {
		e.rep.raft.proxyNote = fmt.Sprintf("Vault Proxy did not start: %v", err)
		logf("%s", e.rep.raft.proxyNote)
	} else {
		defer proxy.Stop()
	}
	type read struct {
		name, path, leases string
		via                *vaultHTTP
		path2              backend.ReadPath
	}
	reads := []read{
		{"idp/creds (leased)", "idp/creds/acct", "sys/leases/lookup/idp/creds/acct/", t.v, backend.ReadCreds},
		{"idp/token (no lease)", "idp/token/acct", "sys/leases/lookup/idp/token/acct/", t.v, backend.ReadToken},
	}
	if proxyAddr != "" {
		reads = append(reads, read{"idp/creds through Vault Proxy (renewable_leases)", "idp/creds/px", "sys/leases/lookup/idp/creds/px/", newVaultHTTP(proxyAddr, "", 16), backend.ReadCreds})
	}
	for _, r := range reads {
		leases0, err := t.v.count(r.leases)
		if err != nil {
			return err
		}
		engine0, err := e.engineReads(t, r.path2)
		if err != nil {
			return err
		}
		idp0 := e.idp.TokenRequests()
		var s sample
		writes, err := e.raftWrites(func() error {
			s = load(r.via, 8, costReads, func(int) string { return r.path })
			return s.err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		leases1, err := t.v.count(r.leases)
		if err != nil {
			return err
		}
		engine1, err := e.engineReads(t, r.path2)
		if err != nil {
			return err
		}
		e.rep.raft.cost = append(e.rep.raft.cost, costRow{read: r.name, reads: costReads, raftWrites: writes,
			liveLeases: leases1 - leases0, engineReads: engine1 - engine0, idpRequests: e.idp.TokenRequests() - idp0, p50: s.stats().p50})
	}
	return nil
}

// raftWrites is how many raft log entries were committed while f ran.
func (e *env) raftWrites(f func() error) (uint64, error) {
	i0, err := e.raft.raft.CommittedIndex()
	if err != nil {
		return 0, err
	}
	if err := f(); err != nil {
		return 0, err
	}
	i1, err := e.raft.raft.CommittedIndex()
	return i1 - i0, err
}

// engineReads is how many reads of path (creds or token) of config c the
// engine served on t, from idp/metrics.
func (e *env) engineReads(t *vaultTarget, path backend.ReadPath) (int, error) {
	return e.engineReadsOf(t, "c", path)
}

// engineReadsOf is engineReads of another config.
func (e *env) engineReadsOf(t *vaultTarget, config string, path backend.ReadPath) (int, error) {
	var m struct {
		Configs map[string]backend.ConfigSnapshot `json:"configs"`
	}
	if err := t.v.getData("idp/metrics", &m); err != nil {
		return 0, err
	}
	r := m.Configs[config].Reads[path.String()]
	return int(r["hit"] + r["miss"]), nil
}

// expiry: o.expire creds leases of one role made at once (32 clients), then
// left to expire together. While Vault revokes them (a raft delete and a
// Revoke call into the plugin each), one client keeps reading idp/token
// and floor/token: their p50 against the same reads before, the plugin's
// and Vault's CPU time, raft writes per expired lease, and IdP requests
// (Revoke must make none).
func (e *env) expiry() error {
	t := e.raft
	expiryTTL := e.o.expTTL
	if err := t.v.write("idp/roles/exp", map[string]any{"config": "c", "scopes": "read", "ttl": int(expiryTTL.Seconds())}); err != nil {
		return err
	}
	pids, err := t.srv.PluginPIDs(pluginName)
	if err != nil || len(pids) != 1 {
		return fmt.Errorf("want one %s process, found %v (%v)", pluginName, pids, err)
	}
	other := func(i int) string {
		if i%2 == 0 {
			return "idp/token/hot"
		}
		return "floor/token/hot"
	}
	base := load(t.v, 1, 600, other)
	if base.err != nil {
		return base.err
	}
	t0 := time.Now()
	if s := load(t.v, 32, e.o.expire, func(int) string { return "idp/creds/exp" }); s.err != nil {
		return s.err
	}
	made := time.Since(t0)
	firstExpiry := t0.Add(expiryTTL)
	live, err := t.v.count("sys/leases/lookup/idp/creds/exp/")
	if err != nil {
		return err
	}
	if wait := time.Until(firstExpiry); wait > 0 {
		time.Sleep(wait)
	}
	cpu0, _ := vaultproc.CPUTime(pids[0])
	vcpu0, _ := vaultproc.CPUTime(t.srv.VaultPID())
	idx0, err := t.raft.CommittedIndex()
	if err != nil {
		return err
	}
	idp0 := e.idp.TokenRequests()
	w0 := time.Now()
	var during sample
	left := live
	for i := 0; left > 0 && time.Since(w0) < 5*time.Minute; i++ {
		s := load(t.v, 1, 100, other)
		if s.err != nil {
			return s.err
		}
		during.add(s)
		if left, err = t.v.count("sys/leases/lookup/idp/creds/exp/"); err != nil {
			return err
		}
	}
	window := time.Since(w0)
	cpu1, _ := vaultproc.CPUTime(pids[0])
	vcpu1, _ := vaultproc.CPUTime(t.srv.VaultPID())
	idx1, err := t.raft.CommittedIndex()
	if err != nil {
		return err
	}
	e.rep.raft.expiry = expiryRow{leases: live, made: made, ttl: expiryTTL, window: window, left: left,
		pluginCPU: cpu1 - cpu0, vaultCPU: vcpu1 - vcpu0, raftWrites: idx1 - idx0, idpRequests: e.idp.TokenRequests() - idp0,
		before: base.stats(), during: during.stats()}
	return nil
}

// restartRaft: o.restart configs and as many roles (one per config) in
// storage, then a restart of the raft Vault: the time until it is active
// and until the first read answers, and the plugin's memory then.
func (e *env) restartRaft() error {
	t := e.raft
	name := func(i int) string { return fmt.Sprintf("r%05d", i) }
	t0 := time.Now()
	if err := parallel(32, e.o.restart, func(i int) error {
		if err := t.v.write("idp/config/"+name(i), map[string]any{
			"token_url": e.idpTS.URL + e.idp.TokenPath(), "client_id": clientID, "client_secret": secret,
		}); err != nil {
			return err
		}
		return t.v.write("idp/roles/"+name(i), map[string]any{"config": name(i), "scopes": "read"})
	}); err != nil {
		return err
	}
	write := time.Since(t0)
	pids, _ := t.srv.PluginPIDs(pluginName)
	var rssBefore int64
	if len(pids) == 1 {
		rssBefore, _ = vaultproc.RSS(pids[0])
	}
	r0 := time.Now()
	if err := t.raft.Restart(context.Background()); err != nil {
		return err
	}
	active := time.Since(r0)
	pids, _ = t.srv.PluginPIDs(pluginName)
	pluginAtActive := len(pids)
	// A fresh connection pool: the old server's connections are gone.
	t.v = newVaultHTTP(t.srv.Addr, t.srv.Token, 64)
	var firstErr error
	for time.Since(r0) < 2*time.Minute {
		if _, firstErr = t.v.get("idp/token/hot"); firstErr == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if firstErr != nil {
		return fmt.Errorf("no read answered within 2 minutes of the restart: %w", firstErr)
	}
	first := time.Since(r0)
	// A role of the many: its config and role are loaded on first use.
	m0 := time.Now()
	if _, err := t.v.get("idp/token/" + name(e.o.restart/2)); err != nil {
		return err
	}
	manyFirst := time.Since(m0)
	pids, _ = t.srv.PluginPIDs(pluginName)
	var rss int64
	if len(pids) == 1 {
		rss, _ = vaultproc.RSS(pids[0])
	}
	e.rep.raft.restart = restartRow{configs: e.o.restart, roles: e.o.restart, write: write, active: active, first: first,
		manyFirst: manyFirst, pluginAtActive: pluginAtActive, rssBefore: rssBefore, rssAfter: rss}
	return nil
}
