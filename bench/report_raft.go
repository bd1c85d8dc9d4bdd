package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// costRow is what costReads reads of one kind left behind on raft.
type costRow struct {
	read                    string
	reads                   int
	raftWrites              uint64
	liveLeases, engineReads int
	idpRequests             int
	p50                     time.Duration
}

type expiryRow struct {
	leases, left        int
	made, ttl, window   time.Duration
	pluginCPU, vaultCPU time.Duration
	raftWrites          uint64
	idpRequests         int
	before, during      stats
}

type restartRow struct {
	configs, roles                  int
	write, active, first, manyFirst time.Duration
	pluginAtActive                  int
	rssBefore, rssAfter             int64
}

// agentRow is what one Vault Agent template cost over its token lives.
type agentRow struct {
	read                 string
	leased               bool // each engine read registered a lease
	lives                int
	life                 time.Duration
	renders, idpRequests int
	engineReads          int
	mostLive, liveAtStop int
	liveAfter            int // when the stage stopped waiting for them to expire
	raftWrites           uint64
}

// leasesMade is how many leases the Agent's reads registered.
func (a agentRow) leasesMade() int {
	if a.leased {
		return a.engineReads
	}
	return 0
}

type raftReport struct {
	idleWritesPerSec float64
	proxyNote        string
	cost             []costRow
	agent            []agentRow
	expiry           expiryRow
	restart          restartRow
	// in-process start on storage with startEntries configs and roles
	startEntries               int
	startCalls, firstReadCalls string
	startTime                  time.Duration
}

func (r *report) raftMarkdown(checks *[]check) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	rr := r.raft
	if len(rr.cost) > 0 {
		p("### Live leases and raft writes per %d reads (raft)\n\n", costReads)
		p("%d reads by 8 clients of each kind on the single-node raft Vault. Raft writes are the growth of sys/leader's `raft_committed_index` while they ran (the idle rate was %.1f entries/s, included). Live leases are counted by listing `sys/leases/lookup/` afterwards; engine reads are the plugin's own count (idp/metrics `reads`). Each lease also costs a raft write and a Revoke call when it expires (next table).\n\n", costReads, rr.idleWritesPerSec)
		p("| read | raft writes | live leases left | engine reads | IdP requests | p50 ms |\n|---|---:|---:|---:|---:|---:|\n")
		for _, c := range rr.cost {
			p("| %s | %d | %d | %d | %d | %s |\n", c.read, c.raftWrites, c.liveLeases, c.engineReads, c.idpRequests, ms(c.p50))
		}
		if rr.proxyNote != "" {
			p("\n%s\n", rr.proxyNote)
		}
		p("\n")
	}
	if len(rr.agent) > 0 {
		a0 := rr.agent[0]
		p("### Vault Agent templates: per token life and per 1,000 renders (raft)\n\n")
		p("One Vault Agent (token_file auto-auth, default `template_config`) renders a role's access token into a file, first from `idp/creds/<role>`, then from `idp/token/<role>`, each for %d lives of a %s token (a config of its own, no `min_ttl`: the margin is %s) on the single-node raft Vault; the file is sampled every 100 ms and the path's live leases listed every second. "+
			"On creds Agent re-reads at 85–95 %% of each lease; on token a second after the answer's `ttl`. Raft writes are the growth of `raft_committed_index` from the Agent's start until every lease it was handed had expired (their expiry writes included); renders are the new tokens the file showed; engine reads are the plugin's own count. Each new token is one raft write on either path (the engine stores it before it hands it out); the rest on creds are the leases, at the read and at expiry.\n\n",
			a0.lives, a0.life, backend.Margin(a0.life))
		p("| Agent renders | renders | IdP requests | engine reads | leases registered | most live at once | raft writes | raft writes per token life | per 1,000 renders: raft writes | per 1,000 renders: leases |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, a := range rr.agent {
			per := func(n float64, d int) string {
				if d == 0 {
					return "–"
				}
				return fmt.Sprintf("%.0f", n/float64(d))
			}
			p("| %s | %d | %d | %d | %d | %d | %d | %s | %s | %s |\n", a.read, a.renders, a.idpRequests, a.engineReads, a.leasesMade(), a.mostLive, a.raftWrites,
				per(float64(a.raftWrites), a.idpRequests), per(1000*float64(a.raftWrites), a.renders), per(1000*float64(a.leasesMade()), a.renders))
		}
		for _, a := range rr.agent {
			if a.liveAfter > 0 {
				p("\n%s: %d of its leases were still live when the stage stopped waiting for them (%s after the Agent stopped).\n", a.read, a.liveAfter, a.life+10*time.Second)
			}
		}
		p("\n")
	}
	if x := rr.expiry; x.leases > 0 {
		p("### Many leases expiring at once (raft)\n\n")
		p("%d creds leases of one role with ttl %s, made by 32 clients in %s, then left to expire. From the first expiry until none was left (%s; %d left when the stage gave up, 0 is all gone), one client kept reading idp/token and floor/token. The plugin's CPU time is what its Revoke calls cost (Revoke makes no IdP request: %d IdP requests during the window).\n\n",
			x.leases, x.ttl, x.made.Round(time.Millisecond), x.window.Round(time.Millisecond), x.left, x.idpRequests)
		p("| | value |\n|---|---:|\n")
		p("| plugin CPU during the expiry, per lease | %.0f µs (%s in all) |\n", float64(x.pluginCPU)/float64(time.Microsecond)/float64(x.leases), x.pluginCPU)
		p("| Vault CPU during the expiry, per lease | %.0f µs (%s in all) |\n", float64(x.vaultCPU)/float64(time.Microsecond)/float64(x.leases), x.vaultCPU)
		p("| raft writes during the expiry, per lease | %.2f |\n", float64(x.raftWrites)/float64(x.leases))
		p("| expired leases per second | %.0f |\n", float64(x.leases-x.left)/x.window.Seconds())
		p("| other reads before: p50 / p99 ms | %s / %s |\n", ms(x.before.p50), ms(x.before.p99))
		p("| other reads during the expiry: p50 / p99 ms | %s / %s |\n\n", ms(x.during.p50), ms(x.during.p99))
		*checks = append(*checks, check{"Revoke of expiring leases makes no IdP request", fmt.Sprintf("%d IdP requests for %d expired leases", x.idpRequests, x.leases-x.left), x.idpRequests == 0})
	}
	if s := rr.restart; s.configs > 0 {
		p("### Restart with %d configs and %d roles in storage (raft)\n\n", s.configs, s.roles)
		p("| | value |\n|---|---:|\n")
		p("| writing the configs and roles (32 clients) | %s |\n", s.write.Round(time.Millisecond))
		p("| restart: stop, start, unseal, until active | %s |\n", s.active.Round(time.Millisecond))
		p("| plugin processes running when Vault became active | %d |\n", s.pluginAtActive)
		p("| restart until the first idp/token read answered | %s |\n", s.first.Round(time.Millisecond))
		p("| then the first read of one of the %d roles (its config and role loaded on use, a token fetched from the IdP) | %s |\n", s.roles, s.manyFirst.Round(time.Millisecond))
		p("| plugin RSS before the restart / after the first reads | %.1f / %.1f MiB |\n\n", float64(s.rssBefore)/(1<<20), float64(s.rssAfter)/(1<<20))
	}
	if rr.startEntries > 0 {
		p("Storage calls at a start, in-process (`Factory` on storage holding %d configs, %d roles and a token, as after a restart, reload or failover): %s while starting (%s); %s for the first read of a role, which loads its config, role and token on use. Nothing is read ahead, so start-up does not grow with the number of configs and roles.\n\n",
			rr.startEntries, rr.startEntries, rr.startCalls, rr.startTime.Round(time.Microsecond), rr.firstReadCalls)
	}
	return b.String()
}
