package dataverse

import (
	"errors"
	"fmt"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/wire"
)

// searchItem is one result of Dataverse search.
type searchItem struct {
	ID         string
	Entity     string // EntityName, e.g. "knowledgearticle"
	Attrs      row    // the SelectColumns, with formatted-value annotations
	Highlights []string
	Score      float64
}

// parseSearchResponse reads the answer of POST /api/search/v2.0/query (or
// the Web API's searchquery action):
//
//	{"@odata.context": "…", "response": "{\"Error\":null,\"Value\":[…],\"Facets\":{},\"QueryContext\":null,\"Count\":1}"}
//
// response is a JSON document encoded as a JSON string, so it is decoded
// twice. An already decoded object in response, or the inner document
// itself at the top level, is accepted as well. A non-null Error is
// returned as an error.
func parseSearchResponse(data []byte) ([]searchItem, error) {
	if !gjson.ValidBytes(data) {
		return nil, errors.New("the answer is not JSON")
	}
	root := gjson.ParseBytes(data)
	if !root.IsObject() {
		return nil, errors.New("the answer is not a JSON object")
	}
	var inner gjson.Result
	resp := root.Get("response")
	switch {
	case resp.Type == gjson.String:
		if !gjson.Valid(resp.Str) {
			return nil, errors.New(`"response" does not hold a JSON document`)
		}
		inner = gjson.Parse(resp.Str)
	case resp.IsObject():
		inner = resp
	case !resp.Exists() && root.Get("Value").Exists():
		inner = root
	default:
		return nil, errors.New(`the answer has no "response"`)
	}
	if !inner.IsObject() {
		return nil, errors.New(`"response" is not a JSON object`)
	}
	if e := inner.Get("Error"); e.Exists() && e.Type != gjson.Null {
		return nil, fmt.Errorf("search error: %s", searchErrorText(e))
	}
	value := inner.Get("Value")
	if !value.Exists() || value.Type == gjson.Null {
		return nil, nil
	}
	if !value.IsArray() {
		return nil, errors.New(`"Value" is not an array`)
	}
	var (
		out []searchItem
		err error
		i   int
	)
	value.ForEach(func(_, v gjson.Result) bool {
		if !v.IsObject() {
			err = fmt.Errorf("Value[%d] is not an object", i)
			return false
		}
		it := searchItem{
			ID:     v.Get("Id").String(),
			Entity: v.Get("EntityName").String(),
			Score:  v.Get("Score").Float(),
		}
		if a := v.Get("Attributes"); a.IsObject() {
			it.Attrs = parseRow(a)
		} else {
			it.Attrs = row{}
		}
		if h := v.Get("Highlights"); h.IsObject() {
			h.ForEach(func(_, frags gjson.Result) bool {
				frags.ForEach(func(_, s gjson.Result) bool {
					if s.Type == gjson.String {
						it.Highlights = append(it.Highlights, s.Str)
					}
					return true
				})
				return true
			})
		}
		out = append(out, it)
		i++
		return true
	})
	return out, err
}

// searchErrorText finds the message of an Error: a string, or an object
// with code and message in either case.
func searchErrorText(e gjson.Result) string {
	if e.Type == gjson.String {
		return wire.OneLine(e.Str, 500)
	}
	msg := e.Get("message").String()
	if msg == "" {
		msg = e.Get("Message").String()
	}
	code := e.Get("code").String()
	if code == "" {
		code = e.Get("Code").String()
	}
	switch {
	case code != "" && msg != "":
		return wire.OneLine(code+": "+msg, 500)
	case msg != "":
		return wire.OneLine(msg, 500)
	case code != "":
		return wire.OneLine(code, 500)
	}
	return wire.OneLine(e.Raw, 500)
}
