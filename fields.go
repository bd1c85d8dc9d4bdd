package idptokens

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// strict wraps a handler so that fields the path does not define are
// refused: a typo such as client_secert must not be silently ignored while
// the write succeeds. Every handler is strict except the IdP's callback,
// which must take whatever extra parameters an IdP adds.
func strict(h framework.OperationFunc) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		if resp := rejectUnknownFields(d); resp != nil {
			return resp, nil
		}
		return h(ctx, req, d)
	}
}

func rejectUnknownFields(d *framework.FieldData) *logical.Response {
	var unknown []string
	for k := range d.Raw {
		if _, ok := d.Schema[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return logical.ErrorResponse("unknown field(s): %s", strings.Join(unknown, ", "))
}

// fieldError is a 400 naming the field.
func fieldError(field, format string, args ...any) *logical.Response {
	return logical.ErrorResponse("%s: %s", field, fmt.Sprintf(format, args...))
}

// fieldReader copies the fields a request sent into their destinations
// and keeps the first error, a 400 naming its field: handlers read every
// field, then look once at err.
type fieldReader struct {
	d   *framework.FieldData
	err *logical.Response
}

// sent returns a field's value when the request sent it and no earlier
// field failed.
func (r *fieldReader) sent(field string) (any, bool) {
	if r.err != nil {
		return nil, false
	}
	v, ok, err := r.d.GetOkErr(field)
	if err != nil {
		r.err = fieldError(field, "%v", err)
		return nil, false
	}
	return v, ok
}

// text reads a string, trimmed of surrounding white space.
func (r *fieldReader) text(field string, dst *string) bool {
	v, ok := r.sent(field)
	if ok {
		*dst = strings.TrimSpace(v.(string))
	}
	return ok
}

// list reads a comma list, with blanks dropped.
func (r *fieldReader) list(field string, dst *[]string) bool {
	v, ok := r.sent(field)
	if !ok {
		return false
	}
	var out []string
	for _, s := range v.([]string) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	*dst = out
	return true
}

// scopes reads a scope list. Commas and white space both separate scopes: a
// scope token cannot hold a space (RFC 6749 3.3), so "openid email profile"
// as IdP documents write it means three scopes.
func (r *fieldReader) scopes(field string, dst *[]string) bool {
	var list []string
	if !r.list(field, &list) {
		return false
	}
	var out []string
	for _, s := range list {
		out = append(out, strings.Fields(s)...)
	}
	*dst = out
	return true
}

// duration reads a duration in seconds; negative is refused.
func (r *fieldReader) duration(field string, dst *time.Duration) bool {
	v, ok := r.sent(field)
	if !ok {
		return false
	}
	if secs := v.(int); secs < 0 {
		r.err = fieldError(field, "must not be negative")
		return false
	} else if frac := subSecond(r.d.Raw[field]); frac {
		// The schema's type rounds down to whole seconds: "500ms" would
		// silently become 0 (the default) and "1500ms" 1s.
		r.err = fieldError(field, "%v is not a whole number of seconds", r.d.Raw[field])
		return false
	} else {
		*dst = time.Duration(secs) * time.Second
	}
	return true
}

// subSecond: a raw duration value (a Go duration string or a number of
// seconds) with a fraction of a second.
func subSecond(raw any) bool {
	switch v := raw.(type) {
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		return err == nil && d%time.Second != 0
	case float64:
		return v != math.Trunc(v)
	case float32:
		return float64(v) != math.Trunc(float64(v))
	case json.Number:
		f, err := v.Float64()
		return err == nil && f != math.Trunc(f)
	}
	return false
}

// flag reads a bool.
func (r *fieldReader) flag(field string, dst *bool) bool {
	v, ok := r.sent(field)
	if ok {
		*dst = v.(bool)
	}
	return ok
}

// pairs reads key=value pairs; none is nil.
func (r *fieldReader) pairs(field string, dst *map[string]string) bool {
	v, ok := r.sent(field)
	if !ok {
		return false
	}
	*dst = v.(map[string]string)
	if len(*dst) == 0 {
		*dst = nil
	}
	return true
}

// Size limits, all of them: generous for any real IdP, small enough that a
// write cannot bloat storage or every token request.
const (
	maxFieldLen   = 4096      // a string field, and an extra_params pair
	maxScopes     = 64        // scopes of a role or config
	maxScopeLen   = 256       // one scope
	maxCACertLen  = 256 << 10 // ca_cert, a PEM bundle
	maxKeyPEMLen  = 16 << 10  // a PEM private key
	maxCertPEMLen = 64 << 10  // a PEM certificate chain
	// maxSubjectTokenLen bounds a caller's subject token: JWTs with many
	// claims run to a few KiB.
	maxSubjectTokenLen = 16 << 10
	// maxCallbackParam bounds what the callback accepts in code and state:
	// real ones are a few hundred bytes at most.
	maxCallbackParam = 4096
)

// checkText refuses over-long values and control characters, which no
// client id, username or URL legitimately holds; multiline (PEM) text may
// hold line breaks and tabs.
func checkText(field, value string, maxLen int, multiline bool) *logical.Response {
	if len(value) > maxLen {
		return fieldError(field, "longer than %d bytes", maxLen)
	}
	for _, r := range value {
		if r < ' ' || r == 0x7f {
			if multiline && (r == '\n' || r == '\r' || r == '\t') {
				continue
			}
			return fieldError(field, "contains a control character")
		}
	}
	return nil
}

// checkScopes refuses scopes that would break RFC 6749's space-separated list.
func checkScopes(field string, scopes []string) *logical.Response {
	if len(scopes) > maxScopes {
		return fieldError(field, "more than %d scopes", maxScopes)
	}
	for _, s := range scopes {
		if len(s) > maxScopeLen {
			return fieldError(field, "a scope is longer than 256 bytes")
		}
		for _, r := range s {
			// RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
			if r <= ' ' || r == '"' || r == '\\' || r >= 0x7f {
				return fieldError(field, "scope %q contains a character RFC 6749 does not allow", s)
			}
		}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
