package caddymodule

import (
	"strconv"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/wire"
)

// outputChain is the policy's chain when it filters answers.
func (ex *exchange) outputChain() *filters.Chain {
	if ex.rt == nil || ex.rt.filters == nil || !ex.rt.filters.Active(filters.StageOutput) {
		return nil
	}
	return ex.rt.filters
}

// filterAnswer applies output filters to a whole (non-streamed) answer:
// a blocked choice loses its content and ends with finish_reason
// content_filter; redactions rewrite the content; the filters' verdicts
// join Azure's content_filter_results of each choice.
func (ex *exchange) filterAnswer(body []byte) []byte {
	chain := ex.outputChain()
	if chain == nil {
		return body
	}
	defer ex.step("groundgate.filter.output").end(nil)
	n := int(gjson.GetBytes(body, "choices.#").Int())
	for i := 0; i < n; i++ {
		base := "choices." + strconv.Itoa(i)
		c := gjson.GetBytes(body, base+".message.content")
		if c.Type != gjson.String {
			continue
		}
		res := chain.Run(c.Str, filters.StageOutput)
		ex.countFindings(res.Findings, "output")
		switch {
		case res.Blocked:
			body, _ = sjson.DeleteBytes(body, base+".message.content")
			body, _ = sjson.SetBytes(body, base+".finish_reason", filters.FinishReasonContentFilter)
		case res.Redacted:
			body, _ = sjson.SetBytes(body, base+".message.content", res.Text)
		}
		body = mergeAnnotations(body, base+".content_filter_results", chain.Annotations(res.Findings, filters.StageOutput))
	}
	return body
}

// mergeAnnotations adds each member of ann to the object at path. A
// member Azure already reported there (hate, jailbreak...) is combined
// with ours, the stricter verdict winning, so neither side's is lost. The
// object is rebuilt once and set with one patch of the body.
func mergeAnnotations(body []byte, path string, ann []byte) []byte {
	ours := gjson.ParseBytes(ann)
	if !ours.IsObject() {
		return body
	}
	existing := gjson.GetBytes(body, path)
	out := make([]byte, 0, len(existing.Raw)+len(ann)+2)
	out = append(out, '{')
	seen := make(map[string]bool, 8)
	if existing.IsObject() {
		existing.ForEach(func(k, v gjson.Result) bool {
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(out, k.Raw...)
			out = append(out, ':')
			if o := ours.Get(gjson.Escape(k.Str)); o.Exists() && v.IsObject() {
				out = append(out, combineAnnotation(v, o)...)
				seen[k.Str] = true
			} else if o.Exists() {
				out = append(out, o.Raw...)
				seen[k.Str] = true
			} else {
				out = append(out, v.Raw...)
			}
			return true
		})
	}
	ours.ForEach(func(k, v gjson.Result) bool {
		if seen[k.Str] {
			return true
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, k.Raw...)
		out = append(out, ':')
		out = append(out, v.Raw...)
		return true
	})
	out = append(out, '}')
	body, _ = sjson.SetRawBytes(body, path, out)
	return body
}

// severityRank orders Azure's severity names.
var severityRank = map[string]int{"safe": 0, "low": 1, "medium": 2, "high": 3}

// combineAnnotation merges two content_filter_results members of one key:
// filtered and detected are or-ed, the higher severity is kept and
// custom_blocklists details are joined.
func combineAnnotation(theirs, ours gjson.Result) []byte {
	out := []byte(theirs.Raw)
	for _, f := range [...]string{"filtered", "detected"} {
		if ours.Get(f).Bool() && !theirs.Get(f).Bool() {
			out, _ = sjson.SetBytes(out, f, true)
		}
	}
	if o := ours.Get("severity"); o.Exists() && severityRank[o.Str] > severityRank[theirs.Get("severity").Str] {
		out, _ = sjson.SetBytes(out, "severity", o.Str)
	}
	for _, d := range ours.Get("details").Array() {
		out, _ = sjson.SetRawBytes(out, "details.-1", []byte(d.Raw))
	}
	return out
}

func (ex *exchange) countFindings(fs []filters.Finding, stage string) {
	for _, f := range fs {
		filterFindings.WithLabelValues(ex.policy.Name, f.Filter, f.Category, stage, f.Action.String()).Inc()
	}
}

// streamFilter holds back a bounded window of each choice's streamed text
// so a match split across chunks is caught; nothing unscanned leaves.
type streamFilter struct {
	chain    *filters.Chain
	scanners map[int64]*filters.StreamScanner
	closed   map[int64]bool
}

func newStreamFilter(chain *filters.Chain) *streamFilter {
	return &streamFilter{chain: chain, scanners: map[int64]*filters.StreamScanner{}, closed: map[int64]bool{}}
}

func (sf *streamFilter) scanner(i int64) *filters.StreamScanner {
	s, ok := sf.scanners[i]
	if !ok {
		s = sf.chain.NewStreamScanner(filters.StageOutput)
		sf.scanners[i] = s
	}
	return s
}

// chunk rewrites one chunk's delta contents with the scanned text. It
// returns the new data and, when a filter blocks, the index of the
// blocked choice (-1 otherwise). A chunk carrying a finish_reason first
// releases what its choice still holds.
func (sf *streamFilter) chunk(ex *exchange, data []byte) ([]byte, int64) {
	out := data
	blocked := int64(-1)
	gjson.GetBytes(data, "choices").ForEach(func(key, ch gjson.Result) bool {
		idx := ch.Get("index").Int()
		path := "choices." + key.String() + ".delta.content"
		c := ch.Get("delta.content")
		if sf.closed[idx] {
			return true
		}
		emit, verdict := "", filters.Pass
		if c.Type == gjson.String {
			emit, verdict = sf.scanner(idx).Push(c.Str)
		}
		if verdict == filters.Pass && ch.Get("finish_reason").Type == gjson.String {
			var rest string
			rest, verdict = sf.scanner(idx).Close()
			emit += rest
			sf.closed[idx] = true
		}
		if verdict == filters.Blocked {
			ex.countFindings(sf.scanner(idx).Findings(), "output")
			blocked = idx
			return false
		}
		if c.Type == gjson.String || emit != "" {
			out, _ = sjson.SetBytes(out, path, emit)
		}
		return true
	})
	return out, blocked
}

// finish releases what is still held at the end of the stream, as one
// more chunk; blocked reports a block found in it.
func (sf *streamFilter) finish(ex *exchange) ([]byte, int64) {
	for idx, s := range sf.scanners {
		if sf.closed[idx] {
			continue
		}
		sf.closed[idx] = true
		rest, verdict := s.Close()
		if verdict == filters.Blocked {
			ex.countFindings(s.Findings(), "output")
			return nil, idx
		}
		if rest != "" {
			b := []byte(`{"id":"","object":"chat.completion.chunk","created":0,"model":"","choices":[{"index":` + strconv.FormatInt(idx, 10) + `,"delta":{"content":`)
			b = wire.AppendString(b, rest)
			return append(b, `},"finish_reason":null}]}`...), -1
		}
	}
	return nil, -1
}

// blockedChunk ends a choice the way Azure ends a filtered stream: an
// annotation chunk with finish_reason content_filter.
func (sf *streamFilter) blockedChunk(idx int64) []byte {
	s := sf.scanners[idx]
	b := []byte(`{"id":"","object":"","created":0,"model":"","choices":[{"index":` + strconv.FormatInt(idx, 10) + `,"finish_reason":"content_filter","content_filter_results":`)
	ann := []byte("{}")
	if s != nil {
		ann = sf.chain.Annotations(s.Findings(), filters.StageOutput)
	}
	b = append(b, ann...)
	return append(b, `}],"usage":null}`...)
}
