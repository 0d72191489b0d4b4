package simulator

import "net/http"

// modelsCreated is the fixed "created" timestamp of listed deployments
// (2024-05-13T00:00:00Z), so the list is deterministic.
const modelsCreated = 1715558400

// serveModels lists the configured deployments in OpenAI's list shape.
// With no deployments configured the list is empty (any name is accepted,
// but none is known in advance).
func (h *Simulator) serveModels(w http.ResponseWriter) {
	bp := getBuf()
	b := append(*bp, `{"object":"list","data":[`...)
	for i, d := range h.Deployments {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendJSONString(b, d.Name)
		b = append(b, `,"object":"model","created":`...)
		b = appendInt(b, modelsCreated)
		b = append(b, `,"owned_by":"system"}`...)
	}
	b = append(b, "]}"...)
	writeJSON(w, http.StatusOK, b)
	*bp = b
	putBuf(bp)
}
