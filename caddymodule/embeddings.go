package caddymodule

import "github.com/groundgate/groundgate/wire"

// serveEmbeddings proxies embeddings requests on every API shape.
func (g *Gateway) serveEmbeddings(ex *exchange) error {
	body, err := ex.readBody()
	if err != nil {
		return err
	}
	emb, err := wire.ParseEmbeddings(body)
	if err != nil {
		return err
	}
	if ex.model, err = g.resolveModel(ex.route, emb.Model); err != nil {
		return err
	}
	at, err := g.call(ex, ex.model.pool, opEmbeddings, body, false)
	if err != nil {
		return err
	}
	defer at.close()
	ex.upstream = at.upstream
	return ex.relayJSON(at)
}
