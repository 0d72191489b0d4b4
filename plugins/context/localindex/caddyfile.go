package localindex

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/plugins/internal/caddyargs"
)

// UnmarshalCaddyfile sets up the index from Caddyfile tokens:
//
//	local_index [<path...>] {
//	    name <name>
//	    paths <file|dir|glob...>
//	    articles_from <module> [<args...>] {   # e.g. articles_from records /srv/crm
//	        ...                                # the module's own Caddyfile block
//	    }
//	    dir <snapshot dir>
//	    chunk_tokens <n>
//	    tokenizer <model>
//	    rrf_k <n>
//	    semantic terms|off
//	    documents <json file|dir...> {         # repeatable: one block per mapping
//	        each <path with * segments>        # where the documents are; default *
//	        id <ref>                           # default: the document's location
//	        title <ref>                        # default title
//	        body <ref...>                      # default body
//	        entity <ref>
//	        url <ref>
//	        metadata <name> <ref>              # repeatable
//	    }
//	    embeddings {
//	        endpoint <url>
//	        deployment <name>
//	        api_version <version>
//	        api_key <key or {env.VAR}>
//	        api azure|openai
//	        dimensions <n>
//	        batch_size <n>
//	        timeout <duration>
//	        query_timeout <duration>
//	    }
//	}
//
// With neither paths nor articles_from, the embedded sample articles are
// indexed. Unknown subdirectives are errors.
func (li *LocalIndex) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	li.Paths = append(li.Paths, d.RemainingArgs()...)
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "name":
			err = caddyargs.String(d, &li.Name)
		case "paths":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("paths: expected one or more files, directories or globs")
			}
			li.Paths = append(li.Paths, args...)
		case "dir":
			err = caddyargs.String(d, &li.Dir)
		case "chunk_tokens":
			err = caddyargs.Int(d, &li.ChunkTokens)
		case "tokenizer":
			err = caddyargs.String(d, &li.Tokenizer)
		case "semantic":
			err = caddyargs.String(d, &li.Semantic)
			if err == nil && li.Semantic != SemanticTerms && li.Semantic != SemanticOff {
				err = d.Errf("semantic: expected terms or off, got %q", li.Semantic)
			}
		case "rrf_k":
			var n int
			err = caddyargs.Int(d, &n)
			li.RRFK = float64(n)
		case "articles_from":
			err = li.parseArticlesFrom(d)
		case "embeddings":
			err = li.parseEmbeddings(d)
		case "documents":
			err = li.parseDocuments(d)
		default:
			return d.Errf("unrecognized local_index subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseArticlesFrom hands "articles_from <module> …" to the module's own
// Caddyfile parser, as if its block started at <module>.
func (li *LocalIndex) parseArticlesFrom(d *caddyfile.Dispenser) error {
	if li.ArticlesFromRaw != nil {
		return d.Errf("articles_from given twice")
	}
	toks := d.NextSegment()
	if len(toks) < 2 {
		return d.Errf("articles_from: expected a module name, e.g. articles_from records")
	}
	name := toks[1].Text
	modID := "llm_gateway.context." + name
	if _, err := caddy.GetModule(modID); err != nil {
		return d.Errf("articles_from: unknown module %q (%s is not registered)", name, modID)
	}
	sub := caddyfile.NewDispenser(toks[1:])
	sub.Next() // UnmarshalModule starts its segment at the current token
	unm, err := caddyfile.UnmarshalModule(sub, modID)
	if err != nil {
		return err
	}
	li.ArticlesFromRaw = caddyconfig.JSONModuleObject(unm, "source", name, nil)
	return nil
}

func (li *LocalIndex) parseDocuments(d *caddyfile.Dispenser) error {
	doc := Documents{Paths: d.RemainingArgs()}
	if len(doc.Paths) == 0 {
		return d.Errf("documents: expected one or more JSON files or directories")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "each":
			err = caddyargs.String(d, &doc.Each)
		case "id":
			err = caddyargs.String(d, &doc.ID)
		case "title":
			err = caddyargs.String(d, &doc.Title)
		case "body":
			doc.Body = append(doc.Body, d.RemainingArgs()...)
			if len(doc.Body) == 0 {
				return d.Errf("documents: body: expected one or more field references")
			}
		case "entity":
			err = caddyargs.String(d, &doc.Entity)
		case "url":
			err = caddyargs.String(d, &doc.URL)
		case "metadata":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("documents: metadata: expected <name> <field reference>")
			}
			if doc.Metadata == nil {
				doc.Metadata = map[string]string{}
			}
			if _, dup := doc.Metadata[args[0]]; dup {
				return d.Errf("documents: metadata %q given twice", args[0])
			}
			doc.Metadata[args[0]] = args[1]
		default:
			return d.Errf("unrecognized documents subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if _, err := doc.compile(); err != nil {
		return d.Errf("%v", err)
	}
	li.Documents = append(li.Documents, doc)
	return nil
}

func (li *LocalIndex) parseEmbeddings(d *caddyfile.Dispenser) error {
	if li.Embeddings != nil {
		return d.Errf("embeddings given twice")
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	e := &Embeddings{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "endpoint":
			err = caddyargs.String(d, &e.Endpoint)
		case "deployment":
			err = caddyargs.String(d, &e.Deployment)
		case "api_version":
			err = caddyargs.String(d, &e.APIVersion)
		case "api_key":
			err = caddyargs.String(d, &e.APIKey)
		case "api":
			err = caddyargs.String(d, &e.API)
			if err == nil && e.API != "azure" && e.API != "openai" {
				err = d.Errf("api: expected azure or openai, got %q", e.API)
			}
		case "dimensions":
			err = caddyargs.Int(d, &e.Dimensions)
		case "batch_size":
			err = caddyargs.Int(d, &e.BatchSize)
		case "timeout":
			err = caddyargs.DurationOrZero(d, &e.Timeout)
		case "query_timeout":
			err = caddyargs.DurationOrZero(d, &e.QueryTimeout)
		default:
			return d.Errf("unrecognized embeddings subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	li.Embeddings = e
	return nil
}

var _ caddyfile.Unmarshaler = (*LocalIndex)(nil)
