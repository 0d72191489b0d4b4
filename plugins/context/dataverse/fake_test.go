package dataverse

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// fakeDataverse is a Dataverse environment and its Entra ID token endpoint
// on loopback, speaking the documented wire formats: the OData headers,
// $select/$filter (a real little parser: eq, and, or, parentheses, quoted
// strings with ” escapes, GUIDs, numbers, booleans), paging by
// Prefer: odata.maxpagesize and @odata.nextLink with a $skiptoken cookie,
// formatted-value and lookuplogicalname annotations when Prefer asks for
// them, {"error":{"code","message"}} bodies, and Dataverse search with its
// doubly encoded response.
type fakeDataverse struct {
	t   testing.TB
	srv *httptest.Server
	URL string

	mu       sync.Mutex
	tables   map[string][]map[string]any // entity set → rows as Dataverse stores them (annotations included)
	props    map[string]map[string]bool  // entity set → properties that exist
	requests []fakeRequest
	issued   map[string]bool // tokens handed out and still accepted
	// fault, when set, may answer a request itself (return true).
	fault func(w http.ResponseWriter, r *http.Request, n int) bool
	// searchOmits are attributes Dataverse search leaves out of results
	// (columns not in the search index).
	searchOmits map[string]bool

	tokenCalls atomic.Int64
	apiCalls   atomic.Int64
}

type fakeRequest struct {
	Method, Path string
	Query        url.Values
	Header       http.Header
	Body         []byte
	Filter       []cmp // the comparisons of $filter, in order
}

const (
	testTenant = "contoso-tenant"
	testClient = "client-app-id"
	testSecret = "s3cret-Value-never-shown"
	// secretEnv holds testSecret; configs name it as a placeholder.
	secretEnv = "GROUNDGATE_TEST_DATAVERSE_SECRET"
)

func TestMain(m *testing.M) {
	os.Setenv(secretEnv, testSecret)
	os.Exit(m.Run())
}

func newFakeDataverse(t testing.TB) *fakeDataverse {
	f := &fakeDataverse{t: t, tables: sampleTables(), props: sampleProps(), issued: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeDataverse) tokenURL() string { return f.URL + "/" + testTenant + "/oauth2/v2.0/token" }

// reqs returns the recorded API requests (not token requests).
func (f *fakeDataverse) reqs() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.requests...)
}

func (f *fakeDataverse) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
		f.serveToken(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	n := int(f.apiCalls.Add(1))
	rec := fakeRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body}
	if fl := r.URL.Query().Get("$filter"); fl != "" {
		if e, err := parseFilter(fl); err == nil {
			rec.Filter = e.comparisons()
		}
	}
	f.mu.Lock()
	f.requests = append(f.requests, rec)
	fault := f.fault
	f.mu.Unlock()

	// Headers every Web API request must carry.
	for h, want := range map[string]string{"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0", "If-None-Match": "null"} {
		if got := r.Header.Get(h); got != want {
			f.t.Errorf("%s %s: header %s = %q, want %q", r.Method, r.URL.Path, h, got, want)
		}
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	valid := f.issued[tok]
	f.mu.Unlock()
	if !valid {
		writeErr(w, 401, "0x80072560", "The user is not a member of the organization.")
		return
	}
	if fault != nil && fault(w, r, n) {
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/search/v2.0/query":
		f.serveSearch(w, r, body)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/data/v9.2/"):
		f.serveQuery(w, r)
	default:
		writeErr(w, 404, "0x80060888", "Resource not found for the segment '"+r.URL.Path+"'.")
	}
}

func (f *fakeDataverse) serveToken(w http.ResponseWriter, r *http.Request) {
	f.tokenCalls.Add(1)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		f.t.Errorf("token request %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
	}
	if err := r.ParseForm(); err != nil {
		f.t.Error(err)
	}
	if r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("client_id") != testClient ||
		r.PostForm.Get("scope") != f.URL+"/.default" {
		f.t.Errorf("token form %v", r.PostForm)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if r.PostForm.Get("client_secret") != testSecret {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.\r\nTrace ID: 1\r\nCorrelation ID: 2","error_codes":[7000215]}`)
		return
	}
	tok := fmt.Sprintf("eyJ0eXAi.token-%d", f.tokenCalls.Load())
	f.mu.Lock()
	f.issued[tok] = true
	f.mu.Unlock()
	fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":%q}`, tok)
}

// revoke makes the API refuse every token issued so far.
func (f *fakeDataverse) revoke() {
	f.mu.Lock()
	f.issued = map[string]bool{}
	f.mu.Unlock()
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": msg}})
	w.Write(b)
}

var (
	maxPageRE   = regexp.MustCompile(`odata\.maxpagesize=(\d+)`)
	pageNumRE   = regexp.MustCompile(`pagenumber="(\d+)"`)
	annotations = regexp.MustCompile(`odata\.include-annotations="([^"]*)"`)
)

func (f *fakeDataverse) serveQuery(w http.ResponseWriter, r *http.Request) {
	set := strings.TrimPrefix(r.URL.Path, "/api/data/v9.2/")
	f.mu.Lock()
	rows, ok := f.tables[set]
	props := f.props[set]
	f.mu.Unlock()
	if !ok {
		writeErr(w, 404, "0x80060888", "Resource not found for the segment '"+set+"'.")
		return
	}
	q := r.URL.Query()
	for name := range q {
		switch name {
		case "$select", "$filter", "$skiptoken", "$top", "$orderby", "$expand":
		default:
			writeErr(w, 400, "0x80060888", "The query parameter "+name+" is not supported")
			return
		}
	}
	entity := strings.TrimSuffix(set, "s")
	pk := entity + "id"
	var sel []string
	if s := q.Get("$select"); s != "" {
		for _, c := range strings.Split(s, ",") {
			if !props[c] {
				writeErr(w, 400, "0x80060888", fmt.Sprintf("Could not find a property named '%s' on type 'Microsoft.Dynamics.CRM.%s'.", c, entity))
				return
			}
			sel = append(sel, c)
		}
	}
	var match func(map[string]any) bool = func(map[string]any) bool { return true }
	if fl := q.Get("$filter"); fl != "" {
		e, err := parseFilter(fl)
		if err != nil {
			writeErr(w, 400, "0x80060888", "Syntax error in $filter: "+err.Error())
			return
		}
		for _, c := range e.comparisons() {
			if !props[c.prop] {
				writeErr(w, 400, "0x80060888", fmt.Sprintf("Could not find a property named '%s' on type 'Microsoft.Dynamics.CRM.%s'.", c.prop, entity))
				return
			}
		}
		match = e.eval
	}
	var hits []map[string]any
	for _, row := range rows {
		if match(row) {
			hits = append(hits, row)
		}
	}
	prefer := r.Header.Get("Prefer")
	size := 5000
	if m := maxPageRE.FindStringSubmatch(prefer); m != nil {
		size, _ = strconv.Atoi(m[1])
	}
	page := 1
	if st := q.Get("$skiptoken"); st != "" {
		m := pageNumRE.FindStringSubmatch(st)
		if m == nil {
			writeErr(w, 400, "0x80040203", "Invalid $skiptoken")
			return
		}
		page, _ = strconv.Atoi(m[1])
	}
	var ann []string
	if m := annotations.FindStringSubmatch(prefer); m != nil {
		ann = strings.Split(m[1], ",")
	}
	from := min((page-1)*size, len(hits))
	to := min(from+size, len(hits))
	out := make([]map[string]any, 0, to-from)
	for _, row := range hits[from:to] {
		o := map[string]any{"@odata.etag": `W/"112430907"`, pk: row[pk]}
		for k, v := range row {
			prop, a, isAnn := strings.Cut(k, "@")
			if sel != nil && !contains(sel, prop) {
				continue
			}
			if isAnn && !contains(ann, a) && !contains(ann, "*") {
				continue
			}
			o[k] = v
		}
		out = append(out, o)
	}
	resp := map[string]any{
		"@odata.context": f.URL + "/api/data/v9.2/$metadata#" + set + "(" + strings.Join(sel, ",") + ")",
		"value":          out,
	}
	if to < len(hits) {
		next := url.Values{}
		for k, v := range q {
			if k != "$skiptoken" {
				next[k] = v
			}
		}
		next.Set("$skiptoken", fmt.Sprintf(`<cookie pagenumber="%d" pagingcookie="%%253ccookie%%2520page%%253d%%2522%d%%2522%%253e" istracking="False" />`, page+1, page))
		resp["@odata.nextLink"] = f.URL + r.URL.Path + "?" + next.Encode()
	}
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.Header().Set("OData-Version", "4.0")
	if len(ann) > 0 {
		w.Header().Set("Preference-Applied", prefer)
	}
	json.NewEncoder(w).Encode(resp)
}

// serveSearch answers POST /api/search/v2.0/query over knowledge
// articles: a row matches when its title, description, keywords or
// content holds a word of the search text; the score is the number of
// words it holds.
func (f *fakeDataverse) serveSearch(w http.ResponseWriter, r *http.Request, body []byte) {
	if ct := r.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		f.t.Errorf("search Content-Type %q", ct)
	}
	var req struct {
		Search   string  `json:"search"`
		Entities string  `json:"entities"`
		Top      float64 `json:"top"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeErr(w, 400, "0x80040203", "Invalid request body")
		return
	}
	var ents []struct {
		Name          string
		SelectColumns []string
		SearchColumns []string
		Filter        string
	}
	if err := json.Unmarshal([]byte(req.Entities), &ents); err != nil {
		writeErr(w, 400, "0x80040203", "entities is not a JSON-encoded string of entities")
		return
	}
	if len([]rune(req.Search)) > 100 {
		writeErr(w, 400, "0x80040203", "search is longer than 100 characters")
		return
	}
	type item struct {
		Id             string
		EntityName     string
		ObjectTypeCode int
		Attributes     map[string]any
		Highlights     map[string][]string
		Score          float64
	}
	var items []item
	words := strings.Fields(strings.ToLower(req.Search))
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range ents {
		match := func(map[string]any) bool { return true }
		if e.Filter != "" {
			ex, err := parseFilter(e.Filter)
			if err != nil {
				writeErr(w, 400, "0x80040203", "Invalid filter: "+err.Error())
				return
			}
			match = ex.eval
		}
		for _, row := range f.tables[e.Name+"s"] {
			if !match(row) {
				continue
			}
			text := strings.ToLower(fmt.Sprint(row["title"], " ", row["description"], " ", row["keywords"], " ", row["content"]))
			score := 0.0
			var hl []string
			for _, wd := range words {
				if strings.Contains(text, wd) {
					score++
					hl = append(hl, "{crmhit}"+wd+"{/crmhit}")
				}
			}
			if score == 0 {
				continue
			}
			attrs := map[string]any{"@search.objecttypecode": 9953}
			for _, c := range e.SelectColumns {
				if v, ok := row[c]; ok && !f.searchOmits[c] {
					attrs[c] = v
				}
				if v, ok := row[c+fvSuffix]; ok && !f.searchOmits[c] {
					attrs[c+fvSuffix] = v
				}
			}
			items = append(items, item{Id: row[e.Name+"id"].(string), EntityName: e.Name, ObjectTypeCode: 9953,
				Attributes: attrs, Highlights: map[string][]string{"content": {strings.Join(hl, " … ")}}, Score: score + 0.25})
		}
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].Score > items[j].Score })
	if top := int(req.Top); top > 0 && len(items) > top {
		items = items[:top]
	}
	inner, _ := json.Marshal(map[string]any{"Error": nil, "Value": items, "Facets": map[string]any{}, "QueryContext": nil, "Count": -1})
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.Header().Set("OData-Version", "4.0")
	json.NewEncoder(w).Encode(map[string]any{
		"@odata.context": f.URL + "/api/data/v9.2/$metadata#Microsoft.Dynamics.CRM.searchqueryResponse",
		"response":       string(inner),
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// --- a small OData $filter parser -------------------------------------

type cmp struct{ prop, lit string } // lit: the literal's value (strings unquoted)

type expr struct {
	op          string // "or", "and", "eq"
	left, right *expr
	c           cmp
	quoted      bool
}

func (e *expr) eval(row map[string]any) bool {
	switch e.op {
	case "or":
		return e.left.eval(row) || e.right.eval(row)
	case "and":
		return e.left.eval(row) && e.right.eval(row)
	}
	v, ok := row[e.c.prop]
	if !ok || v == nil {
		return e.c.lit == "null"
	}
	return strings.EqualFold(fmt.Sprint(v), e.c.lit)
}

func (e *expr) comparisons() []cmp {
	if e.op == "eq" {
		return []cmp{e.c}
	}
	return append(e.left.comparisons(), e.right.comparisons()...)
}

type filterParser struct {
	toks []string
	pos  int
}

func parseFilter(s string) (*expr, error) {
	toks, err := lexFilter(s)
	if err != nil {
		return nil, err
	}
	p := &filterParser{toks: toks}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("unexpected %q", p.toks[p.pos])
	}
	return e, nil
}

func lexFilter(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ':
			i++
		case c == '(' || c == ')':
			toks = append(toks, string(c))
			i++
		case c == '\'':
			var b strings.Builder
			b.WriteByte('\'')
			j := i + 1
			for {
				if j >= len(s) {
					return nil, fmt.Errorf("unterminated string at %d", i)
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						b.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			toks = append(toks, b.String()) // leading ' marks a string
			i = j + 1
		default:
			j := i
			for j < len(s) && (s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9' || s[j] == '_' || s[j] == '-' || s[j] == '.') {
				j++
			}
			if j == i {
				return nil, fmt.Errorf("unexpected character %q at %d", c, i)
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks, nil
}

func (p *filterParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *filterParser) or() (*expr, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.peek() == "or" {
		p.pos++
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &expr{op: "or", left: l, right: r}
	}
	return l, nil
}

func (p *filterParser) and() (*expr, error) {
	l, err := p.prim()
	if err != nil {
		return nil, err
	}
	for p.peek() == "and" {
		p.pos++
		r, err := p.prim()
		if err != nil {
			return nil, err
		}
		l = &expr{op: "and", left: l, right: r}
	}
	return l, nil
}

func (p *filterParser) prim() (*expr, error) {
	if p.peek() == "(" {
		p.pos++
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("missing )")
		}
		p.pos++
		return e, nil
	}
	if p.pos+3 > len(p.toks) {
		return nil, fmt.Errorf("incomplete comparison")
	}
	prop, op, lit := p.toks[p.pos], p.toks[p.pos+1], p.toks[p.pos+2]
	if op != "eq" || strings.HasPrefix(prop, "'") || prop == "(" || prop == ")" || lit == "(" || lit == ")" {
		return nil, fmt.Errorf("bad comparison %s %s %s", prop, op, lit)
	}
	p.pos += 3
	e := &expr{op: "eq", c: cmp{prop: prop, lit: lit}}
	if strings.HasPrefix(lit, "'") {
		e.c.lit, e.quoted = lit[1:], true
	}
	return e, nil
}

// --- sample environment -----------------------------------------------

const (
	buRetail    = "b0000000-0000-0000-0000-000000000001"
	buWholesale = "b0000000-0000-0000-0000-000000000002"
	teamTier1   = "70000000-0000-0000-0000-000000000001"
	accContoso  = "a0000000-0000-0000-0000-000000000001"
	accFabrikam = "a0000000-0000-0000-0000-000000000002"
	conMaria    = "c0000000-0000-0000-0000-000000000001"
	conYvonne   = "c0000000-0000-0000-0000-000000000002"
	conNancy    = "c0000000-0000-0000-0000-000000000003"
	incPair     = "10000000-0000-0000-0000-000000000001"
	incBattery  = "10000000-0000-0000-0000-000000000002"
	incRefund   = "10000000-0000-0000-0000-000000000003"
	kaPairing   = "ca000000-0000-0000-0000-000000000001"
	kaPairOld   = "ca000000-0000-0000-0000-000000000002"
	kaInternal  = "ca000000-0000-0000-0000-000000000003"
	kaDraft     = "ca000000-0000-0000-0000-000000000004"
)

const (
	fv = "@OData.Community.Display.V1.FormattedValue"
	ln = "@Microsoft.Dynamics.CRM.lookuplogicalname"
)

func owned(row map[string]any, bu, buName, team, teamName string) map[string]any {
	row["_owningbusinessunit_value"], row["_owningbusinessunit_value"+fv], row["_owningbusinessunit_value"+ln] = bu, buName, "businessunit"
	if team != "" {
		row["_owningteam_value"], row["_owningteam_value"+fv], row["_owningteam_value"+ln] = team, teamName, "team"
	} else {
		row["_owningteam_value"] = nil
	}
	return row
}

func sampleTables() map[string][]map[string]any {
	t := map[string][]map[string]any{}
	t["accounts"] = []map[string]any{
		owned(map[string]any{"accountid": accContoso, "name": "Contoso Ltd", "accountnumber": "ACC-000001", "emailaddress1": "support@contoso.com",
			"telephone1": "+1 425 555 0100", "address1_city": "Redmond", "address1_country": "USA",
			"_primarycontactid_value": conMaria, "_primarycontactid_value" + fv: "Maria Campbell", "_primarycontactid_value" + ln: "contact"},
			buRetail, "Retail", teamTier1, "Tier 1"),
		owned(map[string]any{"accountid": accFabrikam, "name": "Fabrikam Inc", "accountnumber": "ACC-000002", "emailaddress1": nil},
			buWholesale, "Wholesale", "", ""),
	}
	t["contacts"] = []map[string]any{
		owned(map[string]any{"contactid": conMaria, "fullname": "Maria Campbell", "emailaddress1": "maria@contoso.com", "telephone1": "555-0101",
			"address1_city": "Seattle", "_parentcustomerid_value": accContoso, "_parentcustomerid_value" + fv: "Contoso Ltd", "_parentcustomerid_value" + ln: "account"},
			buRetail, "Retail", "", ""),
		owned(map[string]any{"contactid": conYvonne, "fullname": "Yvonne McKay", "emailaddress1": "yvonne@fabrikam.com",
			"_parentcustomerid_value": accFabrikam, "_parentcustomerid_value" + fv: "Fabrikam Inc", "_parentcustomerid_value" + ln: "account"},
			buWholesale, "Wholesale", "", ""),
		owned(map[string]any{"contactid": conNancy, "fullname": "Nancy O'Brien", "emailaddress1": "nancy@contoso.com",
			"_parentcustomerid_value": accContoso, "_parentcustomerid_value" + fv: "Contoso Ltd", "_parentcustomerid_value" + ln: "account"},
			buRetail, "Retail", "", ""),
	}
	t["incidents"] = []map[string]any{
		owned(map[string]any{"incidentid": incPair, "title": "Headphones won't pair", "ticketnumber": "CAS-01234-ABCDEF",
			"description": "Pulse headphones do not pair with a second phone.",
			"statecode":   0, "statecode" + fv: "Active", "statuscode": 1, "statuscode" + fv: "In Progress",
			"prioritycode": 1, "prioritycode" + fv: "High", "casetypecode": 2, "casetypecode" + fv: "Problem",
			"createdon": "2024-05-02T09:30:00Z", "createdon" + fv: "5/2/2024 9:30 AM",
			"_customerid_value": accContoso, "_customerid_value" + fv: "Contoso Ltd", "_customerid_value" + ln: "account",
			"_primarycontactid_value": conMaria, "_primarycontactid_value" + fv: "Maria Campbell", "_primarycontactid_value" + ln: "contact"},
			buRetail, "Retail", teamTier1, "Tier 1"),
		owned(map[string]any{"incidentid": incBattery, "title": "Battery drains overnight", "ticketnumber": "CAS-01235-BCDEFG",
			"statecode": 0, "statecode" + fv: "Active", "prioritycode": 2, "prioritycode" + fv: "Normal",
			"_customerid_value": conYvonne, "_customerid_value" + fv: "Yvonne McKay", "_customerid_value" + ln: "contact",
			"_primarycontactid_value": conYvonne, "_primarycontactid_value" + fv: "Yvonne McKay", "_primarycontactid_value" + ln: "contact"},
			buWholesale, "Wholesale", "", ""),
		owned(map[string]any{"incidentid": incRefund, "title": "Refund for O'Brien order", "ticketnumber": "CAS-01236-CDEFGH",
			"statecode": 1, "statecode" + fv: "Resolved", "prioritycode": 3, "prioritycode" + fv: "Low",
			"_customerid_value": conNancy, "_customerid_value" + fv: "Nancy O'Brien", "_customerid_value" + ln: "contact"},
			buWholesale, "Wholesale", "", ""),
	}
	for i := 1; i <= 5; i++ {
		t["annotations"] = append(t["annotations"], owned(map[string]any{
			"annotationid": fmt.Sprintf("a1000000-0000-0000-0000-00000000000%d", i), "subject": fmt.Sprintf("Call %d", i),
			"notetext": fmt.Sprintf("Note %d on the pairing case.", i), "createdon": "2024-05-03T10:00:00Z",
			"_objectid_value": incPair, "_objectid_value" + fv: "Headphones won't pair", "_objectid_value" + ln: "incident"},
			buRetail, "Retail", "", ""))
	}
	// A note with no owner of its own, on Nancy's case (Wholesale BU, Contoso customer).
	note := map[string]any{"annotationid": "a1000000-0000-0000-0000-000000000009", "subject": "Refund approved", "notetext": "Approved by finance.",
		"_objectid_value": incRefund, "_objectid_value" + ln: "incident", "_owningbusinessunit_value": nil, "_owningteam_value": nil}
	t["annotations"] = append(t["annotations"], note)
	t["knowledgearticles"] = []map[string]any{
		{"knowledgearticleid": kaPairing, "articlepublicnumber": "KA-01042", "title": "Pair Pulse headphones with a second phone",
			"description": "Multipoint pairing, step by step.", "keywords": "headphones, bluetooth, pairing",
			"content":    "<h1>Pair Pulse headphones with a second phone</h1><h2>Before you start</h2><p>Charge the headphones.</p><h2>Pairing</h2><p>Hold the power button for 5 seconds until the light flashes blue, then pick Pulse in the phone's Bluetooth list.</p>",
			"isinternal": false, "statecode": 3, "statecode" + fv: "Published", "islatestversion": true},
		{"knowledgearticleid": kaPairOld, "articlepublicnumber": "KA-01042", "title": "Pair Pulse headphones (old)",
			"content": "<p>Old pairing steps.</p>", "isinternal": false, "statecode": 5, "islatestversion": false},
		{"knowledgearticleid": kaInternal, "articlepublicnumber": "KA-01043", "title": "Escalating pairing faults",
			"description": "Internal: when to replace headphones.", "keywords": "pairing, escalation",
			"content": "<p>Replace the headphones when pairing fails after a reset.</p>", "isinternal": true, "statecode": 3, "islatestversion": true},
		{"knowledgearticleid": kaDraft, "articlepublicnumber": "KA-01044", "title": "Draft pairing tips", "content": "<p>pairing draft</p>",
			"isinternal": false, "statecode": 0, "islatestversion": true},
	}
	return t
}

// sampleProps lists the properties each table has (as in Dataverse;
// selecting any other is a 400).
func sampleProps() map[string]map[string]bool {
	set := func(cols ...string) map[string]bool {
		m := map[string]bool{}
		for _, c := range cols {
			m[c] = true
		}
		return m
	}
	owner := []string{"_owningbusinessunit_value", "_owningteam_value", "_owninguser_value", "_ownerid_value", "createdon", "modifiedon", "statecode", "statuscode"}
	return map[string]map[string]bool{
		"incidents": set(append(owner, "incidentid", "title", "ticketnumber", "description", "prioritycode", "casetypecode",
			"_customerid_value", "_primarycontactid_value", "_parentcaseid_value", "_productid_value", "_subjectid_value", "productserialnumber")...),
		"contacts": set(append(owner, "contactid", "fullname", "firstname", "lastname", "emailaddress1", "emailaddress2", "emailaddress3",
			"telephone1", "mobilephone", "address1_city", "_parentcustomerid_value")...),
		"accounts": set(append(owner, "accountid", "name", "accountnumber", "emailaddress1", "telephone1", "address1_city", "address1_country",
			"_primarycontactid_value", "_parentaccountid_value")...),
		"annotations": set(append(owner, "annotationid", "subject", "notetext", "_objectid_value", "objecttypecode", "filename", "isdocument")...),
		"knowledgearticles": set(append(owner, "knowledgearticleid", "articlepublicnumber", "title", "description", "keywords", "content",
			"isinternal", "islatestversion", "_languagelocaleid_value", "_parentarticlecontentid_value")...),
	}
}

// provisionDV provisions a Dataverse module against f, as Caddy does,
// with mutate applied to the config first.
func provisionDV(t testing.TB, f *fakeDataverse, mutate func(*Dataverse)) *Dataverse {
	t.Helper()
	d, err := tryProvisionDV(t, f, mutate)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func tryProvisionDV(t testing.TB, f *fakeDataverse, mutate func(*Dataverse)) (*Dataverse, error) {
	t.Helper()
	d := &Dataverse{URL: f.URL, TenantID: testTenant, ClientID: testClient, ClientSecret: "{env." + secretEnv + "}", TokenURL: f.tokenURL()}
	if mutate != nil {
		mutate(d)
	}
	// The JSON round trip proves the config is what Caddy would load.
	js, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	d = new(Dataverse)
	if err := json.Unmarshal(js, d); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := d.Provision(ctx); err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { d.Cleanup() })
	return d, nil
}
