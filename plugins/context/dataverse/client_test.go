package dataverse

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/groundgate/groundgate/grounding"
)

// TestThrottleRetryAfter: a 429 with Retry-After is waited out (for
// real: the retry comes at least a second later) and the retry succeeds.
func TestThrottleRetryAfter(t *testing.T) {
	f := newFakeDataverse(t)
	f.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			writeErr(w, 429, "0x80072322", "Number of requests exceeded the limit of 6000 over time window of 300 seconds.")
			return true
		}
		return false
	}
	d := provisionDV(t, f, func(d *Dataverse) { d.Timeout = caddyDuration(5 * time.Second) })
	start := time.Now()
	recs, _, err := d.Lookup(context.Background(), []grounding.RecordKey{caseKey("CAS-01234-ABCDEF")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("retried after %s, before Retry-After", el)
	}
	if len(recs) != 1 || len(f.reqs()) != 2 {
		t.Errorf("%d records after %d requests", len(recs), len(f.reqs()))
	}
}

// TestThrottleBeyondTimeout: a wait longer than the request's time left
// is not attempted; the error says so and carries Dataverse's code and
// message.
func TestThrottleBeyondTimeout(t *testing.T) {
	f := newFakeDataverse(t)
	f.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.Header().Set("Retry-After", "30")
		writeErr(w, 429, "0x80072322", "Number of requests exceeded the limit of 6000 over time window of 300 seconds.")
		return true
	}
	d := provisionDV(t, f, func(d *Dataverse) { d.Timeout = caddyDuration(2 * time.Second) })
	var slept []time.Duration
	d.c.sleep = func(_ context.Context, dur time.Duration) error { slept = append(slept, dur); return nil }
	_, _, err := d.Lookup(context.Background(), []grounding.RecordKey{caseKey("CAS-01234-ABCDEF")}, nil)
	var de *Error
	if !errors.As(err, &de) {
		t.Fatalf("err %v (%T)", err, err)
	}
	if de.Status != 429 || de.Code != "0x80072322" || de.RetryAfter != 30*time.Second || len(slept) != 0 {
		t.Errorf("error %+v, slept %v", de, slept)
	}
	for _, want := range []string{"GET incidents", "429 Too Many Requests", "0x80072322", "Number of requests exceeded", "retry after 30s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	assertNoSecrets(t, err.Error(), f)
}

// TestThrottleRetriesBounded: repeated 429s with short waits stop after
// maxThrottleRetries waits.
func TestThrottleRetriesBounded(t *testing.T) {
	f := newFakeDataverse(t)
	f.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.Header().Set("Retry-After", "0")
		writeErr(w, 429, "0x80072326", "Number of concurrent requests exceeded the limit of 52.")
		return true
	}
	d := provisionDV(t, f, nil)
	var slept int
	d.c.sleep = func(context.Context, time.Duration) error { slept++; return nil }
	_, _, err := d.Lookup(context.Background(), []grounding.RecordKey{caseKey("CAS-01234-ABCDEF")}, nil)
	if err == nil || slept != maxThrottleRetries || len(f.reqs()) != maxThrottleRetries+1 {
		t.Errorf("err %v after %d waits, %d requests", err, slept, len(f.reqs()))
	}
}

// TestServerErrorRetriedOnce: one 5xx is retried; two are an error that
// names Dataverse's code and message.
func TestServerErrorRetriedOnce(t *testing.T) {
	f := newFakeDataverse(t)
	fails := 1
	f.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n <= fails {
			writeErr(w, 500, "0x80040216", "An unexpected error occurred.")
			return true
		}
		return false
	}
	d := provisionDV(t, f, nil)
	recs, _, err := d.Lookup(context.Background(), []grounding.RecordKey{caseKey("CAS-01234-ABCDEF")}, nil)
	if err != nil || len(recs) != 1 {
		t.Fatalf("after one 500: %v %v", recs, err)
	}
	f.apiCalls.Store(0)
	fails = 2
	_, _, err = d.Lookup(context.Background(), []grounding.RecordKey{caseKey("CAS-01234-ABCDEF")}, nil)
	if err == nil || !strings.Contains(err.Error(), "500 Internal Server Error: 0x80040216: An unexpected error occurred.") {
		t.Errorf("after two 500s: %v", err)
	}
}

// TestErrorBodySurfaced: a 400 names the code and message; the token and
// the secret appear nowhere.
func TestErrorBodySurfaced(t *testing.T) {
	f := newFakeDataverse(t)
	f.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		writeErr(w, 400, "0x80060888", "Expand with $ref is only supported on lookup type navigation property.")
		return true
	}
	d := provisionDV(t, f, nil)
	_, _, err := d.Lookup(context.Background(), []grounding.RecordKey{{Entity: "contact", Field: "emailaddress1", Value: "maria@contoso.com"}}, nil)
	want := "dataverse: GET contacts: 400 Bad Request: 0x80060888: Expand with $ref is only supported on lookup type navigation property."
	if err == nil || err.Error() != want {
		t.Errorf("err %v\nwant %s", err, want)
	}
	if strings.Contains(err.Error(), "maria") {
		t.Error("the error carries the key value")
	}
	assertNoSecrets(t, err.Error(), f)
	if n := len(f.reqs()); n != 1 {
		t.Errorf("a 400 was retried: %d requests", n)
	}
}

// TestNonJSONErrorBody: a proxy's HTML page is not copied into the error.
func TestNonJSONErrorBody(t *testing.T) {
	f := newFakeDataverse(t)
	f.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.WriteHeader(403)
		io.WriteString(w, "<html><body>Forbidden by policy</body></html>")
		return true
	}
	d := provisionDV(t, f, nil)
	_, _, err := d.Lookup(context.Background(), []grounding.RecordKey{caseKey("CAS-01234-ABCDEF")}, nil)
	if err == nil || err.Error() != "dataverse: GET incidents: 403 Forbidden" {
		t.Errorf("err %v", err)
	}
}

// TestRefusedTokenRefreshed: a 401 drops the cached token; the retry with
// a fresh one succeeds.
func TestRefusedTokenRefreshed(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, nil)
	if _, _, err := d.Lookup(context.Background(), []grounding.RecordKey{caseKey("CAS-01234-ABCDEF")}, nil); err != nil {
		t.Fatal(err)
	}
	f.revoke()
	recs, _, err := d.Lookup(context.Background(), []grounding.RecordKey{caseKey("CAS-01234-ABCDEF")}, nil)
	if err != nil || len(recs) != 1 {
		t.Fatalf("%v %v", recs, err)
	}
	if n := f.tokenCalls.Load(); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
}

// TestNextLinkElsewhereRefused: a nextLink to another host is not
// followed (it would carry the token away).
func TestNextLinkElsewhereRefused(t *testing.T) {
	f := newFakeDataverse(t)
	f.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		io.WriteString(w, `{"value":[{"incidentid":"`+incPair+`","title":"x"}],"@odata.nextLink":"https://evil.example/api/data/v9.2/incidents?$skiptoken=1"}`)
		return true
	}
	d := provisionDV(t, f, nil)
	_, _, err := d.Lookup(context.Background(), []grounding.RecordKey{caseKey("CAS-01234-ABCDEF")}, nil)
	if err == nil || !strings.Contains(err.Error(), "nextLink") || strings.Contains(err.Error(), "evil") {
		t.Errorf("err %v", err)
	}
}

// TestRequestTimeout: a server that does not answer within the timeout.
func TestRequestTimeout(t *testing.T) {
	f := newFakeDataverse(t)
	f.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
		return true
	}
	d := provisionDV(t, f, func(d *Dataverse) { d.Timeout = caddyDuration(200 * time.Millisecond) })
	start := time.Now()
	_, _, err := d.Lookup(context.Background(), []grounding.RecordKey{caseKey("CAS-01234-ABCDEF")}, nil)
	if err == nil || !strings.Contains(err.Error(), "no answer within 200ms") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %s", el)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		h    map[string]string
		want time.Duration
	}{
		{nil, time.Second},
		{map[string]string{"Retry-After": "7"}, 7 * time.Second},
		{map[string]string{"Retry-After": "0.5"}, 500 * time.Millisecond},
		{map[string]string{"Retry-After": now.Add(3 * time.Second).Format(http.TimeFormat)}, 3 * time.Second},
		{map[string]string{"Retry-After": "soon"}, time.Second},
		{map[string]string{"Retry-After": "99999999"}, time.Hour},
		{map[string]string{"retry-after-ms": "250", "Retry-After": "9"}, 250 * time.Millisecond},
	} {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		if got := retryAfter(h, now); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.h, got, tc.want)
		}
	}
}

// assertNoSecrets fails when s holds the client secret or a token the
// fake handed out.
func assertNoSecrets(t *testing.T, s string, f *fakeDataverse) {
	t.Helper()
	if strings.Contains(s, testSecret) || strings.Contains(s, "eyJ0eXAi") {
		t.Errorf("secret or token in %q", s)
	}
}
