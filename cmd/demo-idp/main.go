// Command demo-idp serves internal/fakeidp on loopback for `make dev` and
// integration scripts. It prints one line, "listening on http://HOST:PORT",
// to stdout so a script can read the port, and logs each token request's
// grant and outcome (never secrets or tokens) to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/idp-tokens/vault-plugin-idp-tokens/internal/fakeidp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "demo-idp:", err)
		os.Exit(2)
	}
}

// run serves until ctx ends; split from main so a test can drive it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo-idp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (port 0 picks a free one)")
	style := fs.String("style", string(fakeidp.StyleOAuth2), "IdP to imitate: "+styleList())
	clientID := fs.String("client-id", "demo-client", "the one client ID the IdP knows")
	clientSecret := fs.String("client-secret", "demo-secret", "that client's secret")
	username := fs.String("username", "", `password grant username (MWI: the composed lbso\<access_code>\<username>\<security_key>)`)
	password := fs.String("password", "", "password grant password")
	scopes := fs.String("scopes", "", "comma-separated scopes the client may ask for (default: the style's)")
	redirects := fs.String("redirect-uris", "", "comma-separated redirect URIs allowed at /connect/authorize")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of issued access tokens")
	refresh := fs.Bool("refresh", false, "issue refresh tokens and accept grant_type=refresh_token")
	idTokens := fs.Bool("id-tokens", false, "include an id_token in token responses")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if !slices.Contains(fakeidp.Styles, fakeidp.Style(*style)) {
		return fmt.Errorf("unknown -style %q (want one of %s)", *style, styleList())
	}

	logger := log.New(stderr, "demo-idp: ", log.LstdFlags)
	idp := fakeidp.New(fakeidp.Options{
		Style:         fakeidp.Style(*style),
		ClientID:      *clientID,
		ClientSecret:  *clientSecret,
		Username:      *username,
		Password:      *password,
		Scopes:        splitList(*scopes),
		RedirectURIs:  splitList(*redirects),
		TokenTTL:      *ttl,
		RefreshTokens: *refresh,
		IDTokens:      *idTokens,
		OnTokenRequest: func(grant string, status int, errCode string) {
			outcome := "issued"
			if errCode != "" {
				outcome = errCode
			}
			// %q: grant_type is client input and must not forge log lines.
			logger.Printf("token request grant=%q status=%d outcome=%s", grant, status, outcome)
		},
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: idp, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())
	logger.Printf("style=%s token endpoint %s", *style, idp.TokenPath())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Print("stopped")
	return nil
}

// splitList returns nil for "" so the style's default scopes apply.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func styleList() string {
	names := make([]string, len(fakeidp.Styles))
	for i, s := range fakeidp.Styles {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}
