//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// jwksSnapshot is what a JWKS URL answered at one time.
type jwksSnapshot struct {
	At           time.Time
	Status       int
	CacheControl string
	ContentType  string
	Kids         []string
	Err          error
}

// jwksWatch polls JWKS URLs (through any node) and records every answer.
type jwksWatch struct {
	mu    sync.Mutex
	snaps []jwksSnapshot
	stop  chan struct{}
	done  chan struct{}
}

// watchJWKS polls the URL, through each of addrs in turn, every interval.
func watchJWKS(path string, addrs func() []string, interval time.Duration) *jwksWatch {
	w := &jwksWatch{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			case <-time.After(interval):
			}
			list := addrs()
			s := fetchJWKS(client, list[i%len(list)]+path)
			w.mu.Lock()
			w.snaps = append(w.snaps, s)
			w.mu.Unlock()
		}
	}()
	return w
}

func fetchJWKS(client *http.Client, url string) jwksSnapshot {
	s := jwksSnapshot{At: time.Now()}
	resp, err := client.Get(url)
	if err != nil {
		s.Err = err
		return s
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	s.Status, s.CacheControl, s.ContentType = resp.StatusCode, resp.Header.Get("Cache-Control"), resp.Header.Get("Content-Type")
	if err != nil || resp.StatusCode != http.StatusOK {
		s.Err = fmt.Errorf("HTTP %d: %s (%v)", resp.StatusCode, strings.TrimSpace(string(body)), err)
		return s
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		s.Err = err
		return s
	}
	for _, k := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := k[private]; ok {
				s.Err = fmt.Errorf("the JWKS serves a private member %q", private)
			}
		}
		kid, _ := k["kid"].(string)
		s.Kids = append(s.Kids, kid)
	}
	return s
}

func (w *jwksWatch) close() []jwksSnapshot {
	close(w.stop)
	<-w.done
	return w.snapshots()
}

func (w *jwksWatch) snapshots() []jwksSnapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]jwksSnapshot(nil), w.snaps...)
}

// around are the last good snapshot before t and the first good one after.
func around(snaps []jwksSnapshot, t time.Time) (before, after *jwksSnapshot) {
	for i := range snaps {
		s := &snaps[i]
		if s.Err != nil {
			continue
		}
		if !s.At.After(t) {
			before = s
		} else if after == nil {
			after = s
		}
	}
	return before, after
}

// firstAndLastServed: when the JWKS first and last served kid.
func firstAndLastServed(snaps []jwksSnapshot, kid string) (first, last time.Time) {
	for _, s := range snaps {
		if s.Err == nil && slices.Contains(s.Kids, kid) {
			if first.IsZero() {
				first = s.At
			}
			last = s.At
		}
	}
	return first, last
}

// checkAssertionKids: every token request the IdP took was signed by a key
// that the JWKS served just before and just after it; it answers the kids.
func checkAssertionKids(t *testing.T, idp string, seen []seenAssertion, snaps []jwksSnapshot) map[string]int {
	t.Helper()
	kids := map[string]int{}
	for _, a := range seen {
		for _, kid := range []string{a.ClientKid, a.GrantKid} {
			if kid == "" {
				continue
			}
			kids[kid]++
			before, after := around(snaps, a.At)
			if before == nil || after == nil || !slices.Contains(before.Kids, kid) || !slices.Contains(after.Kids, kid) {
				t.Errorf("%s: a %s request at %s was signed by %s, which the JWKS did not serve both before (%v) and after (%v) it",
					idp, a.Grant, a.At.Format(time.StampMilli), kid, kidsOf(before), kidsOf(after))
			}
		}
		if a.Status != http.StatusOK {
			t.Errorf("%s: a %s request at %s (kid %s) answered %d", idp, a.Grant, a.At.Format(time.StampMilli), a.ClientKid, a.Status)
		}
	}
	return kids
}

func kidsOf(s *jwksSnapshot) []string {
	if s == nil {
		return nil
	}
	return s.Kids
}

// oidcProviderRequests parses oidc-provider's token-request lines.
func oidcProviderRequests(t *testing.T, logPath string) []seenAssertion {
	t.Helper()
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []seenAssertion
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "token-request: ")
		if !ok {
			continue
		}
		var r struct {
			At        int64  `json:"at"`
			Client    string `json:"client"`
			Grant     string `json:"grant"`
			Status    int    `json:"status"`
			ClientKid string `json:"client_kid"`
			GrantKid  string `json:"grant_kid"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("oidc-provider log line %q: %v", line, err)
		}
		out = append(out, seenAssertion{At: time.UnixMilli(r.At), Client: r.Client, Grant: r.Grant, Status: r.Status, ClientKid: r.ClientKid, GrantKid: r.GrantKid})
	}
	return out
}

// keyTimeline is one generated key as config reads showed it.
type keyTimeline struct {
	Kid, State                                     string
	Created, SignsFrom, SignsUntil, PublishedUntil time.Time
	everSigning                                    bool
}

// keyHistory polls config/<name> and keeps every key it showed.
type keyHistory struct {
	mu   sync.Mutex
	keys map[string]*keyTimeline
	// order of first sight
	order []string
}

func (h *keyHistory) observe(views []map[string]any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.keys == nil {
		h.keys = map[string]*keyTimeline{}
	}
	parse := func(v any) time.Time {
		s, _ := v.(string)
		tm, _ := time.Parse(time.RFC3339, s)
		return tm
	}
	for _, v := range views {
		kid, _ := v["kid"].(string)
		k := h.keys[kid]
		if k == nil {
			k = &keyTimeline{Kid: kid}
			h.keys[kid] = k
			h.order = append(h.order, kid)
		}
		k.State, _ = v["state"].(string)
		k.Created, k.SignsFrom, k.SignsUntil, k.PublishedUntil = parse(v["created"]), parse(v["signs_from"]), parse(v["signs_until"]), parse(v["published_until"])
		k.everSigning = k.everSigning || k.State == "signing"
	}
}

// signingKids are the kids that were ever seen signing, in order.
func (h *keyHistory) signingKids() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, kid := range h.order {
		if h.keys[kid].everSigning {
			out = append(out, kid)
		}
	}
	return out
}

func (h *keyHistory) get(kid string) keyTimeline {
	h.mu.Lock()
	defer h.mu.Unlock()
	return *h.keys[kid]
}

// readLoop reads creds/<role> through addr() until stopped, counting reads
// and keeping every failure with its time.
type readLoop struct {
	reads, failed atomic.Int64
	mu            sync.Mutex
	failures      []readFailure
	stop          chan struct{}
	wg            sync.WaitGroup
}

type readFailure struct {
	at  time.Time
	msg string
}

// noActiveNode is Vault's own answer when a standby knows no active node to
// forward to (a raft election, or heartbeats missed on a loaded machine):
// Vault says it, not the plugin.
const noActiveNode = "active cluster node not found"

// failuresBefore are the failures before t, apart from Vault's
// noActiveNode answers, and how many of those there were.
func (l *readLoop) failuresBefore(t time.Time) (others []string, noActive int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.failures {
		switch {
		case !f.at.Before(t):
		case strings.Contains(f.msg, noActiveNode):
			noActive++
		default:
			others = append(others, f.at.Format(time.StampMilli)+" "+f.msg)
		}
	}
	return others, noActive
}

// errs are the first failures, for a message.
func (l *readLoop) errs() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, f := range l.failures[:min(5, len(l.failures))] {
		out = append(out, f.at.Format(time.StampMilli)+" "+f.msg)
	}
	return strings.Join(out, "; ")
}

// span is the time of the first and the last failure.
func (l *readLoop) span() (first, last time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) == 0 {
		return
	}
	return l.failures[0].at, l.failures[len(l.failures)-1].at
}

func startReaders(token string, addr func() string, roles []string, perRole int, pause time.Duration) *readLoop {
	l := &readLoop{stop: make(chan struct{})}
	for _, role := range roles {
		for range perRole {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				r := newCredsReader(token, 1)
				defer r.close()
				for {
					select {
					case <-l.stop:
						return
					case <-time.After(pause):
					}
					if _, err := r.read(addr(), role); err != nil {
						l.failed.Add(1)
						l.mu.Lock()
						l.failures = append(l.failures, readFailure{time.Now(), fmt.Sprintf("%s: %v", role, err)})
						l.mu.Unlock()
					}
					l.reads.Add(1)
				}
			}()
		}
	}
	return l
}

func (l *readLoop) close() {
	close(l.stop)
	l.wg.Wait()
}
