package azuresearch

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/plugins/internal/caddyargs"
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
//	        entity <field>
//	        metadata <policy field> <index field>   # repeatable
//	    }
//	    boost <scoring profile> {                   # policy boosts as tag parameters
//	        <policy field> <tag parameter>
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
			err = caddyargs.String(d, &s.Endpoint)
		case "index":
			err = caddyargs.String(d, &s.Index)
		case "api_version":
			err = caddyargs.String(d, &s.APIVersion)
		case "api_key":
			err = caddyargs.String(d, &s.APIKey)
		case "entra":
			err = s.parseEntra(d)
		case "query_type":
			err = caddyargs.String(d, &s.QueryType)
			if err == nil && !contains([]string{Keyword, Semantic, Vector, Hybrid}, s.QueryType) {
				err = d.Errf("query_type: expected keyword, semantic, vector or hybrid, got %q", s.QueryType)
			}
		case "semantic_configuration":
			err = caddyargs.String(d, &s.SemanticConfiguration)
		case "captions":
			err = caddyargs.String(d, &s.Captions)
		case "answers":
			err = caddyargs.String(d, &s.Answers)
		case "fields":
			err = s.parseFields(d)
		case "k":
			err = caddyargs.Int(d, &s.K)
		case "select":
			s.Select = caddyargs.List(d.RemainingArgs())
			if len(s.Select) == 0 {
				return d.ArgErr()
			}
		case "timeout":
			err = caddyargs.Duration(d, &s.Timeout)
		case "vector_query":
			err = caddyargs.String(d, &s.VectorQuery)
			if err == nil && s.VectorQuery != VectorQueryVector && s.VectorQuery != VectorQueryText {
				err = d.Errf("vector_query: expected vector or text, got %q", s.VectorQuery)
			}
		case "embeddings":
			err = s.parseEmbeddings(d)
		case "chunk_tokens":
			err = caddyargs.Int(d, &s.ChunkTokens)
		case "boost":
			err = s.parseBoost(d)
		case "tokenizer":
			err = caddyargs.String(d, &s.Tokenizer)
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
			err = caddyargs.String(d, &e.TenantID)
		case "client_id":
			err = caddyargs.String(d, &e.ClientID)
		case "client_secret":
			err = caddyargs.String(d, &e.ClientSecret)
		case "token_url":
			err = caddyargs.String(d, &e.TokenURL)
		case "scope":
			err = caddyargs.String(d, &e.Scope)
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
		"content": &f.Content, "url": &f.URL, "vector": &f.Vector, "internal": &f.Internal, "entity": &f.Entity,
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if name == "metadata" {
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("fields: metadata: expected <policy field> <index field>")
			}
			if f.Metadata == nil {
				f.Metadata = map[string]string{}
			}
			if _, dup := f.Metadata[args[0]]; dup {
				return d.Errf("fields: metadata %s given twice", args[0])
			}
			f.Metadata[args[0]] = args[1]
			continue
		}
		dst, ok := targets[name]
		if !ok {
			return d.Errf("unrecognized azure_search fields subdirective %q (known: id, article, number, title, content, url, vector, internal, entity, metadata)", name)
		}
		if seen[name] {
			return d.Errf("fields: %s given twice", name)
		}
		seen[name] = true
		if err := caddyargs.String(d, dst); err != nil {
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
			err = caddyargs.String(d, &e.URL)
		case "api_version":
			err = caddyargs.String(d, &e.APIVersion)
		case "api_key":
			err = caddyargs.String(d, &e.APIKey)
		case "dimensions":
			err = caddyargs.Int(d, &e.Dimensions)
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

var _ caddyfile.Unmarshaler = (*AzureSearch)(nil)

func (s *AzureSearch) parseBoost(d *caddyfile.Dispenser) error {
	if s.Boost != nil {
		return d.Errf("boost given twice")
	}
	b := &Boost{Parameters: map[string]string{}}
	if !d.AllArgs(&b.ScoringProfile) {
		return d.Errf("boost: expected the scoring profile's name")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		field := d.Val()
		var param string
		if !d.AllArgs(&param) {
			return d.Errf("boost: expected <policy field> <tag parameter>")
		}
		if _, dup := b.Parameters[field]; dup {
			return d.Errf("boost: %s given twice", field)
		}
		b.Parameters[field] = param
	}
	s.Boost = b
	return nil
}
