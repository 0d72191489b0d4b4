package wire

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/tidwall/gjson"
)

// PostModel sends a JSON body to a model endpoint of the gateway's own
// (embeddings for the index, a query rewrite) and returns the answer of a
// 200, at most limit bytes. The key goes in api-key for Azure and as a
// bearer token otherwise. Errors start with what (e.g. "embeddings" plus
// the endpoint without query or user info) and name the status and the
// service's message, never the key.
func PostModel(ctx context.Context, client *http.Client, url string, azure bool, key string, body []byte, limit int64, what string) ([]byte, error) {
	where := what + " " + RedactURL(url)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", where, err)
	}
	req.Header.Set("Content-Type", "application/json")
	switch {
	case key == "":
	case azure:
		req.Header.Set("api-key", key)
	default:
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", where, ctx.Err())
		}
		return nil, fmt.Errorf("%s: request failed", where)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the answer: %v", where, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: status %d: %s", where, resp.StatusCode, OneLine(gjson.GetBytes(data, "error.message").Str, 200))
	}
	return data, nil
}
