package caddymodule

import (
	"net/http"
	"strings"

	"github.com/groundgate/groundgate/wire"
)

type operation uint8

const (
	opChat operation = iota + 1
	opEmbeddings
	opModels
	opTokenCounter
	opPolicies
	opExplain
	opResponses      // POST .../responses
	opStoredResponse // GET, DELETE .../responses/{id}, .../input_items, POST .../cancel
)

// API shapes, as policies and logs name them.
const (
	apiOpenAI  = "openai"   // /v1/...
	apiAzure   = "azure"    // /openai/deployments/{deployment}/...
	apiAzureV1 = "azure_v1" // /openai/v1/...
)

// route is what the URL says about a request.
type route struct {
	op  operation
	api string
	// deployment is the Azure deployment in the path ("" elsewhere);
	// for GET .../models/{id} it is the id.
	deployment string
	name       string    // for metrics and logs: "chat.completions", ...
	explains   operation // for opExplain: the operation explained
	// apiVersion is the client's api-version on Azure's routes (required
	// on the dated ones, optional on v1).
	apiVersion string
	// tail is the stored response's path below .../responses, e.g.
	// "/resp_123/input_items" (opStoredResponse), and respID its id.
	tail, respID string
}

// matchRoute maps method and path to a route, or an OpenAI-shaped 404/405.
func matchRoute(r *http.Request) (route, error) {
	p := r.URL.Path
	var rt route
	var rest string
	switch {
	case p == "/utils/token_counter":
		rt = route{op: opTokenCounter, api: apiOpenAI, name: "token_counter"}
		return rt, requireMethod(r, http.MethodPost)
	case p == "/groundgate/policies":
		rt = route{op: opPolicies, name: "policies"}
		return rt, requireMethod(r, http.MethodGet)
	case strings.HasPrefix(p, "/groundgate/explain/"):
		// The rest of the path is the route to explain, e.g.
		// /groundgate/explain/v1/chat/completions.
		inner := r.Clone(r.Context())
		inner.URL.Path = p[len("/groundgate/explain"):]
		inner.Method = http.MethodPost
		target, err := matchRoute(inner)
		if err != nil {
			return rt, err
		}
		if target.op != opChat && target.op != opEmbeddings && target.op != opResponses {
			return rt, notFound(r)
		}
		target.explains, target.op = target.op, opExplain
		return target, requireMethod(r, http.MethodPost)
	case strings.HasPrefix(p, "/v1/"):
		rt.api, rest = apiOpenAI, p[len("/v1/"):]
	case strings.HasPrefix(p, "/openai/v1/"):
		rt.api, rest = apiAzureV1, p[len("/openai/v1/"):]
	case strings.HasPrefix(p, "/openai/deployments/"):
		rt.api = apiAzure
		dep, tail, ok := strings.Cut(p[len("/openai/deployments/"):], "/")
		if !ok || dep == "" {
			return rt, notFound(r)
		}
		rt.deployment, rest = dep, tail
		if rest == "models" || strings.HasPrefix(rest, "models/") {
			return rt, notFound(r)
		}
	case p == "/openai/models" || strings.HasPrefix(p, "/openai/models/"),
		p == "/openai/responses" || strings.HasPrefix(p, "/openai/responses/"):
		rt.api, rest = apiAzure, p[len("/openai/"):]
	default:
		return rt, notFound(r)
	}
	switch {
	case rest == "chat/completions":
		rt.op, rt.name = opChat, "chat.completions"
	case rest == "embeddings":
		rt.op, rt.name = opEmbeddings, "embeddings"
	case rest == "models":
		rt.op, rt.name = opModels, "models"
	case strings.HasPrefix(rest, "models/") && len(rest) > len("models/") && rt.deployment == "":
		rt.op, rt.name, rt.deployment = opModels, "models", rest[len("models/"):]
	case rest == "responses" && rt.deployment == "":
		rt.op, rt.name = opResponses, "responses"
	case strings.HasPrefix(rest, "responses/") && rt.deployment == "":
		if err := matchStoredResponse(r, &rt, rest[len("responses"):]); err != nil {
			return rt, err
		}
	default:
		return rt, notFound(r)
	}
	if rt.op != opStoredResponse {
		want := http.MethodPost
		if rt.op == opModels {
			want = http.MethodGet
		}
		if err := requireMethod(r, want); err != nil {
			return rt, err
		}
	}
	if rt.api == apiAzureV1 {
		rt.apiVersion = r.URL.Query().Get("api-version") // optional: "preview" opts in to preview features
	}
	if rt.api == apiAzure {
		rt.apiVersion = r.URL.Query().Get("api-version")
		if rt.apiVersion == "" {
			return rt, wire.BadRequest("api-version", "missing_required_parameter",
				"Missing required query parameter 'api-version' (for example ?api-version=2024-10-21).")
		}
	}
	return rt, nil
}

// matchStoredResponse matches tail ("/{id}", "/{id}/input_items",
// "/{id}/cancel") and its method.
func matchStoredResponse(r *http.Request, rt *route, tail string) error {
	id, action, _ := strings.Cut(tail[1:], "/")
	if id == "" || strings.ContainsAny(id, "/?#%") {
		return notFound(r)
	}
	rt.op, rt.tail, rt.respID = opStoredResponse, tail, id
	switch action {
	case "":
		rt.name = "responses.retrieve"
		if r.Method == http.MethodDelete {
			rt.name = "responses.delete"
			return nil
		}
		return requireMethod(r, http.MethodGet)
	case "input_items":
		rt.name = "responses.input_items"
		return requireMethod(r, http.MethodGet)
	case "cancel":
		rt.name = "responses.cancel"
		return requireMethod(r, http.MethodPost)
	}
	return notFound(r)
}

func notFound(r *http.Request) error {
	return &wire.Error{
		Status:  http.StatusNotFound,
		Type:    wire.TypeInvalidRequest,
		Message: "Invalid URL (" + r.Method + " " + r.URL.Path + ")",
	}
}

func requireMethod(r *http.Request, want string) error {
	if r.Method == want || (want == http.MethodGet && r.Method == http.MethodHead) {
		return nil
	}
	return &wire.Error{
		Status:  http.StatusMethodNotAllowed,
		Type:    wire.TypeInvalidRequest,
		Message: "Invalid method for URL (" + r.Method + " " + r.URL.Path + "): use " + want + ".",
		Code:    "method_not_allowed",
		Header:  http.Header{"Allow": {want}},
	}
}
