package records

import (
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/grounding"

	"github.com/groundgate/groundgate/wire"
)

// rewriter is the per-answer state machine; the non-streamed rewrite is
// one Delta of the whole answer plus Finish, so both shapes give the same
// text by construction.
type rewriter struct {
	r     *Records
	scope *grounding.Scope // the principal's: lookups see nothing else

	pend     []byte // held text: a possible mention (at most MaxPattern+1 bytes)
	prevWord bool   // the byte before pend is a word byte

	cache      map[string]link // entity "\x00" NUMBER → result
	lookups    int
	broken     bool     // a lookup failed: no more lookups
	unresolved []string // in order of first mention

	out  []byte
	ctx  []byte
	done bool
}

func (w *rewriter) Delta(text string) (string, []byte) {
	if w.done || text == "" {
		return "", nil
	}
	w.pend = append(w.pend, text...)
	w.process(false)
	return w.emit(), nil
}

func (w *rewriter) Finish() (string, []byte) {
	if w.done {
		return "", nil
	}
	w.done = true
	w.process(true)
	emit := w.emit()
	if w.r.Unknown != UnknownFlag || len(w.unresolved) == 0 {
		return emit, nil
	}
	w.ctx = append(w.ctx[:0], `{"unresolved_records":[`...)
	for i, n := range w.unresolved {
		if i > 0 {
			w.ctx = append(w.ctx, ',')
		}
		w.ctx = wire.AppendString(w.ctx, n)
	}
	w.ctx = append(w.ctx, "]}"...)
	return emit, w.ctx
}

func (w *rewriter) emit() string {
	if len(w.out) == 0 {
		return ""
	}
	return string(w.out)
}

// process rewrites the mentions in pend into out, keeping in pend only
// what may still become a mention (unless final).
func (w *rewriter) process(final bool) {
	buf := w.pend
	w.out = w.out[:0]
	last, i := 0, 0
	hold := false
	for i < len(buf) {
		prev := w.prevWord
		if i > 0 {
			prev = isWord(buf[i-1])
		}
		if prev || !isWord(buf[i]) {
			// Not a word start: patterns start with a word byte.
			i++
			continue
		}
		n, k, partial := scan(w.r.kinds, buf[i:], final)
		if partial {
			hold = true
			break
		}
		if k < 0 {
			i++
			continue
		}
		w.out = append(w.out, buf[last:i]...)
		w.out = w.mention(w.out, &w.r.kinds[k], buf[i:i+n])
		i += n
		last = i
	}
	if !hold {
		i = len(buf)
	}
	w.out = append(w.out, buf[last:i]...)
	if i > 0 {
		w.prevWord = isWord(buf[i-1])
	}
	w.pend = append(w.pend[:0], buf[i:]...)
}

// scan looks for a mention of any kind at the start of b (a word start).
// It returns the length and kind (-1: none) of the longest match, or
// partial when b ends before that can be decided (never when final).
func scan(kinds []kind, b []byte, final bool) (n, k int, partial bool) {
	k = -1
	for ki := range kinds {
		m, p := match(kinds[ki].pat, b, final)
		if p {
			partial = true
		} else if m > n {
			n, k = m, ki
		}
	}
	if partial {
		return 0, -1, true
	}
	return n, k, false
}

// match matches pattern pat at the start of b as a whole word: it returns
// the match's length (0: no match) or partial when b ends too soon.
func match(pat string, b []byte, final bool) (n int, partial bool) {
	for j := 0; j < len(pat); j++ {
		if j >= len(b) {
			return 0, !final
		}
		if !matchByte(pat[j], b[j]) {
			return 0, false
		}
	}
	if len(b) == len(pat) {
		if final {
			return len(pat), false
		}
		return 0, true // the next byte decides
	}
	if isWord(b[len(pat)]) {
		return 0, false
	}
	return len(pat), false
}

func matchByte(p, c byte) bool {
	switch p {
	case '#':
		return '0' <= c && c <= '9'
	case '@':
		return isAlnum(c)
	}
	return upper(c) == p
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// isWord reports an ASCII word byte, as \b in Go regular expressions.
func isWord(c byte) bool { return c == '_' || isAlnum(c) }

// mention appends the rewrite of mention m of kind k to out.
func (w *rewriter) mention(out []byte, k *kind, m []byte) []byte {
	value := make([]byte, len(m))
	for i, c := range m {
		value[i] = upper(c)
	}
	key := k.entity + "\x00" + string(value)
	l, seen := w.cache[key]
	if !seen {
		if w.broken || w.lookups >= MaxLookups {
			return append(out, m...)
		}
		w.lookups++
		var err error
		l, err = w.r.lookup(k, string(value), w.scope)
		if err != nil {
			w.broken = true
			w.r.logger.Warn("record lookup failed; numbers left as text",
				zap.String("entity", k.entity), zap.ByteString("number", value), zap.Error(err))
			return append(out, m...)
		}
		if w.cache == nil {
			w.cache = make(map[string]link, 4)
		}
		w.cache[key] = l
		if !l.ok {
			w.unresolved = append(w.unresolved, string(value))
		}
	}
	if !l.ok {
		return append(out, m...)
	}
	return k.format.appendTo(out, &l)
}
