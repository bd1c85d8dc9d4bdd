// Package promtext is a strict parser of the Prometheus text exposition
// format (version 0.0.4), for tests: it accepts what the format allows and
// the engine emits, and rejects anything a scraper might misread.
package promtext

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Family is one metric family: its type, help and samples.
type Family struct {
	Name, Type, Help string
	Samples          []Sample
}

// Sample is one line of a family.
type Sample struct {
	Name   string // with _bucket, _sum or _count for histograms
	Labels map[string]string
	Value  float64
}

var (
	metricName = `[a-zA-Z_:][a-zA-Z0-9_:]*`
	helpRE     = regexp.MustCompile(`^# HELP (` + metricName + `) (.*)$`)
	typeRE     = regexp.MustCompile(`^# TYPE (` + metricName + `) (counter|gauge|histogram|summary|untyped)$`)
	sampleRE   = regexp.MustCompile(`^(` + metricName + `)(\{(.*)\})? (\S+)$`)
	labelRE    = regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"`)
)

// Parse reads an exposition and checks it: every sample belongs to the
// family declared by the TYPE line before it, no series repeats, label
// values are correctly escaped, and histograms have cumulative buckets
// ending in +Inf equal to _count.
func Parse(r io.Reader) (map[string]*Family, error) {
	fams := map[string]*Family{}
	var cur *Family
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		fail := func(format string, a ...any) error {
			return fmt.Errorf("line %d %q: %s", n, line, fmt.Sprintf(format, a...))
		}
		switch {
		case line == "":
			return nil, fail("empty line")
		case strings.HasPrefix(line, "# HELP "):
			m := helpRE.FindStringSubmatch(line)
			if m == nil {
				return nil, fail("bad HELP")
			}
			if fams[m[1]] != nil {
				return nil, fail("family declared twice")
			}
			cur = &Family{Name: m[1], Help: m[2]}
			fams[m[1]] = cur
		case strings.HasPrefix(line, "# TYPE "):
			m := typeRE.FindStringSubmatch(line)
			if m == nil || cur == nil || cur.Name != m[1] || cur.Type != "" {
				return nil, fail("TYPE must follow its HELP once")
			}
			cur.Type = m[2]
		case strings.HasPrefix(line, "#"):
			return nil, fail("unexpected comment")
		default:
			m := sampleRE.FindStringSubmatch(line)
			if m == nil {
				return nil, fail("not a sample")
			}
			if cur == nil || cur.Type == "" {
				return nil, fail("sample before its TYPE")
			}
			if !belongs(cur, m[1]) {
				return nil, fail("sample of another family than %s", cur.Name)
			}
			labels, err := parseLabels(m[3])
			if err != nil {
				return nil, fail("%v", err)
			}
			v, err := strconv.ParseFloat(m[4], 64)
			if err != nil || math.IsNaN(v) {
				return nil, fail("bad value")
			}
			if seen[m[1]+"{"+m[3]+"}"] {
				return nil, fail("series repeats")
			}
			seen[m[1]+"{"+m[3]+"}"] = true
			cur.Samples = append(cur.Samples, Sample{Name: m[1], Labels: labels, Value: v})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, f := range fams {
		if f.Type == "" {
			return nil, fmt.Errorf("family %s has no TYPE", f.Name)
		}
		if f.Type == "histogram" {
			if err := checkHistogram(f); err != nil {
				return nil, err
			}
		}
	}
	return fams, nil
}

func belongs(f *Family, name string) bool {
	if f.Type == "histogram" {
		return slices.Contains([]string{f.Name + "_bucket", f.Name + "_sum", f.Name + "_count"}, name)
	}
	return name == f.Name
}

func parseLabels(s string) (map[string]string, error) {
	labels := map[string]string{}
	for s != "" {
		m := labelRE.FindStringSubmatch(s)
		if m == nil {
			return nil, fmt.Errorf("bad labels at %q", s)
		}
		if _, dup := labels[m[1]]; dup {
			return nil, fmt.Errorf("label %s repeats", m[1])
		}
		labels[m[1]] = strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\n`, "\n").Replace(m[2])
		s = s[len(m[0]):]
		if s != "" {
			if s[0] != ',' {
				return nil, fmt.Errorf("expected a comma at %q", s)
			}
			s = s[1:]
		}
	}
	return labels, nil
}

// checkHistogram: per label set (without le), buckets rise, end in +Inf,
// and +Inf equals _count.
func checkHistogram(f *Family) error {
	type series struct {
		les    []float64
		counts []float64
		count  float64
		has    bool
	}
	all := map[string]*series{}
	key := func(l map[string]string) string {
		var parts []string
		for k, v := range l {
			if k != "le" {
				parts = append(parts, k+"="+v)
			}
		}
		slices.Sort(parts)
		return strings.Join(parts, ",")
	}
	get := func(k string) *series {
		if all[k] == nil {
			all[k] = &series{}
		}
		return all[k]
	}
	for _, s := range f.Samples {
		sr := get(key(s.Labels))
		switch s.Name {
		case f.Name + "_bucket":
			le, err := strconv.ParseFloat(s.Labels["le"], 64)
			if err != nil {
				return fmt.Errorf("%s: bad le %q", f.Name, s.Labels["le"])
			}
			sr.les = append(sr.les, le)
			sr.counts = append(sr.counts, s.Value)
		case f.Name + "_count":
			sr.count, sr.has = s.Value, true
		}
	}
	for k, sr := range all {
		if !sr.has || len(sr.les) == 0 || !math.IsInf(sr.les[len(sr.les)-1], 1) {
			return fmt.Errorf("%s{%s}: needs buckets ending in +Inf and a _count", f.Name, k)
		}
		for i := 1; i < len(sr.les); i++ {
			if sr.les[i] <= sr.les[i-1] || sr.counts[i] < sr.counts[i-1] {
				return fmt.Errorf("%s{%s}: buckets not ascending and cumulative", f.Name, k)
			}
		}
		if sr.counts[len(sr.counts)-1] != sr.count {
			return fmt.Errorf("%s{%s}: +Inf bucket %v != _count %v", f.Name, k, sr.counts[len(sr.counts)-1], sr.count)
		}
	}
	return nil
}

// Value returns the value of the family's sample with exactly these labels
// (and sample name, for histograms), and whether there is one.
func Value(fams map[string]*Family, sample string, labels map[string]string) (float64, bool) {
	for _, f := range fams {
		for _, s := range f.Samples {
			if s.Name == sample && equal(s.Labels, labels) {
				return s.Value, true
			}
		}
	}
	return 0, false
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
