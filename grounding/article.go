package grounding

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
	"gopkg.in/yaml.v3"
)

// MaxArticleFile bounds the size of one article file.
const MaxArticleFile = 8 << 20

// ArticleExtensions are the file extensions ParseArticleFile reads.
var ArticleExtensions = []string{".md", ".markdown", ".html", ".htm", ".json"}

// IsArticleFile reports whether name has one of ArticleExtensions.
func IsArticleFile(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	for _, e := range ArticleExtensions {
		if e == ext {
			return true
		}
	}
	return false
}

// FrontMatter is the YAML front matter of a Markdown article. Keys are the
// knowledgearticle column names; unknown keys are errors.
//
//	---
//	articlepublicnumber: KA-01042
//	title: Pair Pulse headphones with a second phone
//	description: Multipoint pairing, step by step.
//	keywords: headphones, bluetooth, pairing     # or a YAML list
//	url: https://support.contoso.example/kb/KA-01042
//	knowledgearticleid: 5c1f…                   # default: the number
//	isinternal: false
//	---
type FrontMatter struct {
	KnowledgeArticleID  string   `yaml:"knowledgearticleid"`
	ArticlePublicNumber string   `yaml:"articlepublicnumber"`
	Title               string   `yaml:"title"`
	Description         string   `yaml:"description"`
	Keywords            keywords `yaml:"keywords"`
	URL                 string   `yaml:"url"`
	IsInternal          bool     `yaml:"isinternal"`
}

// keywords accepts "a, b, c" (Dataverse's comma-separated column) or a list.
type keywords []string

func (k *keywords) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*k = SplitKeywords(n.Value)
		return nil
	case yaml.SequenceNode:
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		*k = nil
		for _, s := range list {
			if s = strings.TrimSpace(s); s != "" {
				*k = append(*k, s)
			}
		}
		return nil
	}
	return fmt.Errorf("line %d: keywords must be a string or a list of strings", n.Line)
}

// SplitKeywords splits a comma- or semicolon-separated keywords column.
func SplitKeywords(s string) []string {
	var out []string
	for _, k := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' }) {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// ParseArticleFile reads knowledge articles from one file, by extension:
//
//   - .md, .markdown: optional YAML front matter (see FrontMatter), then
//     the Markdown body. Without a title, the first "# " heading is the
//     title (and is removed from the body).
//   - .html, .htm: <title> (or the first <h1>), <meta name="…"> for
//     description, keywords and articlepublicnumber; the body as text.
//   - .json: one knowledgearticle row, an array of them, or a Web API
//     response ({"value": […]}), with Dataverse column names (title,
//     articlepublicnumber, knowledgearticleid, description, keywords,
//     content as HTML, isinternal, statecode). Rows with a statecode other
//     than 3 (Published) are skipped.
//
// An article with neither a number nor an id gets the file name (without
// extension) as both. Errors name the file.
func ParseArticleFile(name string, data []byte) ([]Article, error) {
	if len(data) > MaxArticleFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, MaxArticleFile)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%s: not valid UTF-8", name)
	}
	var (
		arts []Article
		err  error
	)
	switch strings.ToLower(path.Ext(name)) {
	case ".md", ".markdown":
		var a Article
		a, err = parseMarkdown(data)
		arts = []Article{a}
	case ".html", ".htm":
		arts = []Article{parseHTMLArticle(data)}
	case ".json":
		arts, err = parseArticlesJSON(data)
	default:
		return nil, fmt.Errorf("%s: unknown article file type (want %s)", name, strings.Join(ArticleExtensions, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	base := strings.TrimSuffix(path.Base(name), path.Ext(name))
	for i := range arts {
		a := &arts[i]
		if a.Number == "" && a.ID == "" {
			a.Number, a.ID = base, base
			if len(arts) > 1 {
				return nil, fmt.Errorf("%s: article %d has neither articlepublicnumber nor knowledgearticleid", name, i)
			}
		}
		if a.ID == "" {
			a.ID = a.Number
		}
		if a.Title == "" {
			a.Title = a.Number
		}
		if a.Title == "" {
			a.Title = a.ID
		}
	}
	return arts, nil
}

// SplitFrontMatter splits "---\n<yaml>\n---\n<body>". Without front
// matter, fm is nil and body is data.
func SplitFrontMatter(data []byte) (fm, body []byte, err error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	first, rest, ok := bytes.Cut(data, []byte("\n"))
	if !ok || string(bytes.TrimRight(first, " \t\r")) != "---" {
		return nil, data, nil
	}
	for off := 0; off <= len(rest); {
		line, next, more := bytes.Cut(rest[off:], []byte("\n"))
		if t := string(bytes.TrimRight(line, " \t\r")); t == "---" || t == "..." {
			if !more {
				return rest[:off], nil, nil
			}
			return rest[:off], next, nil
		}
		if !more {
			break
		}
		off += len(line) + 1
	}
	return nil, nil, errors.New("front matter is not closed by a --- line")
}

func parseMarkdown(data []byte) (Article, error) {
	var a Article
	fmb, body, err := SplitFrontMatter(data)
	if err != nil {
		return a, err
	}
	if len(bytes.TrimSpace(fmb)) > 0 {
		var fm FrontMatter
		dec := yaml.NewDecoder(bytes.NewReader(fmb))
		dec.KnownFields(true)
		if err := dec.Decode(&fm); err != nil {
			return a, fmt.Errorf("front matter: %s", frontMatterError(err))
		}
		a = Article{ID: fm.KnowledgeArticleID, Number: fm.ArticlePublicNumber, Title: fm.Title,
			URL: fm.URL, Description: fm.Description, Keywords: fm.Keywords, Internal: fm.IsInternal}
	}
	content := strings.TrimSpace(normalizeNewlines(string(body)))
	if a.Title == "" {
		if line, rest, _ := strings.Cut(content, "\n"); strings.HasPrefix(line, "# ") {
			a.Title = strings.TrimSpace(line[2:])
			content = strings.TrimSpace(rest)
		}
	}
	a.Content = content
	return a, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// frontMatterError rewrites a yaml.v3 error for people: line numbers of
// the file (the front matter starts on line 2), no Go type names.
func frontMatterError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	msg = strings.ReplaceAll(msg, " in type grounding.FrontMatter", "")
	msg = yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(m[len("line "):])
		return "line " + strconv.Itoa(n+1)
	})
	lines := strings.Split(msg, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}

func parseHTMLArticle(data []byte) Article {
	var a Article
	doc, err := html.Parse(bytes.NewReader(data))
	if err != nil { // html.Parse only fails on reader errors
		a.Content = string(data)
		return a
	}
	var h1 string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.DataAtom {
			case atom.Title:
				if a.Title == "" {
					a.Title = strings.TrimSpace(nodeText(n))
				}
			case atom.H1:
				if h1 == "" {
					h1 = strings.TrimSpace(nodeText(n))
				}
			case atom.Meta:
				var name, content string
				for _, at := range n.Attr {
					switch strings.ToLower(at.Key) {
					case "name":
						name = strings.ToLower(at.Val)
					case "content":
						content = at.Val
					}
				}
				switch name {
				case "description":
					a.Description = strings.TrimSpace(content)
				case "keywords":
					a.Keywords = SplitKeywords(content)
				case "articlepublicnumber":
					a.Number = strings.TrimSpace(content)
				case "knowledgearticleid":
					a.ID = strings.TrimSpace(content)
				case "url":
					a.URL = strings.TrimSpace(content)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if a.Title == "" {
		a.Title = h1
	}
	body := findElement(doc, atom.Body)
	if body == nil {
		body = doc
	}
	a.Content = renderText(body)
	// The first heading repeats the title: drop it.
	if line, rest, _ := strings.Cut(a.Content, "\n"); line == "# "+a.Title {
		a.Content = strings.TrimSpace(rest)
	}
	return a
}

func parseArticlesJSON(data []byte) ([]Article, error) {
	data = bytes.TrimSpace(data)
	var rows []map[string]any
	switch {
	case len(data) > 0 && data[0] == '[':
		if err := json.Unmarshal(data, &rows); err != nil {
			return nil, err
		}
	case len(data) > 0 && data[0] == '{':
		var obj map[string]any
		if err := json.Unmarshal(data, &obj); err != nil {
			return nil, err
		}
		if v, ok := obj["value"]; ok {
			list, ok := v.([]any)
			if !ok {
				return nil, errors.New(`"value" must be an array of knowledgearticle rows`)
			}
			for i, x := range list {
				m, ok := x.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("value[%d] is not an object", i)
				}
				rows = append(rows, m)
			}
		} else {
			rows = []map[string]any{obj}
		}
	default:
		return nil, errors.New("expected a JSON object or array")
	}
	out := make([]Article, 0, len(rows))
	for _, r := range rows {
		if sc, ok := r["statecode"]; ok && sc != nil && fmt.Sprint(sc) != "3" {
			continue
		}
		out = append(out, ArticleFromColumns(func(col string) string { return jsonString(r[col]) }))
	}
	return out, nil
}

// ArticleFromColumns builds an Article from knowledgearticle columns
// (content as HTML or plain text).
func ArticleFromColumns(col func(string) string) Article {
	a := Article{
		ID: col("knowledgearticleid"), Number: col("articlepublicnumber"), Title: col("title"),
		Description: col("description"), Keywords: SplitKeywords(col("keywords")), URL: col("url"),
		Internal: strings.EqualFold(col("isinternal"), "true"),
	}
	content := col("content")
	if looksLikeHTML(content) {
		content = HTMLToText(content)
	}
	a.Content = strings.TrimSpace(normalizeNewlines(content))
	return a
}

func jsonString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "true"
		}
		return "false"
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

func looksLikeHTML(s string) bool {
	i := strings.IndexByte(s, '<')
	return i >= 0 && i+1 < len(s) && (s[i+1] == '/' || s[i+1] == '!' || s[i+1] >= 'a' && s[i+1] <= 'z' || s[i+1] >= 'A' && s[i+1] <= 'Z')
}

// HTMLToText converts HTML (knowledgearticle.content) to the plain text
// indexes and prompts use: headings become "#"-prefixed lines, list items
// "- " lines, block elements paragraphs; scripts and styles are dropped.
func HTMLToText(s string) string {
	doc, err := html.Parse(strings.NewReader(s))
	if err != nil {
		return s
	}
	if b := findElement(doc, atom.Body); b != nil {
		return renderText(b)
	}
	return renderText(doc)
}

func findElement(n *html.Node, a atom.Atom) *html.Node {
	if n.Type == html.ElementNode && n.DataAtom == a {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := findElement(c, a); f != nil {
			return f
		}
	}
	return nil
}

func nodeText(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// renderText walks n and writes paragraphs separated by blank lines.
func renderText(n *html.Node) string {
	var out []string // paragraphs
	var cur strings.Builder
	prefix := ""
	endPara := func() {
		t := strings.Join(strings.Fields(cur.String()), " ")
		if t != "" {
			out = append(out, prefix+t)
		}
		cur.Reset()
		prefix = ""
	}
	var walk func(*html.Node, int)
	walk = func(n *html.Node, depth int) {
		if depth > 512 {
			return
		}
		switch n.Type {
		case html.TextNode:
			cur.WriteString(n.Data)
			return
		case html.ElementNode:
			switch n.DataAtom {
			case atom.Script, atom.Style, atom.Head, atom.Template, atom.Noscript:
				return
			case atom.Br:
				cur.WriteByte(' ')
				return
			case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
				endPara()
				level := int(n.Data[1] - '0')
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c, depth+1)
				}
				prefix = strings.Repeat("#", level) + " "
				endPara()
				return
			case atom.Li:
				endPara()
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c, depth+1)
				}
				prefix = "- "
				endPara()
				return
			case atom.P, atom.Div, atom.Tr, atom.Ul, atom.Ol, atom.Table, atom.Section, atom.Article,
				atom.Blockquote, atom.Pre, atom.Dl, atom.Dt, atom.Dd, atom.Header, atom.Footer:
				endPara()
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c, depth+1)
				}
				endPara()
				return
			case atom.Td, atom.Th:
				cur.WriteByte(' ')
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	endPara()
	// Consecutive list items stay together as one paragraph.
	var b strings.Builder
	for i, p := range out {
		if i > 0 {
			if strings.HasPrefix(p, "- ") && strings.HasPrefix(out[i-1], "- ") {
				b.WriteByte('\n')
			} else {
				b.WriteString("\n\n")
			}
		}
		b.WriteString(p)
	}
	return b.String()
}
