package caddymodule

import (
	"slices"
	"strconv"
	"unsafe"

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
// each choice's content and the arguments of its tool (or function)
// calls. A blocked choice loses its content and tool calls and ends with
// finish_reason content_filter; redactions rewrite the text; the
// filters' verdicts join Azure's content_filter_results of each choice.
func (ex *exchange) filterAnswer(body []byte) []byte {
	chain := ex.outputChain()
	if chain == nil {
		return body
	}
	defer ex.step("groundgate.filter.output").end(nil)
	n := int(gjson.GetBytes(body, "choices.#").Int())
	for i := 0; i < n; i++ {
		base := "choices." + strconv.Itoa(i)
		var findings []filters.Finding
		blocked := false
		for _, t := range answerTexts(gjson.GetBytes(body, base+".message"), base+".message") {
			res := chain.Run(t.text, filters.StageOutput)
			ex.countFindings(res.Findings, "output")
			findings = append(findings, res.Findings...)
			if res.Redacted && t.json && gjson.Valid(t.text) && !gjson.Valid(res.Text) {
				res.Blocked = true // a label cannot stand for a bare JSON value: fail closed
			}
			if res.Blocked {
				blocked = true
				break
			}
			if res.Redacted {
				body, _ = sjson.SetBytes(body, t.path, res.Text)
			}
		}
		if blocked {
			for _, m := range [...]string{".message.content", ".message.refusal", ".message.tool_calls", ".message.function_call"} {
				body, _ = sjson.DeleteBytes(body, base+m)
			}
			body, _ = sjson.SetBytes(body, base+".finish_reason", filters.FinishReasonContentFilter)
		}
		if findings != nil || gjson.GetBytes(body, base+".message.content").Type == gjson.String {
			body = mergeAnnotations(body, base+".content_filter_results", chain.Annotations(findings, filters.StageOutput))
		}
	}
	return body
}

// answerText is one text of an answer, its sjson path, and whether it
// must stay valid JSON (tool-call arguments).
type answerText struct {
	path, text string
	json       bool
}

// answerTexts lists what the output filters scan in a message: content,
// refusal, and tool and function call arguments.
func answerTexts(msg gjson.Result, base string) []answerText {
	var out []answerText
	if c := msg.Get("content"); c.Type == gjson.String {
		out = append(out, answerText{base + ".content", c.Str, false})
	}
	if c := msg.Get("refusal"); c.Type == gjson.String {
		out = append(out, answerText{base + ".refusal", c.Str, false})
	}
	k := -1
	msg.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
		k++
		if a := tc.Get("function.arguments"); a.Type == gjson.String {
			out = append(out, answerText{base + ".tool_calls." + strconv.Itoa(k) + ".function.arguments", a.Str, true})
		}
		return true
	})
	if a := msg.Get("function_call.arguments"); a.Type == gjson.String {
		out = append(out, answerText{base + ".function_call.arguments", a.Str, true})
	}
	return out
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

// streamFilter holds back a bounded window of each choice's streamed
// text (its content, and the arguments of each of its tool calls) so a
// match split across chunks is caught; nothing unscanned leaves.
type streamFilter struct {
	chain    *filters.Chain
	scanners map[streamText]*filters.StreamScanner
	order    []streamText // scanners in order of creation
	closed   map[int64]bool

	// Per chunk, reused: the texts the scanners emit, where they go in
	// the chunk, the chunk rewritten, and the choices it finishes. A
	// stream's chunks allocate nothing here once these have grown to a
	// chunk's size.
	texts     []byte
	edits     []streamEdit
	out       []byte
	finishing []finishingChoice
}

// streamEdit replaces data[start:end] (a JSON string) with the JSON
// string of texts[from:to].
type streamEdit struct{ start, end, from, to int }

// finishingChoice is a choice whose finish_reason is in the chunk: idx
// its index, pos its position in the chunk's choices array.
type finishingChoice struct{ idx, pos int64 }

// streamText names one streamed text: a choice's content (tool -1), its
// refusal (tool -2) or the arguments of its tool call number tool.
type streamText struct{ choice, tool int64 }

func newStreamFilter(chain *filters.Chain) *streamFilter {
	return &streamFilter{chain: chain, scanners: map[streamText]*filters.StreamScanner{}, closed: map[int64]bool{}}
}

func (sf *streamFilter) scanner(k streamText) *filters.StreamScanner {
	s, ok := sf.scanners[k]
	if !ok {
		s = sf.chain.NewStreamScanner(filters.StageOutput)
		sf.scanners[k] = s
		sf.order = append(sf.order, k)
	}
	return s
}

// chunk rewrites one chunk's delta contents and tool-call arguments with
// the scanned text; choices is the chunk's choices array, read from data.
// It returns the new data (valid until the next chunk) and, when a filter
// blocks, the index of the blocked choice (-1 otherwise). A chunk
// carrying a finish_reason then releases what its choice still holds.
func (sf *streamFilter) chunk(ex *exchange, data []byte, choices gjson.Result) ([]byte, int64) {
	sf.texts, sf.edits, sf.finishing = sf.texts[:0], sf.edits[:0], sf.finishing[:0]
	blocked := int64(-1)
	pos := int64(-1)
	choices.ForEach(func(_, ch gjson.Result) bool {
		pos++
		idx := ch.Get("index").Int()
		if sf.closed[idx] {
			return true
		}
		delta := ch.Get("delta")
		for k, member := range [...]string{"content", "refusal"} {
			if !sf.push(streamText{idx, -1 - int64(k)}, delta.Get(member)) {
				blocked = idx
				return false
			}
		}
		delta.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
			if !sf.push(streamText{idx, tc.Get("index").Int()}, tc.Get("function.arguments")) {
				blocked = idx
			}
			return blocked < 0
		})
		if blocked >= 0 {
			return false
		}
		if ch.Get("finish_reason").Type == gjson.String {
			sf.closed[idx] = true
			sf.finishing = append(sf.finishing, finishingChoice{idx, pos})
		}
		return true
	})
	if blocked >= 0 {
		ex.countFindings(sf.findings(blocked), "output")
		return data, blocked
	}
	out := sf.apply(data)
	for _, f := range sf.finishing {
		var ok bool
		if out, ok = sf.release(out, "choices."+strconv.FormatInt(f.pos, 10)+".delta", f.idx); !ok {
			ex.countFindings(sf.findings(f.idx), "output")
			return out, f.idx
		}
	}
	return out, -1
}

// push scans one streamed text of the chunk (s, when it is a string) and
// notes the edit that puts what may be emitted in its place. It reports
// false when a filter blocks.
func (sf *streamFilter) push(k streamText, s gjson.Result) bool {
	if s.Type != gjson.String {
		return true
	}
	from := len(sf.texts)
	var verdict filters.Verdict
	sf.texts, verdict = sf.scanner(k).PushAppend(sf.texts, s.Str)
	if verdict == filters.Blocked {
		return false
	}
	sf.edits = append(sf.edits, streamEdit{s.Index, s.Index + len(s.Raw), from, len(sf.texts)})
	return true
}

// apply makes the chunk's edits, in order of position, into the reused
// output buffer.
func (sf *streamFilter) apply(data []byte) []byte {
	if len(sf.edits) == 0 {
		return data
	}
	slices.SortFunc(sf.edits, func(a, b streamEdit) int { return a.start - b.start })
	out := sf.out[:0]
	at := 0
	for _, e := range sf.edits {
		out = append(out, data[at:e.start]...)
		out = wire.AppendString(out, unsafe.String(unsafe.SliceData(sf.texts[e.from:]), e.to-e.from))
		at = e.end
	}
	sf.out = append(out, data[at:]...)
	return sf.out
}

// release closes choice idx's scanners and adds what they still hold to
// the delta at path, after what the chunk already emits. It reports false
// when a filter blocks.
func (sf *streamFilter) release(data []byte, path string, idx int64) ([]byte, bool) {
	for _, k := range sf.order {
		if k.choice != idx {
			continue
		}
		rest, verdict := sf.scanners[k].Close()
		if verdict == filters.Blocked {
			return data, false
		}
		if rest == "" {
			continue
		}
		if k.tool < 0 {
			member := path + "." + [...]string{"content", "refusal"}[-1-k.tool]
			data, _ = sjson.SetBytes(data, member, gjson.GetBytes(data, member).Str+rest)
			continue
		}
		tc := []byte(`{"index":` + strconv.FormatInt(k.tool, 10) + `,"function":{"arguments":`)
		tc = wire.AppendString(tc, rest)
		tc = append(tc, "}}"...)
		data, _ = sjson.SetRawBytes(data, path+".tool_calls.-1", tc)
	}
	return data, true
}

// finish releases what is still held at the end of a stream that sent no
// finish_reason, as one more chunk; blocked reports a block found in it.
func (sf *streamFilter) finish(ex *exchange) ([]byte, int64) {
	out := []byte(`{"id":"","object":"chat.completion.chunk","created":0,"model":"","choices":[]}`)
	some := false
	for _, k := range sf.order {
		idx := k.choice
		if sf.closed[idx] {
			continue
		}
		sf.closed[idx] = true
		n := gjson.GetBytes(out, "choices.#").Int()
		out, _ = sjson.SetRawBytes(out, "choices.-1", []byte(`{"index":`+strconv.FormatInt(idx, 10)+`,"delta":{},"finish_reason":null}`))
		var ok bool
		if out, ok = sf.release(out, "choices."+strconv.FormatInt(n, 10)+".delta", idx); !ok {
			ex.countFindings(sf.findings(idx), "output")
			return nil, idx
		}
		some = some || gjson.GetBytes(out, "choices."+strconv.FormatInt(n, 10)+".delta").Raw != "{}"
	}
	if !some {
		return nil, -1
	}
	return out, -1
}

// findings are the findings of every scanner of choice idx.
func (sf *streamFilter) findings(idx int64) []filters.Finding {
	var fs []filters.Finding
	for _, k := range sf.order {
		if k.choice == idx {
			fs = append(fs, sf.scanners[k].Findings()...)
		}
	}
	return fs
}

// blockedChunk ends a choice the way Azure ends a filtered stream: an
// annotation chunk with finish_reason content_filter.
func (sf *streamFilter) blockedChunk(idx int64) []byte {
	b := []byte(`{"id":"","object":"","created":0,"model":"","choices":[{"index":` + strconv.FormatInt(idx, 10) + `,"finish_reason":"content_filter","content_filter_results":`)
	b = append(b, sf.chain.Annotations(sf.findings(idx), filters.StageOutput)...)
	return append(b, `}],"usage":null}`...)
}
