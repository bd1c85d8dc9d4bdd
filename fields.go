package idptokens

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// rejectUnknownFields refuses fields the path does not define: a typo such
// as client_secert must not be silently ignored while the write succeeds.
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

// getString returns a string field when it was sent.
func getString(d *framework.FieldData, field string) (string, bool, *logical.Response) {
	v, ok, err := d.GetOkErr(field)
	if err != nil {
		return "", false, fieldError(field, "%v", err)
	}
	if !ok {
		return "", false, nil
	}
	return v.(string), true, nil
}

// getStrings returns a list field when it was sent, with blanks dropped.
func getStrings(d *framework.FieldData, field string) ([]string, bool, *logical.Response) {
	v, ok, err := d.GetOkErr(field)
	if err != nil {
		return nil, false, fieldError(field, "%v", err)
	}
	if !ok {
		return nil, false, nil
	}
	var out []string
	for _, s := range v.([]string) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, true, nil
}

// getScopes returns a scope list when it was sent. Commas and white space
// both separate scopes: a scope token cannot hold a space (RFC 6749 3.3), so
// "openid email profile" as IdP documents write it means three scopes.
func getScopes(d *framework.FieldData, field string) ([]string, bool, *logical.Response) {
	list, ok, resp := getStrings(d, field)
	if !ok || resp != nil {
		return nil, ok, resp
	}
	var out []string
	for _, s := range list {
		out = append(out, strings.Fields(s)...)
	}
	return out, true, nil
}

// getDuration returns a duration field when it was sent; negative is refused.
func getDuration(d *framework.FieldData, field string) (time.Duration, bool, *logical.Response) {
	v, ok, err := d.GetOkErr(field)
	if err != nil {
		return 0, false, fieldError(field, "%v", err)
	}
	if !ok {
		return 0, false, nil
	}
	secs := v.(int)
	if secs < 0 {
		return 0, false, fieldError(field, "must not be negative")
	}
	return time.Duration(secs) * time.Second, true, nil
}

// getBool returns a bool field when it was sent.
func getBool(d *framework.FieldData, field string) (bool, bool, *logical.Response) {
	v, ok, err := d.GetOkErr(field)
	if err != nil {
		return false, false, fieldError(field, "%v", err)
	}
	if !ok {
		return false, false, nil
	}
	return v.(bool), true, nil
}

// Size limits: generous for any real IdP, small enough that a write cannot
// bloat storage or every token request.
const (
	maxFieldLen  = 4096
	maxCACertLen = 256 << 10
	maxScopes    = 64
)

// checkText refuses over-long values and control characters, which no
// client id, username or URL legitimately holds.
func checkText(field, value string, maxLen int) *logical.Response {
	if len(value) > maxLen {
		return fieldError(field, "longer than %d bytes", maxLen)
	}
	for _, r := range value {
		if r < ' ' || r == 0x7f {
			if field == "ca_cert" && (r == '\n' || r == '\r' || r == '\t') {
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
		if len(s) > 256 {
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
