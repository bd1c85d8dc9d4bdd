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
	cpu, err := processCPU(t)
	if err != nil {
		return err
	}
	for _, c := range e.o.conc {
		rows, err := pairedRounds(t, hotReads, c, e.o.rounds, n/e.o.rounds, cpu, func(i, _, per int) sample {
			return load(t.v, c, per, func(int) string { return hotReads[i].path })
		})
		if err != nil {
			return err
		}
		e.rep.hot = append(e.rep.hot, rows...)
	}
	if got := e.idp.TokenRequests() - before; got != 1 {
		return fmt.Errorf("cache-hit reads made %d IdP requests, want 1 (the warm-up's)", got)
	}
	return nil
}

// processCPU reads the CPU time of the processes a read involves on t:
// Vault, this plugin and the floor.
func processCPU(t *vaultTarget) (func() map[string]time.Duration, error) {
	procs := map[string]int{"vault": t.srv.VaultPID()}
	for _, name := range []string{pluginName, floorName} {
		pids, err := t.srv.PluginPIDs(name)
		if err != nil || len(pids) != 1 {
			return nil, fmt.Errorf("want one %s process, found %v (%v)", name, pids, err)
		}
		procs[name] = pids[0]
	}
	return func() map[string]time.Duration {
		out := map[string]time.Duration{}
		for name, pid := range procs {
			out[name], _ = vaultproc.CPUTime(pid)
		}
		return out
	}, nil
}

// pairedRounds measures reads with c clients in rounds of per requests
// each, the read that goes first rotating from round to round so that none
// always runs on a warmer machine; run(i, round, per) makes read i's share
// of a round. It answers a row per read, with the CPU its requests cost.
func pairedRounds(t *vaultTarget, reads []hotRead, c, rounds, per int, cpu func() map[string]time.Duration, run func(i, round, per int) sample) ([]hotRow, error) {
	got := make([]sample, len(reads))
	cpuUsed := make([]map[string]time.Duration, len(reads))
	perRound := make([][]stats, len(reads))
	for r := range rounds {
		for k := range reads {
			i := (k + r) % len(reads)
			c0 := cpu()
			s := run(i, r, per)
			c1 := cpu()
			if cpuUsed[i] == nil {
				cpuUsed[i] = map[string]time.Duration{}
			}
			for name := range c1 {
				cpuUsed[i][name] += c1[name] - c0[name]
			}
			if s.err != nil {
				return nil, fmt.Errorf("%s: %d errors, first: %w", reads[i].name, s.errs, s.err)
			}
			got[i].add(s)
			perRound[i] = append(perRound[i], s.stats())
		}
	}
	rows := make([]hotRow, 0, len(reads))
	for i, h := range reads {
		rows = append(rows, hotRow{server: t.label, clients: c, target: h.name, key: h.key, vs: h.vs,
			st: got[i].stats(), rounds: perRound[i],
			vaultCPU:  cpuUsed[i]["vault"] / time.Duration(len(got[i].lat)),
			pluginCPU: (cpuUsed[i][pluginName] + cpuUsed[i][floorName]) / time.Duration(len(got[i].lat))})
	}
	return rows, nil
}
