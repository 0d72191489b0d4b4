package dvfake

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Credentials the fake's token endpoint accepts.
const (
	Tenant   = "contoso-tenant"
	ClientID = "client-app-id"
	Secret   = "s3cret-Value-never-shown"
)

// Server is one Dataverse environment with one table (EntitySet, primary
// key KeyColumn, the given columns) and its token endpoint.
type Server struct {
	t         testing.TB
	srv       *httptest.Server
	URL       string
	EntitySet string
	KeyColumn string
	// AggregateLimit: a $apply over more rows answers Dataverse's
	// AggregateQueryRecordLimit error. Default 50000.
	AggregateLimit int

	mu       sync.Mutex
	cols     map[string]bool
	rows     []map[string]any
	token    string
	throttle int      // Web API requests still to answer 429
	requests []string // method and decoded URL of each Web API request
}

// RotateToken makes the token handed out so far invalid (401), as when
// it expires early; the token endpoint hands out the new one.
func (f *Server) RotateToken() {
	f.mu.Lock()
	f.token = "tok-" + randomGUID()
	f.mu.Unlock()
}

// Throttle answers the next n Web API requests with Dataverse's 429.
func (f *Server) Throttle(n int) {
	f.mu.Lock()
	f.throttle = n
	f.mu.Unlock()
}

// New starts the fake for table entitySet (e.g. "gg_audits", key
// "gg_auditid") with the columns listed. Requests it cannot evaluate
// fail the test.
func New(t testing.TB, entitySet, keyColumn string, columns []string) *Server {
	f := &Server{t: t, EntitySet: entitySet, KeyColumn: keyColumn, AggregateLimit: 50000, cols: map[string]bool{keyColumn: true}, token: "tok-" + randomGUID()}
	for _, c := range columns {
		f.cols[c] = true
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	t.Cleanup(f.srv.Close)
	return f
}

// TokenURL is the fake's Entra ID token endpoint.
func (f *Server) TokenURL() string { return f.URL + "/" + Tenant + "/oauth2/v2.0/token" }

// Rows returns a copy of the table.
func (f *Server) Rows() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]map[string]any, len(f.rows))
	for i, r := range f.rows {
		c := make(map[string]any, len(r))
		for k, v := range r {
			c[k] = v
		}
		out[i] = c
	}
	return out
}

// Requests lists the Web API requests so far ("GET /api/...?...").
func (f *Server) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func randomGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	_, _ = w.Write(b)
}

// bad answers a request the fake does not understand: Dataverse would
// answer 400 too, and the test fails, since the code under test sent it.
func (f *Server) bad(w http.ResponseWriter, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	f.t.Errorf("fake dataverse: %s", msg)
	writeError(w, http.StatusBadRequest, "0x80060888", msg)
}

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/"+Tenant+"/oauth2/v2.0/token" {
		f.serveToken(w, r)
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	tok := f.token
	throttled := f.throttle > 0
	if throttled {
		f.throttle--
	}
	f.mu.Unlock()
	if throttled {
		w.Header().Set("Retry-After", "7")
		writeError(w, http.StatusTooManyRequests, "0x80072322", "Number of requests exceeded the limit of 6000 over time window of 300 seconds.")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+tok {
		writeError(w, http.StatusUnauthorized, "0x80072560", "The user is not a member of the organization.")
		return
	}
	if r.Header.Get("OData-Version") != "4.0" || r.Header.Get("OData-MaxVersion") != "4.0" || r.Header.Get("Accept") != "application/json" {
		f.bad(w, "missing OData headers")
		return
	}
	prefix := "/api/data/v9.2/" + f.EntitySet
	switch {
	case r.Method == http.MethodGet && r.URL.Path == prefix:
		f.serveQuery(w, r)
	case r.Method == http.MethodPost && r.URL.Path == prefix:
		f.serveCreate(w, r)
	case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, prefix+"(") && strings.HasSuffix(r.URL.Path, ")"):
		f.serveUpdate(w, r, strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, prefix+"("), ")"))
	default:
		writeError(w, http.StatusNotFound, "0x80060888", "Resource not found for the segment '"+r.URL.Path+"'.")
	}
}

func (f *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "client_credentials" ||
		r.PostForm.Get("client_id") != ClientID || r.PostForm.Get("client_secret") != Secret {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`))
		return
	}
	f.mu.Lock()
	tok := f.token
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":3599,"access_token":%q}`, tok)
}

// body decodes a row body, with numbers as float64; unknown columns are
// Dataverse's 400.
func (f *Server) body(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	b, _ := io.ReadAll(r.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		writeError(w, http.StatusBadRequest, "0x80048d19", "Error identified in Payload provided by the user for Entity :'"+f.EntitySet+"'")
		return nil, false
	}
	for k := range m {
		if !f.cols[k] {
			writeError(w, http.StatusBadRequest, "0x80048d19", "Invalid property '"+k+"' was found in entity 'Microsoft.Dynamics.CRM."+strings.TrimSuffix(f.EntitySet, "s")+"'.")
			return nil, false
		}
	}
	return m, true
}

func (f *Server) serveCreate(w http.ResponseWriter, r *http.Request) {
	m, ok := f.body(w, r)
	if !ok {
		return
	}
	key := randomGUID()
	m[f.KeyColumn] = key
	f.Insert(m)
	w.Header().Set("OData-EntityId", f.URL+"/api/data/v9.2/"+f.EntitySet+"("+key+")")
	w.WriteHeader(http.StatusNoContent)
}

// Insert adds a row as is (its key column set if missing).
func (f *Server) Insert(m map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m[f.KeyColumn] == nil {
		m[f.KeyColumn] = randomGUID()
	}
	for k := range m {
		if !f.cols[k] {
			f.t.Errorf("fake dataverse: insert: unknown column %q", k)
		}
	}
	f.rows = append(f.rows, m)
}

func (f *Server) serveUpdate(w http.ResponseWriter, r *http.Request, key string) {
	if r.Header.Get("If-Match") != "*" {
		f.bad(w, "PATCH without If-Match: * would create a missing row")
		return
	}
	m, ok := f.body(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, row := range f.rows {
		if row[f.KeyColumn] == key {
			for k, v := range m {
				if v == nil {
					delete(row, k)
				} else {
					row[k] = v
				}
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	writeError(w, http.StatusNotFound, "0x80040217", f.EntitySet+" With Id = "+key+" Does Not Exist")
}

var knownOptions = map[string]bool{"$select": true, "$filter": true, "$orderby": true, "$top": true, "$apply": true, "$skiptoken": true}

func (f *Server) serveQuery(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if !knownOptions[k] {
			f.bad(w, "query option %q not supported", k)
			return
		}
	}
	f.mu.Lock()
	rows := append([]map[string]any(nil), f.rows...)
	f.mu.Unlock()
	var out []map[string]any
	if a := q.Get("$apply"); a != "" {
		if q.Has("$filter") || q.Has("$select") || q.Has("$orderby") || q.Has("$top") {
			f.bad(w, "$apply mixed with other options")
			return
		}
		ap, err := ParseApply(a)
		if err != nil {
			f.bad(w, "$apply %q: %v", a, err)
			return
		}
		if !f.checkCols(w, ap.GroupBy) {
			return
		}
		for _, g := range ap.Aggs {
			if g.Col != "" && !f.checkCols(w, []string{g.Col}) {
				return
			}
		}
		matched := filter(rows, ap.Filter)
		if len(matched) > f.AggregateLimit {
			writeError(w, http.StatusBadRequest, "0x8004E023", "AggregateQueryRecordLimit exceeded. Cannot perform this operation.")
			return
		}
		out = matched
		if len(ap.GroupBy) > 0 {
			out = groupRows(matched, ap)
		}
	} else {
		var e Expr
		if s := q.Get("$filter"); s != "" {
			var err error
			if e, err = ParseFilter(s); err != nil {
				f.bad(w, "$filter %q: %v", s, err)
				return
			}
		}
		out = filter(rows, e)
		if s := q.Get("$orderby"); s != "" {
			if !f.order(w, out, s) {
				return
			}
		}
		if s := q.Get("$top"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				f.bad(w, "$top %q", s)
				return
			}
			out = out[:min(n, len(out))]
		}
		if s := q.Get("$select"); s != "" {
			cols := strings.Split(s, ",")
			if !f.checkCols(w, cols) {
				return
			}
			for i, row := range out {
				sel := map[string]any{f.KeyColumn: row[f.KeyColumn]} // the key always comes
				for _, c := range cols {
					if v, ok := row[c]; ok {
						sel[c] = v
					}
				}
				out[i] = sel
			}
		}
	}
	// Paging by Prefer: odata.maxpagesize, with a $skiptoken (an offset
	// here; a paging cookie in Dataverse).
	size := 5000
	if p := r.Header.Get("Prefer"); strings.HasPrefix(p, "odata.maxpagesize=") {
		if q.Has("$top") {
			f.bad(w, "$top with odata.maxpagesize")
			return
		}
		n, err := strconv.Atoi(strings.TrimPrefix(p, "odata.maxpagesize="))
		if err != nil || n < 1 || n > 5000 {
			f.bad(w, "Prefer %q", p)
			return
		}
		size = n
	}
	skip := 0
	if s := q.Get("$skiptoken"); s != "" {
		skip, _ = strconv.Atoi(s)
	}
	resp := map[string]any{"@odata.context": f.URL + "/api/data/v9.2/$metadata#" + f.EntitySet}
	page := out[min(skip, len(out)):]
	if len(page) > size {
		page = page[:size]
		q.Set("$skiptoken", strconv.Itoa(skip+size))
		resp["@odata.nextLink"] = f.URL + r.URL.Path + "?" + q.Encode()
	}
	if page == nil {
		page = []map[string]any{}
	}
	resp["value"] = page
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.Header().Set("OData-Version", "4.0")
	_ = json.NewEncoder(w).Encode(resp)
}

func (f *Server) checkCols(w http.ResponseWriter, cols []string) bool {
	for _, c := range cols {
		if !f.cols[c] {
			writeError(w, http.StatusBadRequest, "0x80060888", "Could not find a property named '"+c+"' on type 'Microsoft.Dynamics.CRM."+strings.TrimSuffix(f.EntitySet, "s")+"'.")
			f.t.Errorf("fake dataverse: unknown column %q", c)
			return false
		}
	}
	return true
}

func (f *Server) order(w http.ResponseWriter, rows []map[string]any, spec string) bool {
	type key struct {
		col  string
		desc bool
	}
	var keys []key
	for _, part := range strings.Split(spec, ",") {
		fs := strings.Fields(part)
		if len(fs) == 0 || len(fs) > 2 || !isIdent(fs[0]) || (len(fs) == 2 && fs[1] != "asc" && fs[1] != "desc") {
			f.bad(w, "$orderby %q", spec)
			return false
		}
		if !f.checkCols(w, fs[:1]) {
			return false
		}
		keys = append(keys, key{fs[0], len(fs) == 2 && fs[1] == "desc"})
	}
	sort.SliceStable(rows, func(i, j int) bool {
		for _, k := range keys {
			c := compare(rows[i][k.col], rows[j][k.col])
			if c == 0 {
				continue
			}
			if k.desc {
				return c > 0
			}
			return c < 0
		}
		return false
	})
	return true
}

// compare orders values, nulls first.
func compare(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	if x, ok := a.(float64); ok {
		if y, ok := b.(float64); ok {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

func filter(rows []map[string]any, e Expr) []map[string]any {
	if e == nil {
		return rows
	}
	var out []map[string]any
	for _, r := range rows {
		if e.Eval(r) {
			out = append(out, r)
		}
	}
	return out
}

// groupRows evaluates groupby and aggregate. Nulls are left out of sum
// and average, as in Dataverse; a group's null value is left out of its
// row.
func groupRows(rows []map[string]any, a *Apply) []map[string]any {
	type acc struct {
		row   map[string]any
		n     int
		sum   map[string]float64
		count map[string]int
		min   map[string]float64
		max   map[string]float64
	}
	groups := map[string]*acc{}
	var order []string
	for _, r := range rows {
		var kb strings.Builder
		for _, c := range a.GroupBy {
			fmt.Fprintf(&kb, "%v\x00", r[c])
		}
		k := kb.String()
		g := groups[k]
		if g == nil {
			g = &acc{row: map[string]any{}, sum: map[string]float64{}, count: map[string]int{}, min: map[string]float64{}, max: map[string]float64{}}
			for _, c := range a.GroupBy {
				if v, ok := r[c]; ok && v != nil {
					g.row[c] = v
				}
			}
			groups[k] = g
			order = append(order, k)
		}
		g.n++
		for _, ag := range a.Aggs {
			if ag.Col == "" {
				continue
			}
			x, ok := r[ag.Col].(float64)
			if !ok {
				continue
			}
			if g.count[ag.Alias] == 0 || x < g.min[ag.Alias] {
				g.min[ag.Alias] = x
			}
			if g.count[ag.Alias] == 0 || x > g.max[ag.Alias] {
				g.max[ag.Alias] = x
			}
			g.sum[ag.Alias] += x
			g.count[ag.Alias]++
		}
	}
	sort.Strings(order)
	out := make([]map[string]any, 0, len(order))
	for _, k := range order {
		g := groups[k]
		for _, ag := range a.Aggs {
			switch ag.Method {
			case "$count":
				g.row[ag.Alias] = g.n
			case "sum":
				if g.count[ag.Alias] > 0 {
					g.row[ag.Alias] = g.sum[ag.Alias]
				} else {
					g.row[ag.Alias] = nil
				}
			case "average":
				if c := g.count[ag.Alias]; c > 0 {
					g.row[ag.Alias] = g.sum[ag.Alias] / float64(c)
				} else {
					g.row[ag.Alias] = nil
				}
			case "min":
				g.row[ag.Alias] = g.min[ag.Alias]
			case "max":
				g.row[ag.Alias] = g.max[ag.Alias]
			}
		}
		out = append(out, g.row)
	}
	return out
}

// Decode is url.QueryUnescape for test messages.
func Decode(s string) string {
	u, err := url.QueryUnescape(s)
	if err != nil {
		return s
	}
	return u
}
