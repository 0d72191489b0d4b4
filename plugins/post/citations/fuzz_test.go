package citations

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/groundgate/groundgate/post"
)

// reference is an independent rewrite with a regular expression, for the
// default configuration: markers renumbered in order of first citation,
// invented ones and adjacent duplicates dropped.
var markerRe = regexp.MustCompile(`\[doc([0-9]{1,6})\]`)

func reference(s string, ndocs int) (string, *post.Result) {
	res := new(post.Result)
	var b strings.Builder
	num := map[int]int{}
	last, prev := -1, 0
	for _, m := range markerRe.FindAllStringSubmatchIndex(s, -1) {
		if gap := s[prev:m[0]]; gap != "" {
			last = -1
			b.WriteString(gap)
		}
		prev = m[1]
		digits := s[m[2]:m[3]]
		n, _ := strconv.Atoi(digits)
		if digits[0] == '0' || n > ndocs {
			res.Invented++
			continue
		}
		i := n - 1
		if i == last {
			res.Duplicates++
			continue
		}
		if _, ok := num[i]; !ok {
			num[i] = len(res.Cited) + 1
			res.Cited = append(res.Cited, i)
		}
		fmt.Fprintf(&b, "[doc%d]", num[i])
		last = i
	}
	b.WriteString(s[prev:])
	return b.String(), res
}

// FuzzMarkers checks the marker scanner against the regular expression.
func FuzzMarkers(f *testing.F) {
	for _, s := range []string{"A [doc1] B [doc2][doc2] [doc9]", "[[doc3]]", "[doc1234567]", "[doc0] [doc01]", "[do", "x[d[do[doc[doc1"} {
		f.Add(s)
	}
	p := mustNew(f, Citations{})
	packed := testPacked()
	f.Fuzz(func(t *testing.T, s string) {
		got, _, res := rewrite(p, packed, s)
		want, wantRes := reference(s, len(packed.Docs))
		if got != want {
			t.Fatalf("rewrite(%q)\n got %q\nwant %q", s, got, want)
		}
		if !reflect.DeepEqual(res, wantRes) {
			t.Fatalf("rewrite(%q): result %+v, want %+v", s, res, wantRes)
		}
	})
}

// FuzzStreamSplit checks that a stream cut anywhere (cuts gives the piece
// lengths) rewrites to the non-streamed result, under several
// configurations, and that the hold-back never exceeds a marker prefix.
func FuzzStreamSplit(f *testing.F) {
	f.Add("Reset it [doc1]. Wait [doc2][doc2]. [doc9]", []byte{3, 1, 7, 2}, byte(0))
	f.Add("[[doc3]][doc12345", []byte{1, 1, 1, 1, 1}, byte(2))
	f.Add("no citation here [Doc1]", []byte{5}, byte(5))
	packed := testPacked()
	ps := make([]*Citations, len(streamConfigs))
	for i, c := range streamConfigs {
		ps[i] = mustNew(f, c)
	}
	f.Fuzz(func(t *testing.T, s string, cuts []byte, mode byte) {
		p := ps[int(mode)%len(ps)]
		req := &post.Request{Packed: packed}
		wantRes := new(post.Result)
		want, wantCtx := streamRewrite(p.NewRewriter(req, wantRes), []string{s})

		var pieces []string
		rest := s
		for _, c := range cuts {
			n := min(int(c)%16, len(rest))
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		pieces = append(pieces, rest)

		res := new(post.Result)
		rw := p.NewRewriter(req, res).(*rewriter)
		var b strings.Builder
		var ctx []byte
		for _, piece := range pieces {
			out, c := rw.Delta(piece)
			b.WriteString(out)
			ctx = post.MergeContext(ctx, append([]byte(nil), c...))
			if rw.nh > 4+maxDigits || (rw.st == 0) != (rw.nh == 0) {
				t.Fatalf("hold-back state st=%d nh=%d", rw.st, rw.nh)
			}
			if rw.withhold && len(rw.pending) > p.MaxHold {
				t.Fatalf("holding %d > max_hold %d", len(rw.pending), p.MaxHold)
			}
		}
		out, c := rw.Finish()
		b.WriteString(out)
		ctx = post.MergeContext(ctx, append([]byte(nil), c...))
		if b.String() != want || string(ctx) != string(wantCtx) {
			t.Fatalf("mode %d pieces %q:\n got %q %s\nwant %q %s", mode, pieces, b.String(), ctx, want, wantCtx)
		}
		if !reflect.DeepEqual(res, wantRes) {
			t.Fatalf("result %+v, want %+v", res, wantRes)
		}
	})
}
