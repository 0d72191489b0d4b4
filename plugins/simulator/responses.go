package simulator

import (
	"container/list"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// The Responses API (POST /openai/v1/responses, /openai/responses?api-version=…,
// /v1/responses): response objects and typed stream events in the
// service's shapes, stored responses (GET, DELETE, input_items, cancel,
// previous_response_id), function tool calls when tools are sent, JSON
// for text.format, output-text logprobs when asked.

const (
	opResponses = "Responses_Create"
	// maxStoredResponses bounds the simulator's response store.
	maxStoredResponses = 10000
)

// responsesRequest is what the simulator keeps of a Responses request.
type responsesRequest struct {
	dep          *deployment
	stream       bool
	store        bool
	background   bool
	instructions gjson.Result
	maxTokens    int
	previous     *storedResp
	input        []byte // the request's input items, normalised, with ids
	tools        gjson.Result
	toolChoice   gjson.Result
	format       gjson.Result // text.format
	logprobs     bool
	metadata     gjson.Result
	dir          directives
	promptTokens int

	// The answer: text (finish "stop", "length" or "content_filter"), or
	// a function call when call is set.
	chat     chatRequest
	call     *toolCall
	filtered bool
}

type toolCall struct{ name, arguments, callID string }

// storedResp is one stored response: the response object and its input.
type storedResp struct {
	id       string
	response []byte
	input    []byte // JSON array of input items, with ids
	history  []byte // the conversation before this response: previous input and output items
}

// responseStore keeps stored responses in memory, oldest dropped first.
type responseStore struct {
	mu    sync.Mutex
	items map[string]*list.Element
	order list.List
}

func (s *responseStore) get(id string) *storedResp {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[id]; ok {
		return el.Value.(*storedResp)
	}
	return nil
}

func (s *responseStore) put(r *storedResp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.items == nil {
		s.items = map[string]*list.Element{}
	}
	s.items[r.id] = s.order.PushBack(r)
	for s.order.Len() > maxStoredResponses {
		old := s.order.Front()
		s.order.Remove(old)
		delete(s.items, old.Value.(*storedResp).id)
	}
}

func (s *responseStore) remove(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.items[id]
	if ok {
		s.order.Remove(el)
		delete(s.items, id)
	}
	return ok
}

// newPrefixedID returns prefix + 48 hex digits, the shape of the
// service's response and item ids.
func newPrefixedID(rng *rand.PCG, prefix string) string {
	b := make([]byte, 0, len(prefix)+48)
	b = append(b, prefix...)
	for i := 0; i < 3; i++ {
		v := rng.Uint64()
		for j := 0; j < 16; j++ {
			b = append(b, hexDigits[v>>(60-4*j)&0xf])
		}
	}
	return string(b)
}

func responseNotFound(id string) []byte {
	return (&requestError{status: http.StatusNotFound, message: "Response with id '" + id + "' not found."}).body()
}

// serveStoredResponse answers GET/DELETE .../responses/{id},
// GET .../{id}/input_items and POST .../{id}/cancel.
func (h *Simulator) serveStoredResponse(w http.ResponseWriter, r *http.Request, tail string) error {
	id, action, _ := strings.Cut(tail, "/")
	sr := h.responses.get(id)
	switch {
	case action == "" && r.Method == http.MethodGet:
		if sr == nil {
			writeJSON(w, http.StatusNotFound, responseNotFound(id))
			return nil
		}
		writeJSON(w, http.StatusOK, sr.response)
	case action == "" && r.Method == http.MethodDelete:
		if !h.responses.remove(id) {
			writeJSON(w, http.StatusNotFound, responseNotFound(id))
			return nil
		}
		b := []byte(`{"id":`)
		b = appendJSONString(b, id)
		writeJSON(w, http.StatusOK, append(b, `,"object":"response","deleted":true}`...))
	case action == "input_items" && r.Method == http.MethodGet:
		if sr == nil {
			writeJSON(w, http.StatusNotFound, responseNotFound(id))
			return nil
		}
		items := gjson.ParseBytes(sr.input).Array()
		if queryValue(r.URL.RawQuery, "order") != "asc" {
			for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
				items[i], items[j] = items[j], items[i]
			}
		}
		b := []byte(`{"object":"list","data":[`)
		for i, it := range items {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, it.Raw...)
		}
		b = append(b, `],"first_id":`...)
		first, last := "", ""
		if len(items) > 0 {
			first, last = items[0].Get("id").Str, items[len(items)-1].Get("id").Str
		}
		b = appendNullableString(b, first)
		b = append(b, `,"last_id":`...)
		b = appendNullableString(b, last)
		writeJSON(w, http.StatusOK, append(b, `,"has_more":false}`...))
	case action == "cancel" && r.Method == http.MethodPost:
		if sr == nil {
			writeJSON(w, http.StatusNotFound, responseNotFound(id))
			return nil
		}
		if !gjson.GetBytes(sr.response, "background").Bool() {
			writeJSON(w, http.StatusBadRequest, badRequest("", "", "Only responses created with background=true can be cancelled.").body())
			return nil
		}
		writeJSON(w, http.StatusOK, sr.response) // background responses complete at once here
	default:
		writeJSON(w, http.StatusNotFound, bodyResourceNotFound)
	}
	return nil
}

func (h *Simulator) serveResponses(w http.ResponseWriter, r *http.Request, apiVersion string, rng *rand.PCG) error {
	_, root, ok := h.readObject(w, r)
	if !ok {
		return nil
	}
	dep := h.textDeployment(w, root, nil, "responses")
	if dep == nil {
		return nil
	}
	req := responsesRequest{dep: dep, store: true}
	lastUser, msgs, rerr := h.parseResponses(root, &req, rng)
	if rerr != nil {
		if rerr.code == "content_filter" {
			writeJSON(w, http.StatusBadRequest, promptFilteredBody(h.FilterCategory))
			return nil
		}
		writeJSON(w, rerr.status, rerr.body())
		return nil
	}
	h.buildResponseAnswer(&req, msgs, lastUser, rng)
	faults := h.drawFaults(rng)
	completion := req.chat.completionTokens
	adm := dep.window.admit(h.now(), int64(req.promptTokens+completion), h.RequestsPerMinute, h.TokensPerMinute)
	setRemaining(w.Header(), adm)
	if !adm.ok {
		writeRateLimited(w, opResponses, apiVersion, adm.kind, adm.retryAfter)
		return nil
	}
	if !sleepCtx(r.Context(), time.Duration(h.Latency)+time.Duration(req.dir.delayMs)*time.Millisecond) {
		return nil
	}
	switch {
	case req.dir.status != 0:
		h.writeInjectedError(w, req.dir.status, opResponses, apiVersion, req.dir.retryAfterMs)
		return nil
	case faults.status != 0:
		h.writeInjectedError(w, faults.status, opResponses, apiVersion, req.dir.retryAfterMs)
		return nil
	}
	rs := &responseState{req: &req, id: newPrefixedID(rng, "resp_"), created: h.now().Unix(), itemID: newPrefixedID(rng, "msg_")}
	if req.call != nil {
		rs.itemID = newPrefixedID(rng, "fc_")
	}
	final := rs.object("completed")
	if req.store {
		hist := msgsHistory(req.previous, req.input)
		h.responses.put(&storedResp{id: rs.id, response: final, input: req.input, history: appendOutputItems(hist, final)})
	}
	if req.stream {
		dropAt := -1
		if req.dir.dropAfter >= 0 {
			dropAt = req.dir.dropAfter
		} else if faults.drop {
			dropAt = int(rng.Uint64() % uint64(countPieces(req.chat.answer, req.chat.filteredAt)+1))
		}
		return h.streamResponse(w, r, rs, dropAt)
	}
	writeJSON(w, http.StatusOK, final)
	return nil
}

// msgsHistory is the conversation a response saw: its predecessor's
// history and input items, then this request's input.
func msgsHistory(prev *storedResp, input []byte) []byte {
	out := []byte{'['}
	add := func(arr []byte) {
		gjson.ParseBytes(arr).ForEach(func(_, it gjson.Result) bool {
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(out, it.Raw...)
			return true
		})
	}
	if prev != nil {
		add(prev.history)
	}
	add(input)
	return append(out, ']')
}

// appendOutputItems adds a response's output items to a history array.
func appendOutputItems(hist, response []byte) []byte {
	gjson.GetBytes(response, "output").ForEach(func(_, it gjson.Result) bool {
		hist, _ = sjson.SetRawBytes(hist, "-1", []byte(it.Raw))
		return true
	})
	return hist
}
