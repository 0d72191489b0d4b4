package azuresearch

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the index from Caddyfile tokens:
//
//	azure_search [<endpoint> [<index>]] {
//	    endpoint <https://service.search.windows.net>
//	    index <name>
//	    api_version <2024-07-01>
//	    api_key <key>                    # a placeholder: {env.AZURE_SEARCH_API_KEY}
//	    entra {                          # instead of api_key
//	        tenant_id <tenant id>
//	        client_id <client id>
//	        client_secret <secret>
//	        token_url <url>
//	        scope <scope>
//	    }
//	    query_type keyword|semantic|vector|hybrid
//	    semantic_configuration <name>
//	    captions <extractive|…|none>
//	    answers <extractive|count-3|…>
//	    fields {
//	        id <field>
//	        article <field>
//	        number <field>
//	        title <field>
//	        content <field>
//	        url <field>
//	        vector <field>
//	        internal <field>
//	    }
//	    k <n>
//	    select <field[,field…]…>
//	    timeout <duration>
//	    vector_query vector|text
//	    embeddings [<deployment url>] {
//	        url <deployment url>
//	        api_version <version>
//	        api_key <key>
//	        dimensions <n>
//	    }
//	    chunk_tokens <n>
//	    tokenizer <model>
//	}
//
// Every subdirective may appear once. Unknown subdirectives are errors.
func (s *AzureSearch) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	args := d.RemainingArgs()
	switch len(args) {
	case 2:
		s.Index = args[1]
		fallthrough
	case 1:
		s.Endpoint = args[0]
	case 0:
	default:
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] {
			return d.Errf("azure_search: %s given twice", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "endpoint":
			err = oneString(d, &s.Endpoint)
		case "index":
			err = oneString(d, &s.Index)
		case "api_version":
			err = oneString(d, &s.APIVersion)
		case "api_key":
			err = oneString(d, &s.APIKey)
		case "entra":
			err = s.parseEntra(d)
		case "query_type":
			err = oneString(d, &s.QueryType)
			if err == nil && !contains([]string{Keyword, Semantic, Vector, Hybrid}, s.QueryType) {
				err = d.Errf("query_type: expected keyword, semantic, vector or hybrid, got %q", s.QueryType)
			}
		case "semantic_configuration":
			err = oneString(d, &s.SemanticConfiguration)
		case "captions":
			err = oneString(d, &s.Captions)
		case "answers":
			err = oneString(d, &s.Answers)
		case "fields":
			err = s.parseFields(d)
		case "k":
			err = oneInt(d, &s.K)
		case "select":
			s.Select = splitList(d.RemainingArgs())
			if len(s.Select) == 0 {
				return d.ArgErr()
			}
		case "timeout":
			err = oneDuration(d, &s.Timeout)
		case "vector_query":
			err = oneString(d, &s.VectorQuery)
			if err == nil && s.VectorQuery != VectorQueryVector && s.VectorQuery != VectorQueryText {
				err = d.Errf("vector_query: expected vector or text, got %q", s.VectorQuery)
			}
		case "embeddings":
			err = s.parseEmbeddings(d)
		case "chunk_tokens":
			err = oneInt(d, &s.ChunkTokens)
		case "tokenizer":
			err = oneString(d, &s.Tokenizer)
		default:
			return d.Errf("unrecognized azure_search subdirective %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *AzureSearch) parseEntra(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	e := &Entra{}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("entra: %s given twice", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "tenant_id":
			err = oneString(d, &e.TenantID)
		case "client_id":
			err = oneString(d, &e.ClientID)
		case "client_secret":
			err = oneString(d, &e.ClientSecret)
		case "token_url":
			err = oneString(d, &e.TokenURL)
		case "scope":
			err = oneString(d, &e.Scope)
		default:
			return d.Errf("unrecognized azure_search entra subdirective %q", name)
		}
		if err != nil {
			return err
		}
	}
	s.Entra = e
	return nil
}

func (s *AzureSearch) parseFields(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	f := &s.Fields
	targets := map[string]*string{
		"id": &f.ID, "article": &f.Article, "number": &f.Number, "title": &f.Title,
		"content": &f.Content, "url": &f.URL, "vector": &f.Vector, "internal": &f.Internal,
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		dst, ok := targets[name]
		if !ok {
			return d.Errf("unrecognized azure_search fields subdirective %q (known: id, article, number, title, content, url, vector, internal)", name)
		}
		if seen[name] {
			return d.Errf("fields: %s given twice", name)
		}
		seen[name] = true
		if err := oneString(d, dst); err != nil {
			return err
		}
	}
	return nil
}

func (s *AzureSearch) parseEmbeddings(d *caddyfile.Dispenser) error {
	e := &Embeddings{}
	if d.NextArg() {
		e.URL = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("embeddings: %s given twice", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "url":
			err = oneString(d, &e.URL)
		case "api_version":
			err = oneString(d, &e.APIVersion)
		case "api_key":
			err = oneString(d, &e.APIKey)
		case "dimensions":
			err = oneInt(d, &e.Dimensions)
		default:
			return d.Errf("unrecognized azure_search embeddings subdirective %q", name)
		}
		if err != nil {
			return err
		}
	}
	s.Embeddings = e
	return nil
}

// splitList accepts "a,b,c", "a b c" and mixtures.
func splitList(args []string) []string {
	var out []string
	for _, a := range args {
		for _, p := range strings.Split(a, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func oneString(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func oneInt(d *caddyfile.Dispenser, dst *int) error {
	name := d.Val()
	var s string
	if err := oneString(d, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return d.Errf("%s: expected a whole number, got %q", name, s)
	}
	*dst = n
	return nil
}

func oneDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var s string
	if err := oneString(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur <= 0 {
		return d.Errf("%s: expected a positive duration such as 5s, got %q", name, s)
	}
	*dst = caddy.Duration(dur)
	return nil
}

var _ caddyfile.Unmarshaler = (*AzureSearch)(nil)
