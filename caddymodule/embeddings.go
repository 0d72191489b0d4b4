package caddymodule

import (
	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/wire"
)

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
	alias, err := requestedModel(ex.route, emb.Model)
	if err != nil {
		return err
	}
	if body, err = g.applyPolicy(ex, body, alias, gjson.Result{}); err != nil {
		return err
	}
	if ex.rt != nil {
		if err := ex.reserve(body, ex.rt); err != nil {
			return err
		}
	}
	ex.sent = body
	at, err := g.call(ex, ex.model.pool, opEmbeddings, body, false)
	if err != nil {
		return err
	}
	defer at.close()
	ex.upstream = at.upstream
	return ex.relayJSON(at)
}
