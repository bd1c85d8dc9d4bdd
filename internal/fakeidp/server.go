// Package fakeidp is a strict in-process identity provider for tests and the
// demo. Each Style speaks exactly the wire format of one IdP's token
// documentation (MWI IdentityServer, Intercede MyID, Screening Eagle ID,
// MicroTek) or plain RFC 6749, and refuses anything else with that IdP's
// error format, so a passing test proves the plugin speaks the format.
package fakeidp

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Style selects which IdP the server imitates.
type Style string

// The styles, one per seed document plus plain RFC 6749.
const (
	StyleOAuth2         Style = "oauth2"
	StyleMWI            Style = "mwi"
	StyleMyID           Style = "myid"
	StyleScreeningEagle Style = "screening-eagle"
	StyleMicroTek       Style = "microtek"
)

// Styles lists every supported style (for flag validation and table tests).
var Styles = []Style{StyleOAuth2, StyleMWI, StyleMyID, StyleScreeningEagle, StyleMicroTek}

// Options configures the single client the fake knows.
type Options struct {
	Style        Style // default StyleOAuth2
	ClientID     string
	ClientSecret string
	// Username is the exact username the password grant expects; for MWI the
	// composed lbso\<access_code>\<username>\<security_key> form.
	Username string
	Password string
	// Scopes the client may ask for; any other scope gets invalid_scope.
	// nil means the style's default (see DefaultScopes).
	Scopes            []string
	TokenTTL          time.Duration // expires_in of issued tokens (default 1h)
	ExpiresInAsString bool          // send "expires_in":"3600"
	OmitExpiresIn     bool
	// RefreshTokens issues refresh tokens and accepts grant_type=refresh_token
	// (rotating: a used refresh token is spent). Ignored for MyID, which never
	// issues them.
	RefreshTokens bool
	IDTokens      bool // include an id_token (Screening Eagle sends one)
	// OIDC: ID tokens are RS256, verifiable against /jwks, name who logged
	// in (the authorize request's fake_user, else the client) and carry the
	// request's nonce; SetIssuer sets their iss. Implies IDTokens.
	OIDC         bool
	RedirectURIs []string // allowed redirect_uri values; empty allows none
	// SingleActive kills every earlier access and refresh token of the
	// client on each issue, whatever the style (MicroTek always does).
	SingleActive bool
	// DeviceCodes serves RFC 8628: POST /device, and the device_code grant
	// at the token endpoint.
	DeviceCodes    bool
	DeviceInterval int           // seconds between polls (default 5)
	DeviceCodeTTL  time.Duration // life of a device code (default 10m)
	// TokenExchange accepts RFC 8693 token exchanges of subject tokens
	// registered with AllowSubject.
	TokenExchange bool
	// OnTokenRequest, if set, is called after each token-endpoint answer with
	// the grant_type sent, the HTTP status and the error code ("" on success).
	// It never sees secrets or tokens, so it is safe to log.
	OnTokenRequest func(grant string, status int, errCode string)
}

// DefaultScopes are the scopes a style allows when Options.Scopes is nil,
// taken from each document's example.
func DefaultScopes(style Style) []string {
	switch style {
	case StyleMWI:
		return []string{"test_api"}
	case StyleMyID:
		return []string{"myid.rest.basic"}
	case StyleScreeningEagle:
		return []string{"openid", "email", "profile", "inspect"}
	case StyleMicroTek:
		return []string{"public-api"}
	}
	return nil
}

const defaultTTL = time.Hour

// Server is the fake IdP; it implements http.Handler and is safe for
// concurrent use.
type Server struct {
	opts      Options // read-only after New
	tokenPath string
	idKey     []byte // signs id_tokens so they look like the JWTs IdPs send

	mu              sync.Mutex
	now             func() time.Time
	ttl             time.Duration
	delay           time.Duration
	failNext        int
	failNextStatus  int
	failEvery       int
	failEveryStatus int
	failEverySeen   int                      // token requests since SetFailEvery, for its phase
	metadata        func(base string) string // SetMetadata; nil: the server's own
	loseNext        int                      // successful answers still to lose (LoseNextAnswers)
	loseHow         Loss
	inFlight        int // token requests being handled now
	maxInFlight     int
	requests        []Recorded
	byGrant         map[string]int
	beforeAnswer    func(grant string) // SetBeforeAnswer
	issuing         string             // the grant being answered, for KilledBy
	store
	issuer string          // iss of OIDC ID tokens (SetIssuer)
	rsaKey *rsa.PrivateKey // signs OIDC ID tokens
}

// Recorded is one request to the token endpoint, as received.
type Recorded struct {
	Header http.Header
	Form   url.Values
	Time   time.Time
}

// New returns a server for opts. It panics on an unknown style: that is a
// mistake in the calling test, not a runtime condition.
func New(opts Options) *Server {
	if opts.Style == "" {
		opts.Style = StyleOAuth2
	}
	if !slices.Contains(Styles, opts.Style) {
		panic(fmt.Sprintf("fakeidp: unknown style %q", opts.Style))
	}
	if opts.Scopes == nil {
		opts.Scopes = DefaultScopes(opts.Style)
	}
	opts.Scopes = slices.Clone(opts.Scopes)
	opts.RedirectURIs = slices.Clone(opts.RedirectURIs)
	if opts.Style == StyleMyID {
		opts.RefreshTokens = false
	}
	if opts.OIDC {
		opts.IDTokens = true
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = defaultTTL
	}
	if opts.DeviceInterval <= 0 {
		opts.DeviceInterval = 5
	}
	if opts.DeviceCodeTTL <= 0 {
		opts.DeviceCodeTTL = 10 * time.Minute
	}
	s := &Server{
		opts:      opts,
		tokenPath: "/connect/token",
		idKey:     make([]byte, 32),
		now:       time.Now,
		ttl:       opts.TokenTTL,
		byGrant:   map[string]int{},
		store:     newStore(),
	}
	if opts.Style == StyleScreeningEagle {
		s.tokenPath = "/api/id/v1/auth/token"
	}
	rand.Read(s.idKey)
	return s
}

// TokenPath is the path of this style's token endpoint.
func (s *Server) TokenPath() string { return s.tokenPath }

// ServeHTTP routes to the endpoints this style has; everything else is 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case s.tokenPath:
		s.handleToken(w, r)
	case "/connect/authorize":
		if !s.hasAuthorize() {
			http.NotFound(w, r)
			return
		}
		s.handleAuthorize(w, r)
	case "/device":
		if !s.opts.DeviceCodes {
			http.NotFound(w, r)
			return
		}
		s.handleDevice(w, r)
	case "/connect/revocation":
		s.handleRevocation(w, r)
	case "/.well-known/openid-configuration":
		s.handleDiscovery(w, r)
	case "/jwks":
		if !s.opts.OIDC {
			http.NotFound(w, r)
			return
		}
		s.handleJWKS(w, r)
	case "/api/resource":
		s.handleResource(w, r)
	default:
		http.NotFound(w, r)
	}
}

// hasAuthorize: MWI (password) and MicroTek (client credentials) have no
// browser step in their documents.
func (s *Server) hasAuthorize() bool {
	switch s.opts.Style {
	case StyleMyID, StyleScreeningEagle, StyleOAuth2:
		return true
	}
	return false
}
