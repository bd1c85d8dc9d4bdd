package main

import (
	"fmt"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/vaultproc"
)

// vaultTarget is one Vault the benchmark measures: the dev server
// (in-memory storage) or the single-node raft server.
type vaultTarget struct {
	label string
	srv   *vaultproc.Server
	raft  *vaultproc.RaftServer // nil for dev
	v     *vaultHTTP
}

// setupTarget writes what every stage reads on t: the config, the roles
// and a KV v2 secret.
func (e *env) setupTarget(t *vaultTarget) error {
	if err := t.v.write("idp/config/c", map[string]any{
		"token_url": e.idpTS.URL + e.idp.TokenPath(), "client_id": clientID, "client_secret": secret,
	}); err != nil {
		return err
	}
	for _, r := range []string{"hot", "cold", "herd", "acct"} {
		if err := t.v.write("idp/roles/"+r, map[string]any{"config": "c", "scopes": "read"}); err != nil {
			return err
		}
	}
	return t.v.write("secret/data/bench", map[string]any{"data": map[string]any{"value": "constant"}})
}

// hotRead is one read of the cache-hit cells; vs names the floor read it
// is compared with ("" for the floors and KV).
type hotRead struct{ name, key, path, vs string }

var hotReads = []hotRead{
	{"idp/creds (cache hit, leased)", "idp/creds", "idp/creds/hot", "floor/creds"},
	{"floor/creds (constant, leased)", "floor/creds", "floor/creds/hot", ""},
	{"idp/token (cache hit, no lease)", "idp/token", "idp/token/hot", "floor/token"},
	{"floor/token (constant, no lease)", "floor/token", "floor/token/hot", ""},
	{"secret/data (KV v2)", "kv", "secret/data/bench", ""},
}

// hotOn: cache-hit reads of idp/creds and idp/token vs the floor plugin's
// leased and unleased constant reads vs a KV v2 read on t, each cell split
// into rounds interleaved across the reads (rotating the order) so that
// drift on a shared machine hits all alike.
func (e *env) hotOn(t *vaultTarget, n int) error {
	before := e.idp.TokenRequests()
	// Warm-up: connections, the plugin processes, the token cache.
	for _, r := range hotReads {
		if s := load(t.v, 8, 300, func(int) string { return r.path }); s.err != nil {
			return s.err
		}
	}
	if got := e.idp.TokenRequests() - before; got != 1 {
		return fmt.Errorf("warm-up made %d IdP requests, want 1", got)
	}
	// CPU per request of the processes involved: Vault, this plugin, the floor.
	procs := map[string]int{"vault": t.srv.VaultPID()}
	for _, name := range []string{pluginName, floorName} {
		pids, err := t.srv.PluginPIDs(name)
		if err != nil || len(pids) != 1 {
			return fmt.Errorf("want one %s process, found %v (%v)", name, pids, err)
		}
		procs[name] = pids[0]
	}
	cpu := func() map[string]time.Duration {
		out := map[string]time.Duration{}
		for name, pid := range procs {
			out[name], _ = vaultproc.CPUTime(pid)
		}
		return out
	}
	for _, c := range e.o.conc {
		got := make([]sample, len(hotReads))
		cpuUsed := make([]map[string]time.Duration, len(hotReads))
		rounds := make([][]stats, len(hotReads))
		per := n / e.o.rounds
		for r := range e.o.rounds {
			for k := range hotReads {
				i := (k + r) % len(hotReads)
				c0 := cpu()
				s := load(t.v, c, per, func(int) string { return hotReads[i].path })
				c1 := cpu()
				if cpuUsed[i] == nil {
					cpuUsed[i] = map[string]time.Duration{}
				}
				for name := range c1 {
					cpuUsed[i][name] += c1[name] - c0[name]
				}
				if s.err != nil {
					return fmt.Errorf("%s: %d errors, first: %w", hotReads[i].name, s.errs, s.err)
				}
				got[i].add(s)
				rounds[i] = append(rounds[i], s.stats())
			}
		}
		for i, h := range hotReads {
			e.rep.hot = append(e.rep.hot, hotRow{server: t.label, clients: c, target: h.name, key: h.key, vs: h.vs,
				st: got[i].stats(), rounds: rounds[i],
				vaultCPU:  cpuUsed[i]["vault"] / time.Duration(len(got[i].lat)),
				pluginCPU: (cpuUsed[i][pluginName] + cpuUsed[i][floorName]) / time.Duration(len(got[i].lat))})
		}
	}
	if got := e.idp.TokenRequests() - before; got != 1 {
		return fmt.Errorf("cache-hit reads made %d IdP requests, want 1 (the warm-up's)", got)
	}
	return nil
}
