package backend

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Per-entity roles (each person their own token) get a role label on two
// families of their own, and never an entity label: the series stay
// bounded by the number of such roles, however many people log in.

// Outcomes of a per-entity login.
const (
	LoginSuccess         = "success"
	LoginRefusedSubject  = "refused_subject" // the ID token named someone else (bound_subject)
	LoginFailed          = "failure"         // the IdP refused, the code expired, and the like
	perEntityLoginLabels = 3
)

var perEntityLoginOutcomes = [perEntityLoginLabels]string{LoginSuccess, LoginRefusedSubject, LoginFailed}

type perEntityMetrics struct {
	reads  [2]atomic.Uint64 // hit, miss
	logins [perEntityLoginLabels]atomic.Uint64
}

type perEntityRoles struct{ roles sync.Map } // role -> *perEntityMetrics

func (p *perEntityRoles) role(name string) *perEntityMetrics {
	if v, ok := p.roles.Load(name); ok {
		return v.(*perEntityMetrics)
	}
	v, _ := p.roles.LoadOrStore(name, new(perEntityMetrics))
	return v.(*perEntityMetrics)
}

// PerEntityRead counts a read of a person's own token: served from the
// cache (hit) or not.
func (m *Metrics) PerEntityRead(config, role string, hit bool) {
	i := 1
	if hit {
		i = 0
	}
	m.config(config).perEntity.role(role).reads[i].Add(1)
}

// PerEntityLogin counts a person's login of a per-entity role by outcome
// (LoginSuccess, LoginRefusedSubject, LoginFailed).
func (m *Metrics) PerEntityLogin(config, role, outcome string) {
	if i := slices.Index(perEntityLoginOutcomes[:], outcome); i >= 0 {
		m.config(config).perEntity.role(role).logins[i].Add(1)
	}
}

// PerEntitySnapshot is one per-entity role's counters.
type PerEntitySnapshot struct {
	Reads  map[string]uint64 `json:"reads"`  // hit, miss
	Logins map[string]uint64 `json:"logins"` // success, refused_subject, failure
}

func (p *perEntityRoles) snapshot() map[string]PerEntitySnapshot {
	out := map[string]PerEntitySnapshot{}
	p.roles.Range(func(k, v any) bool {
		r := v.(*perEntityMetrics)
		s := PerEntitySnapshot{Reads: map[string]uint64{"hit": r.reads[0].Load(), "miss": r.reads[1].Load()}, Logins: map[string]uint64{}}
		for i, o := range perEntityLoginOutcomes {
			s.Logins[o] = r.logins[i].Load()
		}
		out[k.(string)] = s
		return true
	})
	return out
}

// writePerEntity writes the per-entity families, sorted by config and role.
func writePerEntity(b *strings.Builder, configs map[string]ConfigSnapshot, names []string) {
	family := func(name, help string) {
		fmt.Fprintf(b, "# HELP %s%s %s\n# TYPE %s%s counter\n", MetricPrefix, name, help, MetricPrefix, name)
	}
	family("per_entity_reads_total", "Reads of a person's own token of a per_entity role, served from the cache (hit) or not (miss), by config and role.")
	for _, n := range names {
		roles := configs[n].PerEntity
		for _, r := range slices.Sorted(maps.Keys(roles)) {
			for _, res := range []string{"hit", "miss"} {
				fmt.Fprintf(b, "%sper_entity_reads_total{config=\"%s\",role=\"%s\",result=\"%s\"} %d\n", MetricPrefix, escapeLabel(n), escapeLabel(r), res, roles[r].Reads[res])
			}
		}
	}
	family("per_entity_logins_total", "Logins of a person to a per_entity role, by config, role and outcome (success, refused_subject: the ID token named someone else, failure).")
	for _, n := range names {
		roles := configs[n].PerEntity
		for _, r := range slices.Sorted(maps.Keys(roles)) {
			for _, o := range perEntityLoginOutcomes {
				fmt.Fprintf(b, "%sper_entity_logins_total{config=\"%s\",role=\"%s\",outcome=\"%s\"} %d\n", MetricPrefix, escapeLabel(n), escapeLabel(r), o, roles[r].Logins[o])
			}
		}
	}
}
