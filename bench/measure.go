package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// vaultHTTP talks to Vault with plain net/http and keep-alive, so that the
// measurement is Vault's and the plugin's, not an API client's.
type vaultHTTP struct {
	addr, token string
	client      *http.Client
}

func newVaultHTTP(addr, token string, maxConns int) *vaultHTTP {
	tr := &http.Transport{
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
	}
	return &vaultHTTP{addr: addr, token: token, client: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// do performs one request and returns the body; a non-2xx status is an error.
func (v *vaultHTTP) do(method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, v.addr+"/v1/"+path, rd)
	if err != nil {
		return nil, err
	}
	if v.token != "" { // through Vault Proxy with use_auto_auth_token: none
		req.Header.Set("X-Vault-Token", v.token)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, out)
	}
	return out, nil
}

func (v *vaultHTTP) get(path string) ([]byte, error) { return v.do(http.MethodGet, path, nil) }

// count is how many keys a LIST of path answers (0 when there are none).
func (v *vaultHTTP) count(path string) (int, error) {
	b, err := v.do("LIST", path, nil)
	if err != nil {
		if strings.Contains(err.Error(), "HTTP 404") {
			return 0, nil
		}
		return 0, err
	}
	var env struct {
		Data struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return 0, err
	}
	return len(env.Data.Keys), nil
}

// getJSON reads path and decodes the response's data into out.
func (v *vaultHTTP) getData(path string, out any) error {
	b, err := v.get(path)
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

func (v *vaultHTTP) write(path string, body map[string]any) error {
	_, err := v.do(http.MethodPost, path, body)
	return err
}

// sample is the latencies and wall time of a batch of requests.
type sample struct {
	lat  []time.Duration
	wall time.Duration
	errs int
	err  error
}

func (s *sample) add(o sample) {
	s.lat = append(s.lat, o.lat...)
	s.wall += o.wall
	s.errs += o.errs
	if s.err == nil {
		s.err = o.err
	}
}

// load sends n requests from conc concurrent clients, each GET of a path
// that pathOf gives for request i.
func load(v *vaultHTTP, conc, n int, pathOf func(i int) string) sample {
	return loadEach(conc, n, func(i int) (*vaultHTTP, string) { return v, pathOf(i) })
}

// loadEach makes n GET requests with conc clients, request i through the
// client and to the path req(i) answers.
func loadEach(conc, n int, req func(i int) (*vaultHTTP, string)) sample {
	lat := make([]time.Duration, n)
	var next, errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, path := req(i)
				t0 := time.Now()
				_, err := c.get(path)
				lat[i] = time.Since(t0)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	s := sample{lat: lat, wall: time.Since(start), errs: int(errs.Load())}
	if e, ok := firstErr.Load().(error); ok {
		s.err = e
	}
	return s
}

type stats struct {
	n             int
	p50, p99, max time.Duration
	rps           float64
}

func (s sample) stats() stats {
	l := slices.Clone(s.lat)
	slices.Sort(l)
	if len(l) == 0 {
		return stats{}
	}
	q := func(p float64) time.Duration { return l[min(len(l)-1, int(p*float64(len(l))))] }
	return stats{n: len(l), p50: q(0.50), p99: q(0.99), max: l[len(l)-1], rps: float64(len(l)) / s.wall.Seconds()}
}

func median(d []time.Duration) time.Duration {
	l := slices.Clone(d)
	slices.Sort(l)
	return l[len(l)/2]
}

func quantile(d []time.Duration, p float64) time.Duration {
	l := slices.Clone(d)
	slices.Sort(l)
	return l[min(len(l)-1, int(p*float64(len(l))))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }
