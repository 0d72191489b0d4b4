package console

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseFeedback: any body gives a checked request or an OpenAI-shaped
// 400, never a panic, and an accepted one obeys the rules.
func FuzzParseFeedback(f *testing.F) {
	for _, s := range []string{
		`{"response_id":"chatcmpl-1","rating":"up"}`,
		`{"response_id":"req_1","score":0.5,"comment":"ok"}`,
		`{"response_id":"x","rating":"down","score":1,"comment":null}`,
		`{"response_id":1}`, `[]`, `{}`, `{"response_id":"x","score":"1"}`, `{"a":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fb, err := parseFeedback(body)
		if err != nil {
			if statusOf(err) != http.StatusBadRequest {
				t.Fatalf("status %d for %q", statusOf(err), body)
			}
			return
		}
		if fb.ResponseID == "" || len(fb.ResponseID) > 200 || (fb.Rating != "" && fb.Rating != "up" && fb.Rating != "down") ||
			(fb.Rating == "" && fb.Score == nil) || (fb.Score != nil && (*fb.Score < 0 || *fb.Score > 1)) ||
			utf8.RuneCountInString(fb.Comment) > maxComment || !utf8.ValidString(fb.Comment) {
			t.Fatalf("accepted %q as %+v", body, fb)
		}
	})
}

// FuzzSessionCookie: no cookie value but a signed one makes a session.
func FuzzSessionCookie(f *testing.F) {
	c := &Console{gw: fakeGateway{}}
	good := c.newSessionCookie(&http.Request{}, "ops", []byte("secret-of-ops")).Value
	for _, s := range []string{good, "b3Bz.9999999999.00", "..", "b3Bz", good + "x", strings.Replace(good, "b3Bz", "c3Vw", 1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := &http.Request{Header: http.Header{"Cookie": {cookieName + "=" + v}}}
		s := c.sessionOf(r)
		if s == nil {
			return
		}
		// Only the exact signed value (as the cookie parser reads it) may
		// pass.
		if ck, _ := r.Cookie(cookieName); s.name != "ops" || ck == nil || ck.Value != good {
			t.Fatalf("forged session %q accepted as %q", v, s.name)
		}
	})
}
