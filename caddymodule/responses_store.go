package caddymodule

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/respcache"
	"github.com/groundgate/groundgate/wire"
)

// Stored responses belong to the principal that created them. The
// upstream stores a response under one resource key shared by every
// client of the gateway, so the gateway keeps its own record of each
// response id: the principal, the model alias and the deployment that
// answered. previous_response_id, GET and DELETE .../responses/{id},
// .../input_items and .../cancel are refused with 404 to any other
// principal, exactly as for an id that does not exist, so ids of other
// principals cannot even be probed. The record lives in the store
// (Redis: shared by every instance), else in a bounded in-process map.

// ownerRetention is how long an owner record is kept: as long as OpenAI
// and Azure keep a stored response (30 days).
const ownerRetention = 30 * 24 * time.Hour

// storedResponse is the owner record of one response id.
type storedResponse struct {
	principal, alias, upstream string
}

func (s storedResponse) encode() []byte {
	return []byte("1\x1f" + s.principal + "\x1f" + s.alias + "\x1f" + s.upstream)
}

func decodeStored(b []byte) (storedResponse, bool) {
	f := strings.Split(string(b), "\x1f")
	if len(f) != 4 || f[0] != "1" {
		return storedResponse{}, false
	}
	return storedResponse{principal: f[1], alias: f[2], upstream: f[3]}, true
}

// ownerStore keeps owner records.
type ownerStore struct {
	store respcache.Store
}

var memoryOwners = caddy.NewUsagePool()

// provisionOwners uses the budget store when it can keep records (Redis),
// else an in-process map shared across reloads.
func (g *Gateway) provisionOwners() error {
	if c, ok := g.store.(respcache.Store); ok {
		g.owners = &ownerStore{store: c}
		return nil
	}
	size := g.ResponseOwnersMaxSize
	if size == 0 {
		size = 16 << 20
	}
	key := "owners|" + strconv.FormatInt(size, 10)
	v, _, err := memoryOwners.LoadOrNew(key, func() (caddy.Destructor, error) {
		return respcache.NewMemory(int(size)), nil
	})
	if err != nil {
		return err
	}
	g.hold(memoryOwners, key)
	g.owners = &ownerStore{store: v.(*respcache.Memory)}
	return nil
}

func ownerKey(id string) string { return "response-owner|" + id }

// record notes that the request's principal owns response id. A store
// failure is logged: the answer is not withheld, but only a later
// successful record lets its owner reach it again.
func (o *ownerStore) record(ex *exchange, id string) error {
	rec := storedResponse{principal: ex.principal.name, alias: ex.model.alias}
	if ex.upstream != nil {
		rec.upstream = ex.upstream.name
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := o.store.CacheSet(ctx, ownerKey(id), rec.encode(), ownerRetention); err != nil {
		ex.g.logger.Error("could not record the owner of a stored response; its owner will get 404 for it",
			zap.String("request_id", ex.id), zap.String("response_id", id), zap.Error(err))
	}
	return nil
}

// check returns the record of response id when the request's principal
// owns it, else a 404 that does not tell "someone else's" from "unknown".
func (o *ownerStore) check(ex *exchange, id, param string) (*storedResponse, error) {
	ctx, cancel := context.WithTimeout(ex.r.Context(), storeTimeout)
	defer cancel()
	val, ok, err := o.store.CacheGet(ctx, ownerKey(id))
	if err != nil {
		ex.g.logger.Error("response owner store unavailable", zap.String("request_id", ex.id), zap.Error(err))
		return nil, &wire.Error{Status: http.StatusServiceUnavailable, Type: wire.TypeServer, Code: "response_store_unavailable",
			Message: "The gateway cannot check who owns response " + id + " right now. Retry shortly.",
			Header:  http.Header{"Retry-After": {"1"}}}
	}
	rec, valid := decodeStored(val)
	if !ok || !valid || rec.principal != ex.principal.name {
		return nil, responseNotFound(id, param)
	}
	return &rec, nil
}

// forget drops the record of a deleted response.
func (o *ownerStore) forget(ex *exchange, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	// Stores expire entries rather than delete them: a tombstone that
	// decodes to no owner.
	if err := o.store.CacheSet(ctx, ownerKey(id), []byte("-"), ownerRetention); err != nil {
		ex.g.logger.Warn("could not drop the owner record of a deleted response", zap.String("request_id", ex.id), zap.Error(err))
	}
}

func responseNotFound(id, param string) *wire.Error {
	if param == "previous_response_id" {
		return &wire.Error{Status: http.StatusNotFound, Type: wire.TypeInvalidRequest, Param: param, Code: "previous_response_not_found",
			Message: "Previous response with id '" + id + "' not found."}
	}
	return &wire.Error{Status: http.StatusNotFound, Type: wire.TypeInvalidRequest,
		Message: "Response with id '" + id + "' not found."}
}

// serveStoredResponse answers GET and DELETE .../responses/{id},
// GET .../input_items and POST .../cancel for the response's owner, from
// the deployment that created it. Responses read back pass the policy's
// output filters, as they did when created.
func (g *Gateway) serveStoredResponse(ex *exchange) error {
	rt := ex.route
	rec, err := g.owners.check(ex, rt.respID, "")
	if err != nil {
		return err
	}
	q := ex.r.URL.Query()
	if q.Get("stream") == "true" {
		return wire.BadRequest("stream", "unsupported_parameter", "Streaming a stored response again is not supported by the gateway; retrieve it without stream.")
	}
	q.Del("api-version")
	ex.upstreamQuery = q.Encode()
	if ex.r.Method == http.MethodPost {
		// cancel takes no body; drain what was sent within the limit.
		if _, err := ex.readBody(); err != nil {
			return err
		}
	}
	cp, err := g.selectPolicy(ex, rec.alias)
	if err != nil {
		return err
	}
	if cp != nil {
		ex.rt = cp.rt[ex.policy.Name]
	}
	p := ex.model.pool
	for _, u := range p.upstreams {
		if u.name == rec.upstream {
			p = &pool{name: p.name, upstreams: []*upstream{u}}
			break
		}
	}
	at, err := g.call(ex, p, opStoredResponse, nil, false)
	if err != nil {
		return err
	}
	defer at.close()
	ex.upstream = at.upstream
	if at.resp.StatusCode == http.StatusOK {
		switch {
		case ex.r.Method == http.MethodDelete:
			g.owners.forget(ex, rt.respID)
		case !strings.HasSuffix(rt.tail, "/input_items"):
			at.body = ex.filterResponse(at.body)
		}
	}
	return ex.relayJSON(at)
}
