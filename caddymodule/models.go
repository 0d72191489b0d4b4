package caddymodule

import (
	"net/http"

	"github.com/groundgate/groundgate/wire"
)

// buildModelList renders the model list once, at provisioning.
func buildModelList(models []ModelConfig) []byte {
	b := []byte(`{"object":"list","data":[`)
	for i, m := range models {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendModel(b, m.Alias)
	}
	return append(b, "]}"...)
}

func appendModel(b []byte, alias string) []byte {
	b = append(b, `{"id":`...)
	b = wire.AppendString(b, alias)
	return append(b, `,"object":"model","created":0,"owned_by":"groundgate"}`...)
}

// serveModels answers GET /v1/models, /openai/v1/models, /openai/models
// and their /{id} forms.
func (g *Gateway) serveModels(ex *exchange) error {
	body := g.modelList
	if id := ex.route.deployment; id != "" {
		if _, ok := g.models[id]; !ok {
			return &wire.Error{Status: http.StatusNotFound, Type: wire.TypeInvalidRequest, Param: "model", Code: "model_not_found",
				Message: "The model `" + id + "` does not exist or you do not have access to it."}
		}
		body = appendModel(nil, id)
	}
	ex.w.Header().Set("Content-Type", "application/json")
	ex.writeHeader(http.StatusOK)
	if ex.r.Method != http.MethodHead {
		_, _ = ex.w.Write(body)
	}
	return nil
}
