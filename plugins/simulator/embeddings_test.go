package simulator

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"testing"

	"github.com/tidwall/gjson"
)

func embed(t *testing.T, s *Simulator, body string) gjson.Result {
	t.Helper()
	w := call(t, s, "POST", embedPath, body)
	if w.Code != 200 {
		t.Fatalf("%s: %d %s", body, w.Code, w.Body)
	}
	return gjson.Parse(w.Body.String())
}

func vector(t *testing.T, r gjson.Result, i int) []float64 {
	t.Helper()
	var v []float64
	for _, x := range r.Get("data." + itoa(i) + ".embedding").Array() {
		v = append(v, x.Float())
	}
	return v
}

func itoa(i int) string { return string(rune('0' + i)) }

func cosine(a, b []float64) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += a[i] * b[i]
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	return dot / math.Sqrt(na*nb)
}

func TestEmbeddingsShape(t *testing.T) {
	s := newSim(t, nil)
	r := embed(t, s, `{"input":["How do I reset my password?","Password reset steps"]}`)
	if r.Get("object").Str != "list" || r.Get("model").Str != "text-embedding-3-small" || r.Get("data.#").Int() != 2 {
		t.Fatalf("%s", r.Raw[:200])
	}
	for i := range 2 {
		d := r.Get("data." + itoa(i))
		if d.Get("object").Str != "embedding" || d.Get("index").Int() != int64(i) {
			t.Fatalf("data[%d] fields", i)
		}
		v := vector(t, r, i)
		if len(v) != 1536 {
			t.Fatalf("dimension %d", len(v))
		}
		var norm float64
		for _, x := range v {
			norm += x * x
		}
		if math.Abs(norm-1) > 1e-4 {
			t.Fatalf("norm² = %v", norm)
		}
	}
	enc := mustEncoder(t, "text-embedding-3-small")
	want := enc.Count("How do I reset my password?") + enc.Count("Password reset steps")
	if r.Get("usage.prompt_tokens").Int() != int64(want) || r.Get("usage.total_tokens").Int() != int64(want) {
		t.Fatalf("usage %s, want %d", r.Get("usage").Raw, want)
	}

	// deterministic
	again := embed(t, s, `{"input":"How do I reset my password?"}`)
	if again.Get("data.0.embedding").Raw != r.Get("data.0.embedding").Raw {
		t.Fatal("same text, different vector")
	}
	// dimensions
	short := embed(t, s, `{"input":"How do I reset my password?","dimensions":256}`)
	sv := vector(t, short, 0)
	if len(sv) != 256 || math.Abs(cosine(sv, vector(t, r, 0)[:256])-1) > 1e-5 {
		t.Fatalf("dimensions=256: len %d", len(sv))
	}
	if w := call(t, s, "POST", embedPath, `{"input":"x","dimensions":4096}`); w.Code != 400 {
		t.Fatalf("dimensions above the model's: %d", w.Code)
	}
}

func TestEmbeddingsSimilarity(t *testing.T) {
	s := newSim(t, nil)
	r := embed(t, s, `{"input":["the customer cannot reset the account password","customer cannot reset password","PASSWORD account, the Customer cannot RESET the","quarterly revenue forecast spreadsheet"]}`)
	a, b, c, d := vector(t, r, 0), vector(t, r, 1), vector(t, r, 2), vector(t, r, 3)
	if got := cosine(a, c); got < 0.95 {
		t.Fatalf("same words, other order/case: cosine %v", got)
	}
	if got := cosine(a, b); got < 0.6 {
		t.Fatalf("sharing most words: cosine %v", got)
	}
	if got := cosine(a, d); math.Abs(got) > 0.15 {
		t.Fatalf("unrelated: cosine %v", got)
	}
	if cosine(a, b) <= cosine(a, d) {
		t.Fatal("related texts are not closer than unrelated ones")
	}
}

func TestEmbeddingsBase64AndTokens(t *testing.T) {
	s := newSim(t, nil)
	f := embed(t, s, `{"input":"hello world"}`)
	b := embed(t, s, `{"input":"hello world","encoding_format":"base64"}`)
	raw, err := base64.StdEncoding.DecodeString(b.Get("data.0.embedding").Str)
	if err != nil || len(raw) != 1536*4 {
		t.Fatalf("base64: %v, %d bytes", err, len(raw))
	}
	fv := vector(t, f, 0)
	for i := range fv {
		// the float form has 9 decimals; the base64 form is the float32 of the same value
		if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); got != float32(fv[i]) {
			t.Fatalf("component %d: base64 %v, float %v", i, got, fv[i])
		}
	}
	// token arrays: one array, and an array of arrays
	one := embed(t, s, `{"input":[1,2,3,4]}`)
	many := embed(t, s, `{"input":[[1,2,3,4],[9,9]]}`)
	if one.Get("usage.prompt_tokens").Int() != 4 || many.Get("usage.prompt_tokens").Int() != 6 || many.Get("data.#").Int() != 2 ||
		one.Get("data.0.embedding").Raw != many.Get("data.0.embedding").Raw {
		t.Fatalf("token inputs: %s / %s", one.Get("usage").Raw, many.Get("usage").Raw)
	}
	for _, bad := range []string{`{}`, `{"input":""}`, `{"input":[]}`, `{"input":5}`, `{"input":[1,"a"]}`, `{"input":["a",[]]}`,
		`{"input":[-1]}`, `{"input":"x","encoding_format":"hex"}`, `{"input":"x","dimensions":0}`} {
		w := call(t, s, "POST", embedPath, bad)
		if w.Code != 400 || gjson.Get(w.Body.String(), "error.type").Str != "invalid_request_error" {
			t.Errorf("%s: %d %s", bad, w.Code, w.Body)
		}
	}
}
