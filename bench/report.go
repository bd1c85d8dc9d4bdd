package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

type hotRow struct {
	server  string // "dev" or "raft"
	clients int
	target  string
	key     string  // short name, e.g. "floor/creds"
	vs      string  // key of the floor row it is compared with, or ""
	st      stats   // all rounds pooled
	rounds  []stats // each round
	// CPU per request of the Vault process and of the plugin processes.
	vaultCPU, pluginCPU time.Duration
}

// pairedRatio is the median over rounds of f(idp round, floor round): the
// two ran back to back, so each round's ratio cancels the machine's drift.
func pairedRatio(idp, floor hotRow, f func(a, b stats) float64) float64 {
	var r []float64
	for k := range min(len(idp.rounds), len(floor.rounds)) {
		r = append(r, f(idp.rounds[k], floor.rounds[k]))
	}
	slices.Sort(r)
	if len(r) == 0 {
		return 0
	}
	return r[len(r)/2]
}

type coldRow struct {
	n                   int
	cold, direct, floor []time.Duration
}

type herdRow struct {
	n, idpRequests, distinct, joined int
	p50, max                         time.Duration
}

type scaleRow struct {
	roles                 int
	setup                 time.Duration
	reads, floor          stats
	tokenBytes, roleBytes float64
	rssBefore, rssAfter   int64
}

type report struct {
	started     time.Time
	machine     string
	hot         []hotRow
	cold        coldRow
	herd        []herdRow
	scale       scaleRow
	metricsNote string
	load        string // the machine's load when the run began
	raft        raftReport
	people      peopleReport
}

// hotRow finds the row of key for server and clients.
// hotRowOf is the row of rows for a read on a Vault with clients.
func hotRowOf(rows []hotRow, server string, clients int, key string) (hotRow, bool) {
	for _, h := range rows {
		if h.server == server && h.clients == clients && h.key == key {
			return h, true
		}
	}
	return hotRow{}, false
}

// hotTable writes the table of cache-hit reads against their floors and
// answers a check per read that has one: within 1.10x of the floor for a
// leased read, 1.05x for an unleased one (p50 and throughput). name gives
// a check's wording, with %.2f for the goal.
func hotTable(b *strings.Builder, rows []hotRow, name func(hotRow) string) []check {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("| Vault | clients | read | p50 ms | p99 ms | req/s | vs | p50 ratio | p99 ratio | throughput ratio | Vault CPU µs/req | plugin CPU µs/req |\n|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|\n")
	us := func(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }
	var checks []check
	for _, row := range rows {
		if row.vs == "" {
			p("| %s | %d | %s | %s | %s | %.0f | | | | | %s | %s |\n", row.server, row.clients, row.target, ms(row.st.p50), ms(row.st.p99), row.st.rps, us(row.vaultCPU), us(row.pluginCPU))
			continue
		}
		floor, ok := hotRowOf(rows, row.server, row.clients, row.vs)
		if !ok {
			continue
		}
		r50 := pairedRatio(row, floor, func(a, b stats) float64 { return float64(a.p50) / float64(b.p50) })
		rt := pairedRatio(row, floor, func(a, b stats) float64 { return b.rps / a.rps })
		r99 := float64(row.st.p99) / float64(floor.st.p99)
		p("| %s | %d | %s | %s | %s | %.0f | %s | %.2f | %.2f | %.2f | %s | %s |\n", row.server, row.clients, row.target, ms(row.st.p50), ms(row.st.p99), row.st.rps, row.vs, r50, r99, rt, us(row.vaultCPU), us(row.pluginCPU))
		goal := 1.1
		if row.key == "idp/token" {
			goal = 1.05
		}
		checks = append(checks, check{fmt.Sprintf(name(row), goal), fmt.Sprintf("p50 %.2fx, throughput %.2fx, p99 %.2fx", r50, rt, r99), max(r50, rt) <= goal})
	}
	return checks
}

// leasedVsUnleased is the p50 of the leased floor over the unleased floor,
// per Vault and clients: what a lease itself costs Vault.
func (r *report) leasedVsUnleased() string {
	var b strings.Builder
	fmt.Fprintf(&b, "What a lease costs Vault (floor/creds over floor/token, and idp/creds over idp/token, p50 of the pooled rounds):\n\n| Vault | clients | floor leased / unleased | idp creds / token |\n|---|---:|---:|---:|\n")
	for _, h := range r.hot {
		if h.key != "floor/creds" {
			continue
		}
		ft, ok1 := hotRowOf(r.hot, h.server, h.clients, "floor/token")
		ic, ok2 := hotRowOf(r.hot, h.server, h.clients, "idp/creds")
		it, ok3 := hotRowOf(r.hot, h.server, h.clients, "idp/token")
		if ok1 && ok2 && ok3 {
			fmt.Fprintf(&b, "| %s | %d | %.2f | %.2f |\n", h.server, h.clients, float64(h.st.p50)/float64(ft.st.p50), float64(ic.st.p50)/float64(it.st.p50))
		}
	}
	b.WriteString("\n")
	return b.String()
}

func newReport() *report { return &report{started: time.Now()} }

type check struct {
	target, measured string
	ok               bool
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func (r *report) markdown() string {
	var b strings.Builder
	var checks []check
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("Run %s; machine: %s. %s\n\n", r.started.UTC().Format("2006-01-02 15:04 UTC"), r.machine, r.load)

	p("### Cache-hit reads vs the floor plugin vs KV v2, on a dev and a raft Vault\n\n")
	p("The same reads on `vault server -dev` (in-memory storage) and on a single-node raft Vault (`storage \"raft\"`, every lease a raft write at the read and again at expiry). idp/creds (leased) is compared with the floor's constant leased read, idp/token (no lease) with the floor's constant unleased read. Each cell's requests are split into rounds interleaved across the five reads (rotating order). Latency and req/s pool all rounds. The p50 and throughput ratios are the median over rounds of each round's idp/floor ratio (throughput: floor over idp), so that drift on the shared machine cancels; the p99 ratio is of the pooled p99s. Lower is better; 1.00 is the floor.\n\n")
	p("CPU µs/req is the CPU time the Vault process and the plugin processes used during the target's rounds, per request (10 ms tick resolution, so a rough figure).\n\n")
	checks = append(checks, hotTable(&b, r.hot, func(row hotRow) string {
		return fmt.Sprintf("%s within %%.2fx of %s (%s, %d clients; p50 and throughput)", row.key, row.vs, row.server, row.clients)
	})...)
	p("\n")
	b.WriteString(r.leasedVsUnleased())

	c := r.cold
	if c.n > 0 {
		cold, direct, floor := median(c.cold), median(c.direct), median(c.floor)
		p("### Cold read vs a direct POST to the same IdP\n\n")
		p("Each cold read follows a role write that flips the role's scopes (read / read write): the fingerprint changes, so the write drops the cached token from memory and storage, and the read must fetch (storage get, IdP POST, storage put, lease). The write is not timed. The direct POST is the same client_credentials request from the benchmark over a keep-alive connection; the floor read is Vault's own cost of a leased read. %d of each, interleaved.\n\n", c.n)
		p("| | p50 ms | p90 ms |\n|---|---:|---:|\n")
		p("| cold idp/creds read | %s | %s |\n", ms(cold), ms(quantile(c.cold, 0.9)))
		p("| direct POST to the IdP | %s | %s |\n", ms(direct), ms(quantile(c.direct, 0.9)))
		p("| floor/creds read | %s | %s |\n", ms(floor), ms(quantile(c.floor, 0.9)))
		p("| **overhead** (cold - direct) | %s | |\n\n", ms(cold-direct))
		checks = append(checks, check{"cold-read overhead < 2 ms over the direct IdP call", ms(cold-direct) + " ms (p50)", cold-direct < 2*time.Millisecond})
	}

	if len(r.herd) > 0 {
		p("### Thundering herd\n\n")
		p("N readers released at once on a role whose token was just dropped; the IdP answers after 100 ms. \"joined\" is the cache misses counted by idp/metrics (readers that waited on the one fetch; the rest arrived after it and hit the cache).\n\n")
		p("| N | IdP requests | distinct tokens | joined the fetch | p50 ms | max ms |\n|---:|---:|---:|---:|---:|---:|\n")
		allOne := true
		for _, h := range r.herd {
			p("| %d | %d | %d | %d | %s | %s |\n", h.n, h.idpRequests, h.distinct, h.joined, ms(h.p50), ms(h.max))
			allOne = allOne && h.idpRequests == 1 && h.distinct == 1
		}
		p("\n")
		checks = append(checks, check{"one IdP request per herd", "see table", allOne})
	}

	s := r.scale
	if s.roles > 0 {
		perTok := float64(s.rssAfter-s.rssBefore) / float64(s.roles)
		p("### Scale: %d roles with cached tokens\n\n", s.roles)
		p("| | value |\n|---|---:|\n")
		p("| create roles + first read (32 clients) | %s |\n", s.setup.Round(time.Millisecond))
		p("| read across all roles, 8 clients: p50 / p99 ms | %s / %s (%.0f req/s) |\n", ms(s.reads.p50), ms(s.reads.p99), s.reads.rps)
		p("| floor read, 8 clients: p50 / p99 ms | %s / %s (%.0f req/s) |\n", ms(s.floor.p50), ms(s.floor.p99), s.floor.rps)
		p("| stored token entry (plaintext value, sys/raw) | %.0f B |\n", s.tokenBytes)
		p("| stored role entry (plaintext value, sys/raw) | %.0f B |\n", s.roleBytes)
		p("| plugin RSS before / after | %.1f / %.1f MiB |\n", float64(s.rssBefore)/(1<<20), float64(s.rssAfter)/(1<<20))
		p("| plugin RSS growth per cached token (role + token + memo) | %.0f B |\n\n", perTok)
		p("Storage: each entry is encrypted by Vault's barrier (AES-GCM: about 30 bytes of nonce, tag and key term more) under a key path of about 60 bytes. RSS growth includes garbage the Go GC had not yet returned (GOGC=100 lets the heap reach twice the live data), so it is an upper bound; `make bench-go` reports the live heap per cached token in-process.\n\n")
		checks = append(checks, check{"memory per cached token < 4 KiB", fmt.Sprintf("%.0f B RSS growth per token", perTok), perTok < 4096})
	}
	b.WriteString(r.raftMarkdown(&checks))
	b.WriteString(r.peopleMarkdown(&checks))
	if r.metricsNote != "" {
		p("Metrics: %s.\n\n", r.metricsNote)
	}
	p("### Targets\n\n| target | measured | met |\n|---|---|---|\n")
	for _, c := range checks {
		p("| %s | %s | %s |\n", c.target, c.measured, yes(c.ok))
	}
	return b.String()
}

const (
	beginMark = "<!-- bench:begin (written by `make bench`) -->"
	endMark   = "<!-- bench:end -->"
)

// writeResults replaces the text between the marks in path (or appends the
// marked section).
func writeResults(path, text string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	section := beginMark + "\n" + text + endMark + "\n"
	s := string(old)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i >= 0 && j > i {
		s = s[:i] + section + s[j+len(endMark)+1:]
	} else {
		s += "\n" + section
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
