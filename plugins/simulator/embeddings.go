package simulator

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Embeddings: deterministic vectors. Each word (a run of letters or
// digits, lower-cased) owns a pseudo-random direction derived from its
// hash; a text's vector is the L2-normalised sum of its words' vectors, so
// texts sharing words are close (cosine ≈ shared / sqrt(n1·n2)) and
// unrelated texts are nearly orthogonal. A text without words uses the
// whole text as its single word; a token array uses its token ids.

const (
	maxEmbeddingInputs = 2048
	maxDimensions      = 8192
)

func (h *Simulator) serveEmbeddings(w http.ResponseWriter, r *http.Request, dep *deployment, apiVersion string, rng *rand.PCG) error {
	_, root, ok := h.readObject(w, r)
	if !ok {
		return nil
	}
	if dep == nil {
		var rerr *requestError
		if dep, rerr = h.deploymentFromBody(root); rerr != nil {
			writeJSON(w, rerr.status, rerr.body())
			return nil
		}
		if dep == nil {
			writeJSON(w, http.StatusNotFound, bodyDeploymentNotFound)
			return nil
		}
	}
	if !dep.embeddings {
		writeJSON(w, http.StatusBadRequest, operationNotSupportedBody("embeddings", dep.model))
		return nil
	}

	input := root.Get("input")
	inputs, rerr := embeddingInputs(input)
	if rerr != nil {
		writeJSON(w, rerr.status, rerr.body())
		return nil
	}
	dims := dep.dimensions
	if d, ok, rerr := intParam(root, "dimensions", 1, dep.dimensions); rerr != nil {
		writeJSON(w, rerr.status, rerr.body())
		return nil
	} else if ok {
		dims = d
	}
	base64Format := false
	if f := root.Get("encoding_format"); f.Exists() && f.Type != gjson.Null {
		switch {
		case f.Type == gjson.String && f.Str == "base64":
			base64Format = true
		case f.Type == gjson.String && f.Str == "float":
		default:
			rerr = badRequest("encoding_format", "invalid_value", "Invalid value for 'encoding_format': expected 'float' or 'base64'.")
			writeJSON(w, rerr.status, rerr.body())
			return nil
		}
	}

	promptTokens := 0
	for _, in := range inputs {
		if in.IsArray() {
			promptTokens += int(in.Get("#").Int())
		} else {
			promptTokens += dep.enc.Count(in.Str)
		}
	}
	faults := h.drawFaults(rng)
	adm := dep.window.admit(h.now(), int64(promptTokens), h.RequestsPerMinute, h.TokensPerMinute)
	setRemaining(w.Header(), adm)
	if !adm.ok {
		writeRateLimited(w, opEmbeddings, apiVersion, adm.kind, adm.retryAfter)
		return nil
	}
	if !sleepCtx(r.Context(), time.Duration(h.Latency)) {
		return nil
	}
	if faults.status != 0 {
		h.writeInjectedError(w, faults.status, opEmbeddings, apiVersion, -1)
		return nil
	}

	bp := getBuf()
	b := *bp
	vec := make([]float64, dims)
	var raw []byte
	b = append(b, `{"data":[`...)
	for i, in := range inputs {
		clear(vec)
		if in.IsArray() {
			in.ForEach(func(_, t gjson.Result) bool {
				addWordVector(vec, uint64(t.Int())*0x9E3779B97F4A7C15^0x5851F42D4C957F2D)
				return true
			})
		} else {
			embedText(vec, in.Str)
		}
		normalize(vec)
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"embedding":`...)
		if base64Format {
			raw = raw[:0]
			for _, v := range vec {
				raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(float32(quantize(v))))
			}
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, raw)
			b = append(b, '"')
		} else {
			b = append(b, '[')
			for j, v := range vec {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendFixed9(b, v)
			}
			b = append(b, ']')
		}
		b = append(b, `,"index":`...)
		b = appendInt(b, int64(i))
		b = append(b, `,"object":"embedding"}`...)
	}
	b = append(b, `],"model":`...)
	b = appendJSONString(b, dep.model)
	b = append(b, `,"object":"list","usage":{"prompt_tokens":`...)
	b = appendInt(b, int64(promptTokens))
	b = append(b, `,"total_tokens":`...)
	b = appendInt(b, int64(promptTokens))
	b = append(b, `}}`...)
	writeJSON(w, http.StatusOK, b)
	*bp = b
	putBuf(bp)
	return nil
}

// embeddingInputs validates "input": a string, an array of strings, an
// array of token ids, or an array of token-id arrays. Each returned item
// is a string or an array of integers.
func embeddingInputs(input gjson.Result) ([]gjson.Result, *requestError) {
	invalid := badRequest("input", "invalid_value", "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.")
	switch {
	case !input.Exists() || input.Type == gjson.Null:
		return nil, badRequest("input", "missing_required_parameter", "Missing required parameter: 'input'.")
	case input.Type == gjson.String:
		if input.Str == "" {
			return nil, invalid
		}
		return []gjson.Result{input}, nil
	case !input.IsArray():
		return nil, invalidType("input", "a string or array", input)
	}
	items := input.Array()
	if len(items) == 0 || len(items) > maxEmbeddingInputs {
		return nil, invalid
	}
	if items[0].Type == gjson.Number { // one token array
		if !isTokenArray(input) {
			return nil, invalid
		}
		return []gjson.Result{input}, nil
	}
	for _, it := range items {
		switch {
		case it.Type == gjson.String && it.Str != "":
		case it.IsArray() && it.Get("#").Int() > 0 && isTokenArray(it):
		default:
			return nil, invalid
		}
	}
	return items, nil
}

func isTokenArray(a gjson.Result) bool {
	ok := true
	a.ForEach(func(_, t gjson.Result) bool {
		ok = t.Type == gjson.Number && t.Num >= 0 && t.Num == math.Trunc(t.Num) && t.Num < 1<<32
		return ok
	})
	return ok
}

// embedText adds the vectors of text's words to vec.
func embedText(vec []float64, text string) {
	words := 0
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		if !isWordRune(r) {
			i += size
			continue
		}
		// FNV-1a over the lower-cased word
		h := uint64(14695981039346656037)
		for i < len(text) {
			r, size = utf8.DecodeRuneInString(text[i:])
			if !isWordRune(r) {
				break
			}
			r = unicode.ToLower(r)
			for r > 0 {
				h ^= uint64(r & 0xff)
				h *= 1099511628211
				r >>= 8
			}
			i += size
		}
		addWordVector(vec, h)
		words++
	}
	if words == 0 {
		addWordVector(vec, fnv64(text))
	}
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// addWordVector adds the pseudo-random direction seeded by seed to vec:
// components uniform in [-1, 1), four 16-bit draws per splitmix64 output.
func addWordVector(vec []float64, seed uint64) {
	const scale = 1.0 / (1 << 15)
	s := seed
	for i := 0; i < len(vec); i += 4 {
		s += 0x9E3779B97F4A7C15
		z := s
		z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
		z = (z ^ z>>27) * 0x94D049BB133111EB
		z ^= z >> 31
		for j := i; j < i+4 && j < len(vec); j++ {
			vec[j] += float64(int16(z)) * scale
			z >>= 16
		}
	}
}

// quantize rounds v to 9 decimal places, the precision of the JSON form.
func quantize(v float64) float64 { return math.Round(v*1e9) / 1e9 }

// appendFixed9 appends v (|v| <= 1) with at most 9 decimals, trailing
// zeros trimmed: a fast stand-in for shortest float formatting, exactly
// the decimal of quantize(v).
func appendFixed9(b []byte, v float64) []byte {
	n := int64(math.Round(v * 1e9))
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	b = strconv.AppendInt(b, n/1e9, 10)
	b = append(b, '.')
	var d [9]byte
	frac := n % 1e9
	for i := 8; i >= 0; i-- {
		d[i] = byte('0' + frac%10)
		frac /= 10
	}
	end := 9
	for end > 1 && d[end-1] == '0' {
		end--
	}
	return append(b, d[:end]...)
}

func normalize(vec []float64) {
	var sum float64
	for _, v := range vec {
		sum += v * v
	}
	if sum == 0 {
		return
	}
	inv := 1 / math.Sqrt(sum)
	for i := range vec {
		vec[i] *= inv
	}
}
