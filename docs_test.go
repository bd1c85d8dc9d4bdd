package idptokens

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/hashicorp/vault/sdk/framework"
)

// The project's markdown: docs/api.md's field tables come from the code's
// tables (config_fields.go, role_fields.go, token_answer.go), and every
// relative link in the docs leads somewhere.

const apiDoc = "docs/api.md"

// TestAPIDocTables regenerates the blocks of docs/api.md between
// "<!-- generated:NAME -->" and "<!-- end -->" from configFieldTable,
// roleFieldTable and tokenAnswerFields, and fails when the file differs or
// when a field has no description. UPDATE_DOCS=1 rewrites the file.
func TestAPIDocTables(t *testing.T) {
	for _, f := range configFieldTable {
		if strings.TrimSpace(f.desc) == "" {
			t.Errorf("config field %s (config_fields.go) has no description", f.name)
		}
	}
	for _, f := range roleFieldTable {
		if strings.TrimSpace(f.desc) == "" {
			t.Errorf("role field %s (role_fields.go) has no description", f.name)
		}
	}
	for _, f := range tokenAnswerFields {
		if strings.TrimSpace(f.desc) == "" {
			t.Errorf("token answer field %s (token_answer.go) has no description", f.name)
		}
	}
	raw, err := os.ReadFile(apiDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	want, stale, err := fillGenerated(doc, apiDocBlocks(t))
	if err != nil {
		t.Fatalf("%s: %v", apiDoc, err)
	}
	if os.Getenv("UPDATE_DOCS") != "" {
		if want != doc {
			if err := os.WriteFile(apiDoc, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote %s (%s)", apiDoc, strings.Join(stale, ", "))
		}
		return
	}
	if want != doc {
		t.Fatalf("%s: the generated blocks %s differ from the code's field tables; "+
			"`UPDATE_DOCS=1 go test -run TestAPIDocTables .` rewrites them (then review the diff)", apiDoc, strings.Join(stale, ", "))
	}
}

var generatedBlock = regexp.MustCompile(`(?s)<!-- generated:([a-z-]+) -->\n(.*?)<!-- end -->`)

// fillGenerated replaces the body of each generated block of doc; every
// block must appear exactly once. It returns the blocks whose body changed.
func fillGenerated(doc string, blocks map[string]string) (string, []string, error) {
	seen := map[string]int{}
	var stale []string
	out := generatedBlock.ReplaceAllStringFunc(doc, func(m string) string {
		sub := generatedBlock.FindStringSubmatch(m)
		name, body := sub[1], sub[2]
		seen[name]++
		gen, ok := blocks[name]
		if !ok {
			return m
		}
		want := "\n" + gen + "\n\n"
		if body != want {
			stale = append(stale, name)
		}
		return "<!-- generated:" + name + " -->\n" + want + "<!-- end -->"
	})
	var problems []string
	for name := range seen {
		if _, ok := blocks[name]; !ok {
			problems = append(problems, fmt.Sprintf("unknown block %q", name))
		}
	}
	for name := range blocks {
		if seen[name] != 1 {
			problems = append(problems, fmt.Sprintf("block %q appears %d times, want once (<!-- generated:%s --> ... <!-- end -->)", name, seen[name], name))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return "", nil, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	slices.Sort(stale)
	return out, stale, nil
}

// apiDocBlocks is each generated block of docs/api.md, by name.
func apiDocBlocks(t *testing.T) map[string]string {
	configBy := func(keep func(configField) bool) []string {
		var names []string
		for _, f := range configFieldTable {
			if keep(f) {
				names = append(names, f.name)
			}
		}
		return names
	}
	var readSet []string
	for _, f := range configFieldTable {
		if f.kind == kindSecret || f.kind == kindPrevious {
			readSet = append(readSet, f.name+"_set")
		}
	}
	return map[string]string{
		"config-kinds":  kindLegend(t, configKindsUsed(), nil),
		"config-fields": configFieldDocTable(t),
		"config-endpoints": "The endpoint fields, where the engine sends requests and with them the " +
			"credentials, are " + codeList(configBy(func(f configField) bool { return f.endpoint }), "and") + ": each must be " +
			"`https` except on loopback hosts (or with `allow_insecure_http=true`), and its host must be in the mount's " +
			"`allowed_hosts` when that is set.",
		"config-read": "A read shows every field but the secrets and the key file (" +
			codeList(configBy(func(f configField) bool { return f.kind == kindKeyFile }), "and") + "), and whether each secret is held: " +
			codeList(readSet, "and") + ". An update that omits a secret keeps it.",
		"config-retargets": "**Changing " + codeList(configBy(func(f configField) bool { return f.retargets }), "or") +
			" requires the stored secrets to be written again in the same request**, and forgets the previous credentials of a rotation.",
		"config-identity": "Changing " + codeList(configBy(func(f configField) bool { return f.identity }), "or") +
			" (the fields that name the client or the resource owner) drops the config's cached tokens: they are never served again.",
		"role-kinds":   kindLegend(t, roleKindsUsed(), map[fieldKind]string{kindDuration: roleDuration}),
		"role-fields":  roleFieldDocTable(t),
		"token-answer": tokenAnswerDocTable(t),
	}
}

// kindDoc names each field kind in the docs: a short name for the tables
// and what it means for the legend.
var kindDoc = map[fieldKind][2]string{
	kindText:       {"text", "a string"},
	kindSecret:     {"secret", "a write-only string: a read shows `<name>_set` instead"},
	kindPrevious:   {"previous", "the secret before a rotation, set by `config/<name>/rotate` only: a read shows `<name>_set`"},
	kindList:       {"list", "values separated by commas"},
	kindScopes:     {"scopes", "values separated by commas or spaces"},
	kindDuration:   {"duration", "whole seconds (`90`, or `90s`, `10m`, `1h`); a read answers seconds: unset, the default in force, or 0 where there is none"},
	kindFlag:       {"flag", "`true` or `false`"},
	kindPresetFlag: {"preset flag", "`true` or `false`; unset, the preset's default"},
	kindKeyFile:    {"key file", "a write-only file (`@file`) whose parts are stored in other fields"},
	kindFound:      {"found", "read-only: set by the engine"},
	kindPairs:      {"pairs", "`key=value` pairs separated by commas"},
	kindJSON:       {"JSON", "a JSON object, written and read as text"},
}

func kindName(t *testing.T, k fieldKind) string {
	d, ok := kindDoc[k]
	if !ok {
		t.Errorf("field kind %d has no name in kindDoc (docs_test.go)", k)
		return "?"
	}
	return d[0]
}

func configKindsUsed() []fieldKind {
	var out []fieldKind
	for _, f := range configFieldTable {
		if !slices.Contains(out, f.kind) {
			out = append(out, f.kind)
		}
	}
	return out
}

func roleKindsUsed() []fieldKind {
	var out []fieldKind
	for _, f := range roleFieldTable {
		if !slices.Contains(out, f.kind) {
			out = append(out, f.kind)
		}
	}
	return out
}

// roleDuration is what a role's duration is: a role read shows what was
// written (roleReadData), not a default.
const roleDuration = "whole seconds (`90`, or `90s`, `10m`, `1h`); a read answers seconds, 0 when unset"

// kindLegend says what each kind means; other overrides kindDoc's meaning.
func kindLegend(t *testing.T, kinds []fieldKind, other map[fieldKind]string) string {
	slices.Sort(kinds)
	var lines []string
	for _, k := range kinds {
		meaning := kindDoc[k][1]
		if m, ok := other[k]; ok {
			meaning = m
		}
		lines = append(lines, "- **"+kindName(t, k)+"**: "+meaning)
	}
	return strings.Join(lines, "\n")
}

func configFieldDocTable(t *testing.T) string {
	rows := []string{"| field | kind | a change | meaning |", "|---|---|---|---|"}
	for _, f := range configFieldTable {
		kind := kindName(t, f.kind)
		if f.kind == kindDuration && f.def > 0 {
			kind += ", default " + shortDuration(f.def)
		}
		var change []string
		if f.retargets {
			change = append(change, "secrets again")
		}
		if f.identity {
			change = append(change, "drops tokens")
		}
		rows = append(rows, "| `"+f.name+"` | "+kind+" | "+strings.Join(change, "; ")+" | "+cell(f.desc)+" |")
	}
	return strings.Join(rows, "\n")
}

func roleFieldDocTable(t *testing.T) string {
	rows := []string{"| field | kind | grant | meaning |", "|---|---|---|---|"}
	for _, f := range roleFieldTable {
		grant := "every grant"
		if f.grant != "" {
			grant = "`" + string(f.grant) + "`"
		}
		rows = append(rows, "| `"+f.name+"` | "+kindName(t, f.kind)+" | "+grant+" | "+cell(f.desc)+" |")
	}
	return strings.Join(rows, "\n")
}

func tokenAnswerDocTable(t *testing.T) string {
	types := map[framework.FieldType]string{framework.TypeString: "string", framework.TypeInt: "integer (seconds)"}
	rows := []string{"| field | type | `creds`, `exchange` (leased) | `token` (no lease) | meaning |", "|---|---|---|---|---|"}
	for _, f := range tokenAnswerFields {
		typ, ok := types[f.typ]
		if !ok {
			t.Errorf("token answer field %s: type %v has no name in the docs (docs_test.go)", f.name, f.typ)
		}
		when := "always"
		if f.optional {
			when = "when the token has one"
		}
		leased := when
		if f.unleased {
			leased = "no"
		}
		rows = append(rows, "| `"+f.name+"` | "+typ+" | "+leased+" | "+when+" | "+cell(f.desc)+" |")
	}
	return strings.Join(rows, "\n")
}

// cell is text as one markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;", "\n", " ").Replace(s)
}

// codeList is "`a`, `b` and `c`".
func codeList(names []string, conj string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = "`" + n + "`"
	}
	if len(quoted) < 2 {
		return strings.Join(quoted, "")
	}
	return strings.Join(quoted[:len(quoted)-1], ", ") + " " + conj + " " + quoted[len(quoted)-1]
}

func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// projectDocs are the markdown files whose links are checked.
func projectDocs(t *testing.T) []string {
	files := []string{"README.md", "CONTRIBUTING.md", "CHANGELOG.md"}
	more, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append(files, more...)
}

var (
	fence      = regexp.MustCompile("(?ms)^ {0,3}(```|~~~).*?^ {0,3}(```|~~~)[^\n]*$")
	inlineCode = regexp.MustCompile("`[^`\n]*`")
	mdLink     = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	atxHeading = regexp.MustCompile(`(?m)^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$`)
	linkText   = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// prose is a markdown file without its code blocks and code spans.
func prose(md string) string {
	md = fence.ReplaceAllStringFunc(md, func(m string) string { return strings.Repeat("\n", strings.Count(m, "\n")) })
	return inlineCode.ReplaceAllString(md, "")
}

// anchors are the heading anchors GitHub gives a markdown file: lower
// case, spaces to '-', punctuation dropped, "-1", "-2" for repeats.
func anchors(md string) map[string]bool {
	out := map[string]bool{}
	md = fence.ReplaceAllString(md, "")
	for _, m := range atxHeading.FindAllStringSubmatch(md, -1) {
		slug := githubSlug(linkText.ReplaceAllString(m[1], "$1"))
		a := slug
		for i := 1; out[a]; i++ {
			a = fmt.Sprintf("%s-%d", slug, i)
		}
		out[a] = true
	}
	return out
}

func githubSlug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case unicode.IsLetter(r) || unicode.IsNumber(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// TestDocLinks checks every relative link of the project's markdown: the
// file it names exists, and an #anchor names a heading of that file.
func TestDocLinks(t *testing.T) {
	cache := map[string]map[string]bool{}
	anchorsOf := func(path string) map[string]bool {
		if a, ok := cache[path]; ok {
			return a
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		cache[path] = anchors(string(raw))
		return cache[path]
	}
	links := 0
	for _, file := range projectDocs(t) {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(prose(string(raw)), "\n") {
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				links++
				path, anchor, _ := strings.Cut(target, "#")
				switch {
				case path == "":
					path = file
				case strings.HasPrefix(path, "/"):
					path = strings.TrimPrefix(path, "/")
				default:
					path = filepath.Join(filepath.Dir(file), path)
				}
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s:%d: link %q: no file %s", file, i+1, target, path)
					continue
				}
				if anchor != "" && strings.HasSuffix(path, ".md") && !anchorsOf(path)[anchor] {
					t.Errorf("%s:%d: link %q: %s has no heading whose anchor is #%s", file, i+1, target, path, anchor)
				}
			}
		}
	}
	if links == 0 {
		t.Fatal("found no links at all: the link pattern is broken")
	}
}

var listItem = regexp.MustCompile(`(?m)^ {0,3}(?:[-*+]|[0-9]+\.) `)

// paragraphs splits markdown at blank lines and list items.
func paragraphs(md string) []string {
	var out []string
	for _, block := range strings.Split(md, "\n\n") {
		starts := listItem.FindAllStringIndex(block, -1)
		if len(starts) == 0 || starts[0][0] != 0 {
			starts = append([][]int{{0, 0}}, starts...)
		}
		for i, st := range starts {
			end := len(block)
			if i+1 < len(starts) {
				end = starts[i+1][0]
			}
			out = append(out, block[st[0]:end])
		}
	}
	return out
}

// TestDocsNameEveryEndpoint: a paragraph (or list item) of the docs that
// lists endpoint fields (three or more) lists all of them, the fields with
// endpoint: true in configFieldTable.
func TestDocsNameEveryEndpoint(t *testing.T) {
	var endpoints []string
	for _, f := range configFieldTable {
		if f.endpoint {
			endpoints = append(endpoints, f.name)
		}
	}
	for _, file := range projectDocs(t) {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		md := fence.ReplaceAllString(string(raw), "")
		for _, para := range paragraphs(md) {
			var named, missing []string
			for _, e := range endpoints {
				if strings.Contains(para, "`"+e+"`") {
					named = append(named, e)
				} else {
					missing = append(missing, e)
				}
			}
			if len(named) >= 3 && len(missing) > 0 {
				first, _, _ := strings.Cut(strings.TrimSpace(para), "\n")
				t.Errorf("%s: a paragraph names the endpoint fields %s but not %s: %q", file, strings.Join(named, ", "), strings.Join(missing, ", "), first)
			}
		}
	}
}
