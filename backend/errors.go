package backend

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// IdPError is a refusal or failure reported by an IdP's token endpoint. Its
// message names the config, the status and what the IdP said, and nothing
// that was sent.
type IdPError struct {
	Config      string // config name, so an operator knows which connection failed
	Status      int    // HTTP status, 0 when no response arrived
	Code        string // RFC 6749 "error"
	Description string // "error_description", or Screening Eagle's "errorDescription"
	Detail      string // what went wrong when the IdP's answer was not an OAuth2 error
	Temporary   bool   // worth a retry: network failure, 5xx, 429
}

func (e *IdPError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "IdP of config %q", e.Config)
	if e.Status != 0 {
		fmt.Fprintf(&b, " answered HTTP %d", e.Status)
	} else {
		b.WriteString(" could not be reached")
	}
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Description != "" {
		fmt.Fprintf(&b, ": %s", e.Description)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, " (%s)", e.Detail)
	}
	return b.String()
}

// IsInvalidGrant reports an IdP refusing a grant's credential (a spent or
// revoked refresh token, a used auth code): the caller should fall back.
func IsInvalidGrant(err error) bool {
	var e *IdPError
	return errors.As(err, &e) && e.Code == "invalid_grant"
}

// IsRefusal reports a definite 4xx answer (not worth retrying).
func IsRefusal(err error) bool {
	var e *IdPError
	return errors.As(err, &e) && e.Status >= 400 && e.Status < 500 && e.Status != 429
}

// errorBody is both RFC 6749 5.2 and Screening Eagle's camelCase variant.
type errorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	CamelDescription string `json:"errorDescription"`
}

// parseErrorBody fills Code and Description from an error response. Both are
// redacted, cut and stripped of control characters, and redacted again (the
// stripping can join a secret's pieces): they are the IdP's words, quoted
// into Vault's responses and logs.
func parseErrorBody(e *IdPError, body []byte, redact func(string) string) {
	var eb errorBody
	if json.Unmarshal(body, &eb) != nil {
		if len(body) > 0 {
			e.Detail = "the body was not an OAuth2 error in JSON"
		}
		return
	}
	e.Code = redact(Sanitize(redact(eb.Error), 64))
	desc := eb.ErrorDescription
	if desc == "" {
		desc = eb.CamelDescription
	}
	e.Description = redact(Sanitize(redact(desc), MaxDescriptionRunes))
}

// MaxDescriptionRunes bounds the IdP's error_description quoted in an
// error: long enough for servers built on Ory's fosite (Hydra), whose
// description is a ~170-character RFC sentence before the actual reason.
const MaxDescriptionRunes = 512

// Sanitize keeps printable characters, cut to max runes: for quoting an
// IdP's words into Vault responses and logs.
func Sanitize(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("…")
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
			n++
		}
	}
	return b.String()
}
