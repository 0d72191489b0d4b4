package dataverse

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/groundgate/groundgate/grounding"
)

// articleSelect are the knowledgearticle columns an Article is built from.
const articleSelect = "knowledgearticleid,articlepublicnumber,title,description,keywords,content,isinternal"

// publishedLatest selects the versions of articles agents and customers
// see: published (statecode 3) and the latest version of each article.
const publishedLatest = "statecode eq 3 and islatestversion eq true"

// Articles implements grounding.ArticleSource: every published, latest
// version knowledge article, with its HTML content converted to text,
// read page by page (page_size rows a page, at most max_pages pages; more
// is an error rather than a silently partial index).
func (d *Dataverse) Articles(ctx context.Context) ([]grounding.Article, error) {
	if d.c == nil {
		return nil, errors.New("dataverse: not provisioned")
	}
	var out []grounding.Article
	q := encodeQuery("$select", articleSelect, "$filter", publishedLatest)
	complete, err := d.c.query(ctx, entities[grounding.EntityKnowledgeArticle].set, q, d.c.maxPages, func(r row) bool {
		if r["knowledgearticleid"] != "" {
			out = append(out, d.article(r))
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if !complete {
		return nil, fmt.Errorf("dataverse: knowledge articles fill more than max_pages (%d) pages of %d; raise max_pages or page_size", d.c.maxPages, d.c.pageSize)
	}
	return out, nil
}

// article builds an Article from knowledgearticle columns.
func (d *Dataverse) article(r row) grounding.Article {
	a := grounding.ArticleFromColumns(func(c string) string { return r[c] })
	if a.ID == "" {
		a.ID = a.Number
	}
	if a.Title == "" {
		a.Title = a.Number
	}
	// Article bodies often open with the title as a heading: drop it, as
	// grounding does for HTML article files.
	if line, rest, _ := strings.Cut(a.Content, "\n"); strings.HasPrefix(line, "# ") && strings.TrimSpace(line[2:]) == a.Title {
		a.Content = strings.TrimSpace(rest)
	}
	a.URL = d.articleURL(a)
	return a
}

// articleURL fills the article_url template: {id} and {number} become the
// article's id and number, path-escaped.
func (d *Dataverse) articleURL(a grounding.Article) string {
	if d.ArticleURL == "" {
		return ""
	}
	return strings.NewReplacer("{id}", url.PathEscape(a.ID), "{number}", url.PathEscape(a.Number)).Replace(d.ArticleURL)
}
