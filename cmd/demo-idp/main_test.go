package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer lets the test read stderr while run writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunServesAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-style", "microtek", "-client-id", "cid", "-client-secret", "topsecret"}, pw, &stderr)
		pw.Close()
	}()

	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok || !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("first line = %q", line)
	}
	go io.Copy(io.Discard, pr)

	resp, err := http.PostForm(base+"/connect/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"topsecret"}, "scope": {"public-api"},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d", resp.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop")
	}
	logs := stderr.String()
	if !strings.Contains(logs, `grant="client_credentials" status=200 outcome=issued`) {
		t.Fatalf("no token log line in %q", logs)
	}
	if strings.Contains(logs, "topsecret") || strings.Contains(logs, "microtek_") {
		t.Fatalf("secret or token in logs: %q", logs)
	}
}

func TestRunRejectsUnknownStyle(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"-style", "okta"}, &out, &errb); err == nil {
		t.Fatal("no error")
	}
	if out.Len() != 0 {
		t.Fatalf("stdout = %q", out.String())
	}
}
