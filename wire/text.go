package wire

import (
	"net/url"
	"strings"
	"unicode/utf8"
)

// Text from other services, and URLs that may carry secrets or user text,
// made fit for an error message or a log line.

// RedactURL keeps scheme, host and path: no query, no user info.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// OneLine keeps the first line of s, at most n bytes of it.
func OneLine(s string, n int) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return s
}

// UnwrapURLError drops the URL that *url.Error carries: request URLs hold
// record keys (user text) that do not belong in an error.
func UnwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
