package caddymodule

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The gateway's cost per request is the difference between
// BenchmarkGatewayChat and BenchmarkDirectChat: both call the same
// loopback upstream, one through ServeHTTP, one with a plain client.

const benchBody = `{"model":"gpt-4o","messages":[{"role":"system","content":"You are a support agent for Contoso Electronics. Answer briefly and cite articles."},{"role":"user","content":"My soundbar stopped producing sound after the firmware update. What can I do?"}],"max_tokens":300}`

func BenchmarkDirectChat(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(okHandler))
	defer up.Close()
	client := &http.Client{Transport: newTransport()}
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("POST", up.URL+"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", strings.NewReader(benchBody))
		req.Header.Set("Api-Key", "k")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func BenchmarkGatewayChat(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(okHandler))
	defer up.Close()
	g := newGateway(&testing.T{}, nil, azure("a", up.URL, 0))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(benchBody))
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		_ = g.ServeHTTP(rec, req, nil)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

func BenchmarkGatewayStream(b *testing.B) {
	up := httptest.NewServer(streamHandler(azureStream, true, 0))
	defer up.Close()
	g := newGateway(&testing.T{}, nil, azure("a", up.URL, 0))
	body := strings.Replace(benchBody, `"max_tokens":300`, `"stream":true`, 1)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testKey)
		rec := httptest.NewRecorder()
		_ = g.ServeHTTP(rec, req, nil)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
