package azuresearch

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func seed(t *testing.T, fuzz, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/fuzz/" + fuzz + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	_, lit, _ := strings.Cut(string(b), "[]byte(")
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimSpace(lit), ")"))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s)
}

func TestParseResponseDocExample(t *testing.T) {
	res, err := parseResponse(seed(t, "FuzzParseResponse", "doc_semantic"))
	if err != nil {
		t.Fatal(err)
	}
	want := []result{{
		Score: 0.5479723, Reranker: 1.0321671911515296, HasReranker: true,
		Captions: []string{"Like all clouds, it forms when the air reaches its dew point..."},
		Fields: map[string]string{"id": "4123", "title": "Earth Atmosphere", "content": "Fog is essentially a cloud lying on the ground. ...",
			"locations": "Pacific Northwest, North America, Vancouver"},
	}}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("got %+v\nwant %+v", res, want)
	}
	res, err = parseResponse(seed(t, "FuzzParseResponse", "keyword_types"))
	if err != nil || len(res) != 1 || res[0].HasReranker || res[0].Fields["rating"] != "4.5" || res[0].Fields["isinternal"] != "true" {
		t.Errorf("%+v %v", res, err)
	}
	if _, ok := res[0].Fields["nothing"]; ok {
		t.Error("null kept")
	}
	for _, bad := range []string{"error_body", "value_object", "item_scalar", "truncated", "array"} {
		if _, err := parseResponse(seed(t, "FuzzParseResponse", bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	if res, err := parseResponse(seed(t, "FuzzParseResponse", "empty")); err != nil || len(res) != 0 {
		t.Errorf("empty: %v %v", res, err)
	}
}

func TestParseEmbedding(t *testing.T) {
	v, err := parseEmbedding(seed(t, "FuzzParseEmbedding", "doc"))
	if err != nil || !reflect.DeepEqual(v, []float32{-0.0069, 0.0051, 0.0125}) {
		t.Errorf("%v %v", v, err)
	}
	for _, bad := range []string{"error", "empty_vector", "strings"} {
		if _, err := parseEmbedding(seed(t, "FuzzParseEmbedding", bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
