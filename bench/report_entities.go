package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/backend"
)

// peopleVault is what the per-person stage measured on one Vault.
type peopleVault struct {
	server                   string
	n                        int
	ttl                      time.Duration // life of the IdP's tokens
	users, logins, idpLogins time.Duration // the setup's passes
	setupIdP                 int           // IdP token requests during the IdP logins
	rssBefore, rssAfter      int64
	cellIdP, cellPeople      int // IdP requests during the cells; people they read as
	revoked                  int // the cells' creds leases, revoked after them (dev)
	revoke                   time.Duration
	reload, first            time.Duration
	others, again            stats
	othersN, reloadIdP       int
	loadStart, loadEnd       string // the machine's load average
}

// peopleSweep is the periodic sweep of the dev Vault's expired people's tokens.
type peopleSweep struct {
	stored, left, roles, polls int
	wait, toFirst              time.Duration
	minDur, maxDur             time.Duration
	pluginCPU, vaultCPU        time.Duration
	idpToken, idpAny           int
	after                      string // a swept person's next read: the error
	load                       string // the machine's load average at the end
}

type peopleReport struct {
	n                    int
	vaults               []*peopleVault
	hot                  []hotRow
	costWrite, costLogin time.Duration // a user with a password at Vault's bcrypt cost, one client
	// in-process start on storage with startEntries people's tokens
	startEntries, startTotal, startIdP         int
	startCalls, firstReadCalls, otherReadCalls string
	againReadCalls                             string
	startTime                                  time.Duration
	sweep                                      peopleSweep
}

func (r *report) peopleMarkdown(checks *[]check) string {
	pr := r.people
	if pr.n == 0 {
		return ""
	}
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("### Per-person tokens: %d people under one per_entity role\n\n", pr.n)
	p("Each person is a userpass user written through the API (`auth/userpass/users/<n>`, with a pre-hashed bcrypt password of the least cost, see below), logged in to Vault (`auth/userpass/login/<n>`) for a Vault token of their own entity, then logged in at the fake IdP with that token: `idp/auth-url/pe`, the IdP's authorize step (approved at once as the person), `idp/callback` written with the code and state of its redirect, and a first `idp/token/pe` read whose token must act as the person. %d clients. The IdP issues no refresh tokens. The token store's bounded cache holds %d people's tokens, so with %d people every read below is a cache hit.\n\n",
		peopleConc, backend.DefaultBoundedTokens, pr.n)
	if len(pr.vaults) > 0 {
		p("| Vault | users written | Vault logins | IdP logins | IdP token requests | token life | plugin RSS before / after | RSS growth per person's token |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, v := range pr.vaults {
			per := float64(v.rssAfter-v.rssBefore) / float64(v.n)
			p("| %s | %s | %s | %s | %d | %s | %.1f / %.1f MiB | %.0f B |\n", v.server, v.users.Round(time.Millisecond), v.logins.Round(time.Millisecond), v.idpLogins.Round(time.Millisecond),
				v.setupIdP, shortDur(v.ttl), float64(v.rssBefore)/(1<<20), float64(v.rssAfter)/(1<<20), per)
		}
		p("\nThe machine's load average (1, 5, 15 min) at the start and the end of each Vault's stage:")
		for i, v := range pr.vaults {
			sep := ";"
			if i == len(pr.vaults)-1 {
				sep = "."
			}
			p(" %s %s, then %s%s", v.server, v.loadStart, v.loadEnd, sep)
		}
		p(" RSS growth includes garbage the Go GC had not yet returned, so it is an upper bound; `make bench-go` reports the live heap per person's token in-process (`BenchmarkCachedTokenMemoryPerEntity`).")
		if pr.costLogin > 0 {
			p(" Written with `password` instead, Vault hashes it at bcrypt's default cost: a user write took %s and its login %s (median of 5, one client), so %d people would cost about %.0f s more of Vault CPU (%.0f s on 2 cores) than with the least cost.",
				ms(pr.costWrite)+" ms", ms(pr.costLogin)+" ms", pr.n, (pr.costWrite+pr.costLogin).Seconds()*float64(pr.n), (pr.costWrite+pr.costLogin).Seconds()*float64(pr.n)/2)
		}
		p("\n\n")
	}

	if len(pr.hot) > 0 {
		p("Cache-hit reads of one's own token against the floor plugin, each request with a person's own Vault token, spread over the people (a stride through all of them); the floor reads use the same people's tokens, so that Vault's token lookup and lease bookkeeping cost both alike. Rounds, rotation and ratios as in the cache-hit table above (p50 and throughput ratios: median over rounds; within a round each read is made by the same people).\n\n")
		*checks = append(*checks, hotTable(&b, pr.hot, func(row hotRow) string {
			return fmt.Sprintf("own %s within %%.2fx of %s, %d people (%s, %d clients; p50 and throughput)", row.key, row.vs, pr.n, row.server, row.clients)
		})...)
		p("\n")
		for _, v := range pr.vaults {
			p("%s: %d IdP requests during the cells, which read as %d different people.", v.server, v.cellIdP, v.cellPeople)
			if v.revoked > 0 {
				p(" The cells' %d idp/creds leases (which end with the people's short-lived tokens, during the raft stage) were revoked after them with `sys/leases/revoke-prefix` (%s).", v.revoked, v.revoke.Round(time.Millisecond))
			}
			p("\n")
		}
		p("\n")
	}

	if len(pr.vaults) > 0 && pr.vaults[0].othersN > 0 {
		p("A plugin reload (`sys/plugins/reload/backend` of the mount: a new backend, nothing in memory), then one client: the first read of one person's token (its config, role and token loaded on use), first reads of other people (each loads its token from storage), and the same people again (cache hits). `idp/token`, no lease.\n\n")
		p("| Vault | reload | first read after it | first reads of other people: p50 / p99 ms | the same again (cache hits): p50 / p99 ms | IdP requests |\n|---|---:|---:|---:|---:|---:|\n")
		for _, v := range pr.vaults {
			p("| %s | %s | %s ms | %s / %s (%d people) | %s / %s | %d |\n", v.server, v.reload.Round(time.Millisecond), ms(v.first), ms(v.others.p50), ms(v.others.p99), v.othersN, ms(v.again.p50), ms(v.again.p99), v.reloadIdP)
		}
		p("\n")
	}
	if pr.startEntries > 0 {
		p("Storage calls at a start, in-process (`Factory` on storage holding %d people's tokens of the role, the config and the role, as after a restart, reload or failover): %s while starting (%s); %s for the first read of a person's token (config, role and token loaded on use), %s for the next person's first read (their token only), %s for that person's read again (a cache hit); %d IdP requests. Nothing is read ahead: start-up does not grow with the number of people.\n\n",
			pr.startEntries, pr.startCalls, pr.startTime.Round(time.Microsecond), pr.firstReadCalls, pr.otherReadCalls, pr.againReadCalls, pr.startIdP)
		*checks = append(*checks, check{fmt.Sprintf("no storage call at a start with %d people's tokens in storage (in-process)", pr.startEntries), pr.startCalls, pr.startTotal == 0})
	}

	if s := pr.sweep; s.stored > 0 || s.polls > 0 {
		p("#### The sweep of %d expired people's tokens (dev)\n\n", s.stored)
		p("The dev Vault's people's tokens (no refresh tokens) were left to expire; then a plugin reload, so that the periodic function's next run (Vault runs it about every minute) sweeps at once instead of 10 minutes after the previous sweep, and the stored tokens were counted by a LIST of their storage prefix through `sys/raw` every 250 ms until none was left. Before it finds the tokens, the sweep reads every role of the mount for the per_entity ones (this mount holds %d roles, most from the scale stage).\n\n", s.roles)
		p("| | value |\n|---|---:|\n")
		p("| people's tokens in storage once expired | %d |\n", s.stored)
		p("| waited for the last of them to expire | %s |\n", s.wait.Round(time.Second))
		p("| from the reload until the first was gone | %s |\n", s.toFirst.Round(time.Millisecond))
		p("| the sweep, from the first gone to the last | %s to %s |\n", s.minDur.Round(time.Millisecond), s.maxDur.Round(time.Millisecond))
		p("| tokens left when the stage stopped counting | %d |\n", s.left)
		p("| plugin CPU from the reload until none was left | %s |\n", s.pluginCPU)
		p("| Vault CPU in that time (with the LISTs) | %s |\n", s.vaultCPU)
		p("| IdP token requests during it | %d |\n", s.idpToken)
		p("| IdP requests of any kind during it | %d |\n", s.idpAny)
		after := s.after
		if strings.Contains(after, "needs a login") {
			after = "HTTP 400, told to log in"
		} else if len(after) > 120 {
			after = after[:120] + "..."
		}
		p("| a swept person's next read | %s |\n", strings.ReplaceAll(after, "|", "\\|"))
		p("| the machine's load average at the end (1, 5, 15 min) | %s |\n\n", s.load)
		*checks = append(*checks, check{fmt.Sprintf("the sweep of %d expired people's tokens makes no IdP request", s.stored),
			fmt.Sprintf("%d IdP token requests (%d of any kind), %d tokens left", s.idpToken, s.idpAny, s.left), s.idpToken == 0 && s.idpAny == 0 && s.left == 0})
	}
	for _, v := range pr.vaults {
		if v.server == "dev" {
			per := float64(v.rssAfter-v.rssBefore) / float64(v.n)
			*checks = append(*checks, check{fmt.Sprintf("memory per cached person's token < 4 KiB (%d people, dev)", v.n), fmt.Sprintf("%.0f B RSS growth per token", per), per < 4096})
		}
	}
	return b.String()
}

// shortDur is d without its zero minutes and seconds (1h, 5m, 1m10s).
func shortDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
