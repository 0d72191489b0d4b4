// Package dvfake is a fake Dataverse Web API for tests: an Entra ID token
// endpoint and one table on loopback that evaluate the OData they receive
// ($filter, $select, $orderby, $top, and $apply with filter, groupby and
// aggregate) and answer anything else with a 400, as Dataverse does.
package dvfake

import (
	"fmt"
	"strconv"
	"strings"
)

// Expr is a parsed $filter expression.
type Expr interface {
	Eval(row map[string]any) bool
}

type andExpr struct{ l, r Expr }
type orExpr struct{ l, r Expr }
type notExpr struct{ e Expr }
type cmpExpr struct {
	col, op string
	val     any // string, float64, nil, bool
	literal string
}

func (e andExpr) Eval(r map[string]any) bool { return e.l.Eval(r) && e.r.Eval(r) }
func (e orExpr) Eval(r map[string]any) bool  { return e.l.Eval(r) || e.r.Eval(r) }
func (e notExpr) Eval(r map[string]any) bool { return !e.e.Eval(r) }

func (e cmpExpr) Eval(r map[string]any) bool {
	v, ok := r[e.col]
	if !ok || v == nil {
		switch e.op {
		case "eq":
			return e.val == nil
		case "ne":
			return e.val != nil
		}
		return false
	}
	if e.val == nil {
		return e.op == "ne"
	}
	var c int
	switch x := v.(type) {
	case string:
		y, ok := e.val.(string)
		if !ok {
			return false
		}
		c = strings.Compare(x, y)
	case float64:
		y, ok := e.val.(float64)
		if !ok {
			return false
		}
		switch {
		case x < y:
			c = -1
		case x > y:
			c = 1
		}
	case bool:
		y, ok := e.val.(bool)
		if !ok || (e.op != "eq" && e.op != "ne") {
			return false
		}
		if x != y {
			c = 1
		}
	default:
		return false
	}
	switch e.op {
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	case "lt":
		return c < 0
	case "le":
		return c <= 0
	case "gt":
		return c > 0
	}
	return c >= 0 // ge
}

// lexer splits OData expressions into tokens: identifiers (with $ and
// _), 'strings' (” escapes a quote), numbers, date-times and GUIDs (as
// bare words), and the punctuation ( ) , /.
type lexer struct {
	s   string
	pos int
}

type token struct {
	kind byte // 'i' word, 's' string, '(' ')' ',' '/', 0 end
	text string
}

func (l *lexer) next() (token, error) {
	for l.pos < len(l.s) && l.s[l.pos] == ' ' {
		l.pos++
	}
	if l.pos >= len(l.s) {
		return token{}, nil
	}
	c := l.s[l.pos]
	switch {
	case c == '(' || c == ')' || c == ',' || c == '/':
		l.pos++
		return token{kind: c, text: string(c)}, nil
	case c == '\'':
		var b strings.Builder
		l.pos++
		for {
			if l.pos >= len(l.s) {
				return token{}, fmt.Errorf("unterminated string literal")
			}
			if l.s[l.pos] == '\'' {
				if l.pos+1 < len(l.s) && l.s[l.pos+1] == '\'' {
					b.WriteByte('\'')
					l.pos += 2
					continue
				}
				l.pos++
				return token{kind: 's', text: b.String()}, nil
			}
			b.WriteByte(l.s[l.pos])
			l.pos++
		}
	case c == '$' || c == '_' || c == '-' || c == '.' || c == '+' || c == ':' || isAlnum(c):
		start := l.pos
		for l.pos < len(l.s) {
			c := l.s[l.pos]
			if c == '$' || c == '_' || c == '-' || c == '.' || c == '+' || c == ':' || isAlnum(c) {
				l.pos++
				continue
			}
			break
		}
		return token{kind: 'i', text: l.s[start:l.pos]}, nil
	}
	return token{}, fmt.Errorf("unexpected character %q at %d", c, l.pos)
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isIdent(s string) bool {
	if s == "" || !(s[0] == '_' || s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] == '_' || isAlnum(s[i])) {
			return false
		}
	}
	return true
}

// parser is a recursive-descent parser over the lexer with one token of
// look-ahead.
type parser struct {
	lx  lexer
	tok token
	err error
}

func newParser(s string) *parser {
	p := &parser{lx: lexer{s: s}}
	p.advance()
	return p
}

func (p *parser) advance() {
	if p.err != nil {
		return
	}
	p.tok, p.err = p.lx.next()
}

func (p *parser) fail(format string, a ...any) {
	if p.err == nil {
		p.err = fmt.Errorf(format+" (at %d)", append(a, p.lx.pos)...)
	}
}

func (p *parser) expect(kind byte) {
	if p.tok.kind != kind {
		p.fail("expected %q, found %q", string(kind), p.tok.text)
		return
	}
	p.advance()
}

func (p *parser) word(w string) bool {
	if p.tok.kind == 'i' && p.tok.text == w {
		p.advance()
		return true
	}
	return false
}

// ParseFilter parses a $filter expression of the supported subset.
func ParseFilter(s string) (Expr, error) {
	p := newParser(s)
	e := p.or()
	if p.err == nil && p.tok.kind != 0 {
		p.fail("unexpected %q", p.tok.text)
	}
	if p.err != nil {
		return nil, p.err
	}
	return e, nil
}

func (p *parser) or() Expr {
	e := p.and()
	for p.err == nil && p.word("or") {
		e = orExpr{e, p.and()}
	}
	return e
}

func (p *parser) and() Expr {
	e := p.unary()
	for p.err == nil && p.word("and") {
		e = andExpr{e, p.unary()}
	}
	return e
}

func (p *parser) unary() Expr {
	if p.err != nil {
		return nil
	}
	if p.word("not") {
		return notExpr{p.unary()}
	}
	if p.tok.kind == '(' {
		p.advance()
		e := p.or()
		p.expect(')')
		return e
	}
	if p.tok.kind != 'i' || !isIdent(p.tok.text) {
		p.fail("expected a column, found %q", p.tok.text)
		return nil
	}
	c := cmpExpr{col: p.tok.text}
	p.advance()
	switch p.tok.text {
	case "eq", "ne", "lt", "le", "gt", "ge":
		if p.tok.kind != 'i' {
			p.fail("expected an operator")
			return nil
		}
		c.op = p.tok.text
		p.advance()
	default:
		p.fail("unsupported operator %q", p.tok.text)
		return nil
	}
	c.literal = p.tok.text
	switch {
	case p.tok.kind == 's':
		c.val = p.tok.text
	case p.tok.kind == 'i' && p.tok.text == "null":
		c.val = nil
	case p.tok.kind == 'i' && (p.tok.text == "true" || p.tok.text == "false"):
		c.val = p.tok.text == "true"
	case p.tok.kind == 'i' && isDateTime(p.tok.text):
		c.val = p.tok.text // stored date-times are the same UTC form
	case p.tok.kind == 'i':
		f, err := strconv.ParseFloat(p.tok.text, 64)
		if err != nil || strings.ContainsAny(p.tok.text, "xXpP_") || strings.EqualFold(p.tok.text, "inf") || strings.EqualFold(p.tok.text, "nan") ||
			strings.Contains(strings.ToLower(p.tok.text), "inf") || strings.Contains(strings.ToLower(p.tok.text), "nan") {
			p.fail("unsupported literal %q", p.tok.text)
			return nil
		}
		c.val = f
	default:
		p.fail("expected a literal, found %q", p.tok.text)
		return nil
	}
	p.advance()
	return c
}

// isDateTime accepts the UTC form 2006-01-02T15:04:05Z only.
func isDateTime(s string) bool {
	if len(s) != 20 || s[10] != 'T' || s[19] != 'Z' {
		return false
	}
	for i, c := range []byte(s) {
		switch i {
		case 4, 7:
			if c != '-' {
				return false
			}
		case 13, 16:
			if c != ':' {
				return false
			}
		case 10, 19:
		default:
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

// Agg is one aggregate expression: $count as Alias, or Col with Method
// as Alias.
type Agg struct{ Col, Method, Alias string }

// Apply is a parsed $apply: an optional filter, then an optional groupby
// with optional aggregates.
type Apply struct {
	Filter  Expr
	GroupBy []string
	Aggs    []Agg
}

// ParseApply parses the supported $apply subset:
// [filter(<expr>)/]groupby((c1,c2,...)[,aggregate(<agg>,...)]).
func ParseApply(s string) (*Apply, error) {
	a := &Apply{}
	rest := s
	if strings.HasPrefix(rest, "filter(") {
		// Find the filter's closing parenthesis, outside strings.
		depth, i, inStr := 0, len("filter"), false
		for ; i < len(rest); i++ {
			c := rest[i]
			if c == '\'' {
				inStr = !inStr
				continue
			}
			if inStr {
				continue
			}
			if c == '(' {
				depth++
			} else if c == ')' {
				depth--
				if depth == 0 {
					break
				}
			}
		}
		if i >= len(rest) {
			return nil, fmt.Errorf("filter(: unbalanced parentheses")
		}
		e, err := ParseFilter(rest[len("filter("):i])
		if err != nil {
			return nil, fmt.Errorf("filter: %v", err)
		}
		a.Filter = e
		rest = rest[i+1:]
		if rest == "" {
			return a, nil
		}
		if rest[0] != '/' {
			return nil, fmt.Errorf("expected / after filter(...)")
		}
		rest = rest[1:]
	}
	p := newParser(rest)
	if !p.word("groupby") {
		return nil, fmt.Errorf("unsupported transformation %q", p.tok.text)
	}
	p.expect('(')
	p.expect('(')
	for p.err == nil {
		if p.tok.kind != 'i' || !isIdent(p.tok.text) {
			p.fail("expected a column in groupby, found %q", p.tok.text)
			break
		}
		a.GroupBy = append(a.GroupBy, p.tok.text)
		p.advance()
		if p.tok.kind == ',' {
			p.advance()
			continue
		}
		p.expect(')')
		break
	}
	if p.err == nil && p.tok.kind == ',' {
		p.advance()
		if !p.word("aggregate") {
			p.fail("expected aggregate, found %q", p.tok.text)
		}
		p.expect('(')
		for p.err == nil {
			var g Agg
			if p.tok.kind == 'i' && p.tok.text == "$count" {
				g.Method = "$count"
				p.advance()
			} else if p.tok.kind == 'i' && isIdent(p.tok.text) {
				g.Col = p.tok.text
				p.advance()
				if !p.word("with") {
					p.fail("expected with, found %q", p.tok.text)
					break
				}
				switch p.tok.text {
				case "sum", "average", "min", "max":
					g.Method = p.tok.text
					p.advance()
				default:
					p.fail("unsupported aggregation method %q", p.tok.text)
				}
			} else {
				p.fail("expected an aggregate expression, found %q", p.tok.text)
				break
			}
			if !p.word("as") {
				p.fail("expected as, found %q", p.tok.text)
				break
			}
			if p.tok.kind != 'i' || !isIdent(p.tok.text) {
				p.fail("expected an alias, found %q", p.tok.text)
				break
			}
			g.Alias = p.tok.text
			p.advance()
			a.Aggs = append(a.Aggs, g)
			if p.tok.kind == ',' {
				p.advance()
				continue
			}
			p.expect(')')
			break
		}
	}
	p.expect(')')
	if p.err == nil && p.tok.kind != 0 {
		p.fail("unexpected %q after groupby", p.tok.text)
	}
	if p.err != nil {
		return nil, p.err
	}
	return a, nil
}
