package caddymodule

import (
	"net/http"

	"github.com/groundgate/groundgate/wire"
)

func contextUnavailable(policy string) error {
	return &wire.Error{Status: http.StatusServiceUnavailable, Type: wire.TypeServer, Code: "context_unavailable",
		Header:  http.Header{"Retry-After": {"1"}},
		Message: "The records or knowledge this request must be grounded in could not be fetched, and policy " + policy + " does not answer without them. Retry shortly."}
}
