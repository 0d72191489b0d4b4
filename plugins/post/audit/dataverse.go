package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/analytics"
	"github.com/groundgate/groundgate/entra"
	"github.com/groundgate/groundgate/post"
	"github.com/groundgate/groundgate/wire"
)

// Dataverse configures the Dataverse sink: one row per interaction,
// created with a Web API POST to <url>/api/data/<api_version>/<entity_set>
// with a Microsoft Entra ID client-credentials token. The table is a
// custom table the operator creates; its columns, with the publisher
// prefix ColumnPrefix (default "gg_"), are:
//
//	<p>name             text (primary name column): the request id
//	<p>time             date and time (UTC)
//	<p>principal, <p>team, <p>policy, <p>policyversion, <p>feature,
//	<p>model, <p>upstream, <p>error                      text
//	<p>status, <p>prompttokens, <p>completiontokens     whole number
//	<p>cost, <p>latencyms                               decimal
//	<p>records, <p>articles, <p>deniedrecords,
//	<p>filteractions                                    multiline text (JSON)
//	<p>details          multiline text: the whole Interaction as JSON
//
// With Analytics on, for the admin console's figures, each row also gets
// (the table must have these columns too):
//
//	<p>day              text: the UTC day, YYYY-MM-DD (Dataverse cannot
//	                    group by a date and time column)
//	<p>responseid       text: the answer's id (feedback and look-ups)
//	<p>latencybucket    whole number: the latency histogram bucket, 0-100
//	<p>cachehit, <p>refused, <p>failed   whole number, 0 or 1
//	<p>filtercount      whole number: the number of filter actions
//
// and the console writes a rating into <p>feedbackrating (whole number),
// <p>feedbackscore (decimal), <p>feedbackcomment (multiline text),
// <p>feedbackby (text) and <p>feedbackon (date and time).
//
// Empty text columns are left out of the body. Throttling (429, and 503)
// is retried after the response's Retry-After; 401 drops the cached token
// and retries; other 5xx and network errors are retried with backoff;
// other 4xx reject the record for good (it is logged and counted as
// failed). Delivery is at least once: a POST that timed out after
// Dataverse stored the row is sent again.
type Dataverse struct {
	// URL of the environment, e.g. "https://contoso.crm.dynamics.com".
	// https is required except on loopback addresses (tests).
	URL string `json:"url"`
	// EntitySet is the table's entity set name, e.g. "gg_audits".
	EntitySet string `json:"entity_set"`
	// ColumnPrefix is the publisher prefix of the columns; default "gg_".
	ColumnPrefix string `json:"column_prefix,omitempty"`
	// APIVersion of the Web API; default "v9.2".
	APIVersion string `json:"api_version,omitempty"`
	// TenantID, ClientID and ClientSecret of the app registration (the
	// client-credentials grant). Placeholders such as {env.DV_SECRET}
	// are replaced when the module is provisioned.
	TenantID     string `json:"tenant_id,omitempty"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	// TokenURL overrides the token endpoint; default
	// https://login.microsoftonline.com/<tenant_id>/oauth2/v2.0/token.
	TokenURL string `json:"token_url,omitempty"`
	// Scope requested; default "<url>/.default".
	Scope string `json:"scope,omitempty"`
	// Timeout of one HTTP request; default 30s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Analytics adds the columns the admin console's figures read
	// (see above) to each row, and lets the console read this table.
	Analytics bool `json:"analytics,omitempty"`
	// KeyColumn is the table's primary key column, which the console
	// updates feedback by; default the entity set name without its final
	// "s", plus "id" ("gg_audits" → "gg_auditid").
	KeyColumn string `json:"key_column,omitempty"`
}

// resolve replaces placeholders and sets defaults.
func (c *Dataverse) resolve() {
	repl := caddy.NewReplacer()
	for _, p := range []*string{&c.URL, &c.EntitySet, &c.TenantID, &c.ClientID, &c.ClientSecret, &c.TokenURL, &c.Scope} {
		*p = repl.ReplaceKnown(*p, "")
	}
	c.URL = strings.TrimRight(c.URL, "/")
	if c.ColumnPrefix == "" {
		c.ColumnPrefix = "gg_"
	}
	if c.APIVersion == "" {
		c.APIVersion = "v9.2"
	}
	if c.TokenURL == "" && c.TenantID != "" {
		c.TokenURL = "https://login.microsoftonline.com/" + url.PathEscape(c.TenantID) + "/oauth2/v2.0/token"
	}
	if c.Scope == "" && c.URL != "" {
		c.Scope = c.URL + "/.default"
	}
	if c.Timeout == 0 {
		c.Timeout = caddy.Duration(30 * time.Second)
	}
}

func (c *Dataverse) validate() error {
	if c.URL == "" || c.EntitySet == "" {
		return errors.New("dataverse: url and entity_set are required")
	}
	if err := checkURL(c.URL); err != nil {
		return fmt.Errorf("dataverse: url: %v", err)
	}
	if c.ClientID == "" || c.ClientSecret == "" {
		return errors.New("dataverse: client_id and client_secret are required")
	}
	if c.TokenURL == "" {
		return errors.New("dataverse: tenant_id (or token_url) is required")
	}
	if err := checkURL(c.TokenURL); err != nil {
		return fmt.Errorf("dataverse: token_url: %v", err)
	}
	if !identRe.MatchString(c.EntitySet) {
		return fmt.Errorf("dataverse: entity_set %q: want letters, digits and underscores", c.EntitySet)
	}
	if c.KeyColumn != "" && !identRe.MatchString(c.KeyColumn) {
		return fmt.Errorf("dataverse: key_column %q: want letters, digits and underscores", c.KeyColumn)
	}
	if c.ColumnPrefix != "" && !identRe.MatchString(c.ColumnPrefix) {
		return fmt.Errorf("dataverse: column_prefix %q: want letters, digits and underscores", c.ColumnPrefix)
	}
	return nil
}

// checkURL wants https, or http to a loopback address (wire.ServiceURL).
func checkURL(s string) error {
	_, err := wire.ServiceURL(s)
	return err
}

// key identifies the sink's destination and credentials; the secret is
// hashed.
func (c *Dataverse) key() string {
	sum := sha256.Sum256([]byte(c.ClientSecret))
	return strings.Join([]string{c.URL, c.APIVersion, c.EntitySet, c.ColumnPrefix, c.TokenURL, c.ClientID, c.Scope,
		hex.EncodeToString(sum[:]), time.Duration(c.Timeout).String(), strconv.FormatBool(c.Analytics)}, "|")
}

type dataverseSink struct {
	cfg    Dataverse
	target string
	client *http.Client
	tok    *entra.Source
	body   []byte
}

func openDataverse(c Dataverse) *dataverseSink {
	client := &http.Client{Timeout: time.Duration(c.Timeout)}
	return &dataverseSink{
		cfg:    c,
		target: c.URL + "/api/data/" + c.APIVersion + "/" + c.EntitySet,
		client: client,
		tok:    entra.New(c.TokenURL, c.ClientID, c.ClientSecret, c.Scope, client),
	}
}

// write posts the records one by one and stops at the first failure.
func (s *dataverseSink) write(ctx context.Context, recs []*post.Interaction) (int, error) {
	for i, in := range recs {
		if err := s.post(ctx, in); err != nil {
			return i, err
		}
	}
	return len(recs), nil
}

func (s *dataverseSink) post(ctx context.Context, in *post.Interaction) error {
	body, err := s.encode(in)
	if err != nil {
		return &permanentError{fmt.Errorf("dataverse: encoding the record: %v", err)}
	}
	tok, err := s.tok.Token(ctx)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.target, bytes.NewReader(body))
	if err != nil {
		return &permanentError{err}
	}
	h := req.Header
	h.Set("Authorization", "Bearer "+tok)
	h.Set("Accept", "application/json")
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("OData-MaxVersion", "4.0")
	h.Set("OData-Version", "4.0")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("dataverse: %v", scrub(err))
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("dataverse: POST %s: %s: %s", s.cfg.EntitySet, resp.Status, errorMessage(msg))
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		s.tok.Invalidate(tok)
		return err
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		return &retryAfterError{after: parseRetryAfter(resp.Header, time.Now()), err: err}
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return err
	}
	return &permanentError{err}
}

// encode builds the row: typed columns plus the whole record as JSON.
func (s *dataverseSink) encode(in *post.Interaction) ([]byte, error) {
	details, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	p := s.cfg.ColumnPrefix
	b := s.body[:0]
	b = append(b, '{')
	str := func(col, v string) {
		if v == "" {
			return
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = wire.AppendString(b, p+col)
		b = append(b, ':')
		b = wire.AppendString(b, v)
	}
	num := func(col string, v []byte) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = wire.AppendString(b, p+col)
		b = append(b, ':')
		b = append(b, v...)
	}
	jsonCol := func(col string, v any, empty bool) {
		if empty {
			return
		}
		j, _ := json.Marshal(v) // part of details, which encoded
		str(col, string(j))
	}
	str("name", in.RequestID)
	str("time", in.Time.UTC().Format(time.RFC3339))
	str("principal", in.Principal)
	str("team", in.Team)
	str("policy", in.Policy)
	str("policyversion", in.PolicyVersion)
	str("feature", in.Feature)
	str("model", in.Model)
	str("upstream", in.Upstream)
	str("error", in.Error)
	num("status", strconv.AppendInt(nil, int64(in.Status), 10))
	num("prompttokens", strconv.AppendInt(nil, in.PromptTokens, 10))
	num("completiontokens", strconv.AppendInt(nil, in.CompletionTokens, 10))
	num("cost", strconv.AppendFloat(nil, in.Cost, 'f', -1, 64))
	num("latencyms", strconv.AppendFloat(nil, in.LatencyMS, 'f', 3, 64))
	jsonCol("records", in.Records, len(in.Records) == 0)
	jsonCol("articles", in.Articles, len(in.Articles) == 0)
	jsonCol("deniedrecords", in.DeniedRecords, len(in.DeniedRecords) == 0)
	jsonCol("filteractions", in.FilterActions, len(in.FilterActions) == 0)
	if s.cfg.Analytics {
		s.analyticsColumns(in, num, str)
	}
	str("details", string(details))
	b = append(b, '}')
	s.body = b
	return b, nil
}

// analyticsColumns adds what the console's $apply aggregations group by
// and sum: figures the SQLite rollup derives in SQL, derived here.
func (s *dataverseSink) analyticsColumns(in *post.Interaction, num func(string, []byte), str func(string, string)) {
	bit := func(b bool) []byte {
		if b {
			return []byte{'1'}
		}
		return []byte{'0'}
	}
	var actions string
	if len(in.FilterActions) > 0 {
		j, _ := json.Marshal(in.FilterActions)
		actions = string(j)
	}
	str("day", in.Time.UTC().Format(time.DateOnly))
	str("responseid", in.ResponseID)
	num("latencybucket", strconv.AppendInt(nil, int64(analytics.LatencyBucket(in.LatencyMS)), 10))
	num("cachehit", bit(in.CacheHit))
	num("refused", bit(analytics.Refused(in.Status, actions)))
	num("failed", bit(in.Status >= 500))
	num("filtercount", strconv.AppendInt(nil, int64(len(in.FilterActions)), 10))
}

func (s *dataverseSink) close() error {
	s.client.CloseIdleConnections()
	return nil
}

// errorMessage extracts Dataverse's error.message (or the token
// endpoint's error_description), else a short prefix of the body.
func errorMessage(body []byte) string {
	r := gjson.ParseBytes(body)
	for _, p := range []string{"error.message", "error_description", "error"} {
		if v := r.Get(p); v.Type == gjson.String && v.Str != "" {
			return v.Str
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// parseRetryAfter is the wait Dataverse asks for (0: none), at most
// maxRetryAfter.
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	d, _ := wire.RetryAfter(h, now)
	return min(d, maxRetryAfter)
}

// scrub removes the URL (which holds no secret, but may be long) from
// net/http errors, keeping the cause.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
