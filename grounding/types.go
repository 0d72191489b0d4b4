package grounding

import (
	"context"
	"strings"

	"github.com/groundgate/groundgate/policies"
)

// Dataverse logical names of the entities grounding knows.
const (
	EntityIncident         = "incident"         // a case
	EntityContact          = "contact"          // a person
	EntityAccount          = "account"          // a customer organisation or household
	EntityKnowledgeArticle = "knowledgearticle" // a knowledge-base article
	EntityAnnotation       = "annotation"       // a note attached to a record (include_notes)
)

// KnownEntities lists the entities a policy may name, in a stable order.
var KnownEntities = []string{EntityIncident, EntityContact, EntityAccount, EntityKnowledgeArticle, EntityAnnotation}

func knownEntity(e string) bool {
	for _, k := range KnownEntities {
		if k == e {
			return true
		}
	}
	return false
}

// RecordKey names the records a request is about: every record of Entity
// whose column Field equals Value (compared case-insensitively). A key for
// incident.ticketnumber finds one case; a key for annotation.objectid finds
// every note of a record.
type RecordKey struct {
	Entity string `json:"entity"` // Dataverse logical name, e.g. "incident"
	Field  string `json:"field"`  // column, e.g. "ticketnumber"; "<entity>id" for the primary key
	Value  string `json:"value"`
	// From says where the key was found, for the audit log: e.g.
	// `header x-groundgate-case`, `metadata case_number`, `user`,
	// `message`, or `related incident <id>`.
	From string `json:"from,omitempty"`
}

// String returns entity.field=value.
func (k RecordKey) String() string { return k.Entity + "." + k.Field + "=" + k.Value }

func (k RecordKey) dedupeKey() string {
	return k.Entity + "\x00" + k.Field + "\x00" + strings.ToLower(k.Value)
}

// Owner is what a record's access is decided on: the customer account it
// belongs to and the business unit and team that own it, as Dataverse
// security roles scope records. Sources fill in what they know; an empty
// field matches nothing.
type Owner struct {
	AccountID, AccountNumber         string // the customer account (for a contact: its parent account)
	BusinessUnitID, BusinessUnitName string // owningbusinessunit
	TeamID, TeamName                 string // owningteam
	// Public marks records that are not customer data (knowledge
	// articles): every scope may see them.
	Public bool
}

// Scope is the set of records a principal may see. A record is visible
// when its owner matches any listed account (by id or account number),
// business unit (by id or name) or team (by id or name); comparisons
// ignore case.
//
// A nil *Scope means unrestricted: the principal sees every record (use it
// for trusted back-office keys only). A non-nil empty Scope sees no
// customer record at all, only public ones (knowledge articles).
type Scope struct {
	Accounts      []string `json:"accounts,omitempty"`
	BusinessUnits []string `json:"business_units,omitempty"`
	Teams         []string `json:"teams,omitempty"`
}

// Allows reports whether a principal with this scope may see a record
// owned by o.
func (s *Scope) Allows(o Owner) bool {
	if s == nil || o.Public {
		return true
	}
	return anyFold(s.Accounts, o.AccountID, o.AccountNumber) ||
		anyFold(s.BusinessUnits, o.BusinessUnitID, o.BusinessUnitName) ||
		anyFold(s.Teams, o.TeamID, o.TeamName)
}

func anyFold(list []string, a, b string) bool {
	for _, x := range list {
		if x == "" {
			continue
		}
		if (a != "" && strings.EqualFold(x, a)) || (b != "" && strings.EqualFold(x, b)) {
			return true
		}
	}
	return false
}

// Record is a CRM record found for a request.
type Record struct {
	Entity string // logical name, e.g. "incident"
	ID     string // primary key (GUID in Dataverse)
	Number string // ticketnumber, accountnumber, articlepublicnumber; "" when the entity has none
	Title  string // title, fullname, name or subject
	// Fields are the columns that may reach the model, as display text
	// (picklists and lookups by their formatted values), keyed by column
	// name (lookups without the _…_value wrapping, e.g. "customerid").
	Fields map[string]string
	// Owner decides who may see the record. Never sent to the model.
	Owner Owner
	// Related are keys of records this one points to (a case's customer
	// and primary contact, a contact's parent account). Resolve follows
	// them for the entities a policy asks for.
	Related []RecordKey
}

// Policy converts the record to what meta prompt templates render.
func (r *Record) Policy() policies.Record {
	return policies.Record{Entity: r.Entity, ID: r.ID, Number: r.Number, Title: r.Title, Fields: r.Fields}
}

// Denied is a record a request asked for that the principal's scope does
// not allow. It carries no content of the record, only what an audit entry
// needs; the caller logs it. The record itself never reaches the model.
type Denied struct {
	Key    RecordKey `json:"key"`
	Entity string    `json:"entity"`
	ID     string    `json:"id"`
	Reason string    `json:"reason"`
}

func (d Denied) String() string {
	return d.Entity + " " + d.ID + " (asked for by " + d.Key.String() + " from " + d.Key.From + "): " + d.Reason
}

// ReasonOutOfScope is Denied.Reason for a record outside the scope.
const ReasonOutOfScope = "outside the principal's record scope"

// RecordSource finds records by key. Implementations must return only
// records that scope allows (scope.Allows(owner)) and report every other
// match as Denied. A key that matches nothing is simply absent from both
// results. The error is for failures of the source itself (unreachable,
// malformed data), not for missing or denied records.
type RecordSource interface {
	Lookup(ctx context.Context, keys []RecordKey, scope *Scope) ([]Record, []Denied, error)
}

// Article is a knowledge article as indexes see it.
type Article struct {
	ID          string   `json:"id"`     // knowledgearticleid (or the number when there is none)
	Number      string   `json:"number"` // articlepublicnumber, e.g. KA-01234
	Title       string   `json:"title"`
	URL         string   `json:"url,omitempty"`
	Description string   `json:"description,omitempty"`
	Keywords    []string `json:"keywords,omitempty"`
	// Content is plain text; lines starting with "#" are headings (HTML
	// content is converted on load, see HTMLToText).
	Content  string `json:"content"`
	Internal bool   `json:"internal,omitempty"` // isinternal
	// Entity is what the article is about (a product, a hotel, a
	// restaurant): indexes match the entity names a conversation
	// mentions against it, and policies filter or boost by it.
	Entity string `json:"entity,omitempty"`
	// Metadata are further fields policies filter or boost by (product,
	// category, domain …), compared case-insensitively.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// ArticleSource lists knowledge articles for an index to ingest (for
// example the knowledgearticle table of a records source).
type ArticleSource interface {
	Articles(ctx context.Context) ([]Article, error)
}

// Chunk is a piece of an article small enough to put in a prompt: one or
// more sections (a heading and its paragraphs), or part of a long one.
type Chunk struct {
	ArticleID string `json:"article_id"`
	Number    string `json:"number"`
	Title     string `json:"title"`
	URL       string `json:"url,omitempty"`
	ChunkID   string `json:"chunk_id"` // "0", "1", … within the article
	Heading   string `json:"heading,omitempty"`
	Text      string `json:"text"`
	Tokens    int    `json:"tokens"` // tokens of Text, counted when chunking
	Internal  bool   `json:"internal,omitempty"`
	// Entity and Metadata are the article's (shared, not copied: never
	// modify them).
	Entity   string            `json:"entity,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// TextHash is TextHash(Text) when the source computed it ahead (an
	// index does, once per chunk); 0 means not computed.
	TextHash uint64 `json:"-"`
}

// Hit is a chunk an index returned for a query, best first.
type Hit struct {
	Chunk
	Score float64 // the ranking score (BM25, or fused reciprocal-rank score)
	// Lexical and Semantic are the 1-based ranks of the chunk in the BM25
	// and vector rankings (0: not in that ranking).
	Lexical, Semantic int
}

// Filter restricts a search.
type Filter struct {
	// ExcludeInternal drops articles marked internal (isinternal).
	ExcludeInternal bool
	// PerArticle caps how many chunks of one article are returned
	// (0: no cap). With 1, the k hits are k different articles.
	PerArticle int
	// Numbers, when not empty, restricts the search to these articles
	// (articlepublicnumber, any case).
	Numbers []string
}

// Index searches knowledge articles.
type Index interface {
	// Search returns at most k chunks relevant to query, best first.
	Search(ctx context.Context, query string, k int, f Filter) ([]Hit, error)
}
