package post

import (
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/groundgate/groundgate/wire"
)

// Every request writes an audit record; encoding/json walked the struct
// by reflection for each. AppendJSON writes the same JSON object (the
// same members, omitted when encoding/json's omitempty omits them) by
// hand. Strings are escaped as encoding/json escapes them, except that
// <, > and & are not turned into \u escapes: the decoded values are
// identical.

var errBadValue = errors.New("audit record: time or number that JSON cannot hold")

// MarshalJSON encodes the record with AppendJSON, so every sink writes
// the same JSON.
func (in *Interaction) MarshalJSON() ([]byte, error) {
	return in.AppendJSON(nil)
}

// AppendJSON appends the record as one JSON object.
func (in *Interaction) AppendJSON(b []byte) ([]byte, error) {
	if y := in.Time.Year(); y < 0 || y > 9999 {
		return nil, errBadValue
	}
	for _, f := range [...]float64{in.Cost, in.LatencyMS} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, errBadValue
		}
	}
	b = append(b, `{"request_id":`...)
	b = wire.AppendString(b, in.RequestID)
	b = optString(b, "response_id", in.ResponseID)
	b = append(b, `,"time":"`...)
	b = in.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = optString(b, "principal", in.Principal)
	b = optString(b, "team", in.Team)
	b = optBool(b, "dry_run", in.DryRun)
	b = optString(b, "on_behalf_of", in.OnBehalfOf)
	b = optString(b, "policy", in.Policy)
	b = optString(b, "policy_version", in.PolicyVersion)
	b = optString(b, "feature", in.Feature)
	b = optString(b, "route", in.Route)
	b = optString(b, "model", in.Model)
	b = optString(b, "upstream", in.Upstream)
	b = optBool(b, "stream", in.Stream)
	if len(in.Records) > 0 {
		b = append(b, `,"records":[`...)
		for i, r := range in.Records {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"entity":`...)
			b = wire.AppendString(b, r.Entity)
			b = append(b, `,"id":`...)
			b = wire.AppendString(b, r.ID)
			b = optString(b, "number", r.Number)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(in.Articles) > 0 {
		b = append(b, `,"articles":[`...)
		for i, a := range in.Articles {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"ref":`...)
			b = wire.AppendString(b, a.Ref)
			b = append(b, `,"id":`...)
			b = wire.AppendString(b, a.ID)
			b = optString(b, "number", a.Number)
			b = optString(b, "chunk_id", a.ChunkID)
			b = append(b, `,"cited":`...)
			b = strconv.AppendBool(b, a.Cited)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(in.DeniedRecords) > 0 {
		b = append(b, `,"denied_records":[`...)
		for i, s := range in.DeniedRecords {
			if i > 0 {
				b = append(b, ',')
			}
			b = wire.AppendString(b, s)
		}
		b = append(b, ']')
	}
	b = append(b, `,"prompt_tokens":`...)
	b = strconv.AppendInt(b, in.PromptTokens, 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, in.CompletionTokens, 10)
	b = append(b, `,"cost":`...)
	b = appendFloat(b, in.Cost)
	if q := in.QueryRewrite; q != nil {
		b = append(b, `,"query_rewrite":{"query":`...)
		b = wire.AppendString(b, q.Query)
		b = optString(b, "model", q.Model)
		b = append(b, `,"prompt_tokens":`...)
		b = strconv.AppendInt(b, int64(q.PromptTokens), 10)
		b = append(b, `,"completion_tokens":`...)
		b = strconv.AppendInt(b, int64(q.CompletionTokens), 10)
		b = append(b, '}')
	}
	if len(in.FilterActions) > 0 {
		b = append(b, `,"filter_actions":[`...)
		for i, f := range in.FilterActions {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"filter":`...)
			b = wire.AppendString(b, f.Filter)
			b = optString(b, "category", f.Category)
			b = append(b, `,"stage":`...)
			b = wire.AppendString(b, f.Stage)
			b = append(b, `,"action":`...)
			b = wire.AppendString(b, f.Action)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if c := in.Citations; c != nil {
		b = append(b, `,"citations":{"cited":`...)
		b = strconv.AppendInt(b, int64(c.Cited), 10)
		b = optInt(b, "invented", c.Invented)
		b = optInt(b, "duplicates", c.Duplicates)
		b = optBool(b, "ungrounded", c.Ungrounded)
		b = optBool(b, "refused", c.Refused)
		b = append(b, '}')
	}
	b = append(b, `,"latency_ms":`...)
	b = appendFloat(b, in.LatencyMS)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(in.Status), 10)
	b = optString(b, "error", in.Error)
	b = optBool(b, "cache_hit", in.CacheHit)
	b = optBool(b, "incomplete", in.Incomplete)
	b = optString(b, "incomplete_reason", in.IncompleteReason)
	return append(b, '}'), nil
}

func optString(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return wire.AppendString(b, v)
}

func optBool(b []byte, name string, v bool) []byte {
	if !v {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	return append(b, `":true`...)
}

func optInt(b []byte, name string, v int) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, int64(v), 10)
}

// appendFloat writes f as encoding/json does: shortest form, exponent
// only for very small or very large magnitudes.
func appendFloat(b []byte, f float64) []byte {
	fmt := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		fmt = 'e'
	}
	b = strconv.AppendFloat(b, f, fmt, -1, 64)
	if fmt == 'e' { // e-09 → e-9, as encoding/json writes it
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
