package post

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// plain has Interaction's fields and tags but not its methods: encoding/json
// encodes it by reflection, the reference AppendJSON must agree with.
type plain Interaction

var sampleStrings = []string{"", "a", "doc1", "<b>&amp;</b>", "quote \" back\\slash", "line\nbreak\ttab\r", "\u2028\u2029", "émoji 👍", "bad \xff\xfe utf-8", "\x00\x01\x1f"}

var sampleFloats = []float64{0, 1, -1, 0.5, 1e-7, 3.2e-9, 1e21, 123456789.125, 0.000123, math.SmallestNonzeroFloat64, math.MaxFloat64}

// fill sets every field of v (recursively) from r, zero values included,
// so omitempty and every member are exercised.
func fill(r *rand.Rand, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(sampleStrings[r.IntN(len(sampleStrings))])
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 0)
	case reflect.Int, reflect.Int64:
		v.SetInt([]int64{0, 1, -3, 42, math.MaxInt32, math.MinInt64}[r.IntN(6)])
	case reflect.Float64:
		v.SetFloat(sampleFloats[r.IntN(len(sampleFloats))])
	case reflect.Slice:
		n := r.IntN(4)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			fill(r, s.Index(i))
		}
		v.Set(s)
	case reflect.Pointer:
		if r.IntN(3) == 0 {
			v.SetZero()
			return
		}
		p := reflect.New(v.Type().Elem())
		fill(r, p.Elem())
		v.Set(p)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 6, 5, r.IntN(60), 7, r.IntN(2)*123456789, time.UTC)))
			return
		}
		for i := range v.NumField() {
			fill(r, v.Field(i))
		}
	default:
		panic("fill: add " + v.Kind().String())
	}
}

func checkSameJSON(t *testing.T, in *Interaction) {
	t.Helper()
	got, err := in.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal((*plain)(in))
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("AppendJSON wrote invalid JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("AppendJSON and encoding/json differ:\n got %s\nwant %s", got, want)
	}
}

func TestInteractionJSONMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		var in Interaction
		fill(r, reflect.ValueOf(&in).Elem())
		checkSameJSON(t, &in)
	}
	checkSameJSON(t, &Interaction{}) // every optional member omitted
	// The sinks' json.Marshal goes through MarshalJSON.
	in := Interaction{RequestID: "r", Cost: 1e-7}
	b, err := json.Marshal(&in)
	if err != nil || string(b) != `{"request_id":"r","time":"0001-01-01T00:00:00Z","prompt_tokens":0,"completion_tokens":0,"cost":1e-7,"latency_ms":0,"status":0}` {
		t.Fatalf("json.Marshal: %s, %v", b, err)
	}
	for _, bad := range []Interaction{{Cost: math.NaN()}, {LatencyMS: math.Inf(1)}, {Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}} {
		if _, err := bad.AppendJSON(nil); err == nil {
			t.Errorf("%+v: want an error, as encoding/json gives", bad)
		}
	}
}

func FuzzInteractionJSON(f *testing.F) {
	f.Add(uint64(1), "x", 0.25)
	f.Add(uint64(7), "\xff<\u2028", 1e-9)
	f.Fuzz(func(t *testing.T, seed uint64, s string, x float64) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return
		}
		var in Interaction
		fill(rand.New(rand.NewPCG(seed, 0)), reflect.ValueOf(&in).Elem())
		in.Error, in.Cost = s, x
		if len(in.Articles) > 0 {
			in.Articles[0].Number = s
		}
		checkSameJSON(t, &in)
	})
}

func BenchmarkInteractionJSON(b *testing.B) {
	var in Interaction
	fill(rand.New(rand.NewPCG(3, 4)), reflect.ValueOf(&in).Elem())
	in.Cost, in.LatencyMS = 0.00123, 12.5
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = in.AppendJSON(buf[:0])
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal((*plain)(&in))
		}
	})
}
