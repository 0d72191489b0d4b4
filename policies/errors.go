package policies

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Error is one problem in one policy file. Its message reads
// "file:line: what is wrong", with the field named by its path
// (e.g. policy.upstream.pool).
type Error struct {
	File  string // the file name as given to Parse or found by Load
	Line  int    // 1-based; 0 when the problem has no single line
	Field string // dotted path of the field concerned, "" when none
	Msg   string // the message without the file:line prefix
}

func (e *Error) Error() string {
	switch {
	case e.File == "":
		return e.Msg
	case e.Line > 0:
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	default:
		return e.File + ": " + e.Msg
	}
}

// ErrorList is every problem found while loading a set of policy files,
// sorted by file and line. Load and Parse return it (as an error) when
// there is at least one.
type ErrorList []*Error

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.As find an individual *Error.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

func (l ErrorList) sort() {
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].File != l[j].File {
			return l[i].File < l[j].File
		}
		return l[i].Line < l[j].Line
	})
}

// maxErrorsPerFile keeps one badly broken file from burying the others.
const maxErrorsPerFile = 20

// errs collects errors for one file.
type errs struct {
	file string
	list ErrorList
	bad  map[string]bool // fields with an error already
}

func (e *errs) add(line int, field, format string, args ...any) {
	if field != "" {
		if e.bad == nil {
			e.bad = make(map[string]bool)
		}
		e.bad[field] = true
	}
	if len(e.list) >= maxErrorsPerFile {
		return
	}
	e.list = append(e.list, &Error{File: e.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
	if len(e.list) == maxErrorsPerFile {
		e.list = append(e.list, &Error{File: e.file, Line: line, Msg: "too many errors; stopping here"})
	}
}

// suggest returns ` (did you mean "x"?)` when one of known is close to
// got, else "".
func suggest(got string, known []string) string {
	best, bestD := "", 1<<30
	for _, k := range known {
		d := editDistance(strings.ToLower(got), k)
		if d < bestD {
			best, bestD = k, d
		}
	}
	limit := 2
	if len(got) <= 4 {
		limit = 1
	}
	if best == "" || bestD > limit {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the optimal-string-alignment distance (Levenshtein plus
// adjacent transpositions) between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	var rows [3][65]int
	pp, prev, cur := &rows[0], &rows[1], &rows[2]
	for j := 0; j <= len(b); j++ {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], pp[j-2]+1)
			}
		}
		pp, prev, cur = prev, cur, pp
	}
	return prev[len(b)]
}
