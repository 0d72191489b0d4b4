package azuresearch

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

// result is one document of a search answer.
type result struct {
	Score       float64 // @search.score: BM25, or the fused RRF score of hybrid queries
	Reranker    float64 // @search.rerankerScore (0-4)
	HasReranker bool
	Captions    []string          // @search.captions[].text
	Fields      map[string]string // the selected fields as text
}

// parseResponse reads a search answer:
//
//	{"@odata.count": 25, "@search.answers": […], "value": [
//	  {"@search.score": 0.54, "@search.rerankerScore": 1.03,
//	   "@search.captions": [{"text": "…", "highlights": "…"}], "id": "4123", …}],
//	 "@odata.nextLink": "…"}
//
// Field values become text: strings as they are, numbers in their JSON
// form, booleans "true"/"false", arrays of strings (Collection(Edm.String))
// joined with ", "; nulls and other shapes are left out.
func parseResponse(data []byte) ([]result, error) {
	if !gjson.ValidBytes(data) {
		return nil, errors.New("the answer is not JSON")
	}
	root := gjson.ParseBytes(data)
	if !root.IsObject() {
		return nil, errors.New("the answer is not a JSON object")
	}
	value := root.Get("value")
	if !value.IsArray() {
		return nil, errors.New(`the answer has no "value" array`)
	}
	var (
		out []result
		err error
		i   int
	)
	value.ForEach(func(_, doc gjson.Result) bool {
		if !doc.IsObject() {
			err = fmt.Errorf("value[%d] is not an object", i)
			return false
		}
		r := result{Fields: make(map[string]string, 8)}
		doc.ForEach(func(k, v gjson.Result) bool {
			switch key := k.Str; key {
			case "@search.score":
				r.Score = v.Float()
			case "@search.rerankerScore":
				if v.Type == gjson.Number {
					r.Reranker, r.HasReranker = v.Float(), true
				}
			case "@search.captions":
				v.ForEach(func(_, c gjson.Result) bool {
					if t := c.Get("text"); t.Type == gjson.String && t.Str != "" {
						r.Captions = append(r.Captions, t.Str)
					}
					return true
				})
			default:
				if key == "" || strings.HasPrefix(key, "@") {
					return true
				}
				if s, ok := fieldText(v); ok {
					r.Fields[key] = s
				}
			}
			return true
		})
		out = append(out, r)
		i++
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func fieldText(v gjson.Result) (string, bool) {
	switch v.Type {
	case gjson.String:
		return v.Str, true
	case gjson.Number:
		return v.Raw, true
	case gjson.True:
		return "true", true
	case gjson.False:
		return "false", true
	}
	if v.IsArray() {
		var parts []string
		v.ForEach(func(_, e gjson.Result) bool {
			if e.Type == gjson.String {
				parts = append(parts, e.Str)
			}
			return true
		})
		return strings.Join(parts, ", "), len(parts) > 0
	}
	return "", false
}
