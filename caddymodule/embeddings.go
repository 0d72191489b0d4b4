package caddymodule

import (
	"net/http"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/filters"
	"github.com/groundgate/groundgate/wire"
)

// embeddingsAPI adapts embeddings to the pipeline: a model and a policy
// are picked, the answer is relayed whole; no prompt step applies.
type embeddingsAPI struct{}

func (embeddingsAPI) op() operation          { return opEmbeddings }
func (embeddingsAPI) prepare() promptAdapter { return nil }

func (embeddingsAPI) parse(body []byte) (apiRequest, error) {
	emb, err := wire.ParseEmbeddings(body)
	if err != nil {
		return apiRequest{}, err
	}
	return apiRequest{model: emb.Model}, nil
}

// filterInput runs the input filters over the texts to embed.
func (embeddingsAPI) filterInput(ex *exchange, chain *filters.Chain, body []byte) ([]byte, error) {
	return ex.filterEmbeddingsInput(chain, body)
}

func (embeddingsAPI) forUpstream(body []byte, _ apiRequest) ([]byte, error) { return body, nil }

func (embeddingsAPI) relayAnswer(ex *exchange, at *attempt, _ apiRequest) error {
	if at.resp.StatusCode == http.StatusOK {
		ex.recordUsage(gjson.GetBytes(at.body, "usage"), chatUsage)
		ex.traceResponse(at.body)
	}
	return ex.relayJSON(at)
}

func (embeddingsAPI) relayStream(ex *exchange, at *attempt, _ apiRequest) error {
	return embeddingsAPI{}.relayAnswer(ex, at, apiRequest{}) // embeddings never stream
}
