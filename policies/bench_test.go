package policies

import (
	"strings"
	"testing"
	"time"
)

// benchData is a realistic request: one case, a contact and three
// articles of about 1 KB each.
func benchData() Data {
	para := strings.Repeat("Hold the power button for ten seconds until the LED blinks white, then release it and wait for the chime. ", 10)
	return Data{
		Principal: Principal{Name: "agent-portal", Team: "support"},
		Feature:   "draft_email",
		Records: []Record{
			{Entity: "incident", ID: "5b1c2d3e-0000-4000-8000-000000000001", Number: "CAS-01234-X5Y6Z7", Title: "X200 headphones will not pair",
				Fields: map[string]string{"customer": "Dana Smith", "status": "Active", "priority": "Normal",
					"description": "Customer reports the X200 headphones no longer pair with her phone after the 2.1 firmware update.\nTried: restart, forget device."}},
			{Entity: "contact", ID: "5b1c2d3e-0000-4000-8000-000000000002", Title: "Dana Smith", Fields: map[string]string{"email": "dana@example.com", "language": "en-GB"}},
		},
		Articles: []Article{
			{Ref: "doc1", ID: "KA-01001", Number: "KA-01001", Title: "Resetting X200 headphones", URL: "https://support.contoso.example/kb/KA-01001", Content: para},
			{Ref: "doc2", ID: "KA-01002", Number: "KA-01002", Title: "Pairing after a firmware update", URL: "https://support.contoso.example/kb/KA-01002", Content: para},
			{Ref: "doc3", ID: "KA-01003", Number: "KA-01003", Title: "Warranty for audio products", URL: "https://support.contoso.example/kb/KA-01003", Content: para},
		},
		Now:  time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC),
		User: "Please draft a reply explaining how to reset and re-pair the headphones.",
	}
}

func loadExamples(b *testing.B) *Set {
	s, err := Load("examples")
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkMatch(b *testing.B) {
	s := loadExamples(b)
	inputs := []Input{
		{API: "openai", Route: "chat.completions", Model: "gpt-4o", Key: "portal", Team: "support"},
		{API: "azure", Route: "chat.completions", Model: "gpt4o", Key: "portal", Team: "support", Feature: "draft_email"},
		{API: "openai", Route: "chat.completions", Model: "copilot-summarize-case", Key: "portal", Team: "escalations"},
		{API: "openai", Route: "chat.completions", Model: "gpt-4o", Key: "portal", Team: "billing", Feature: "draft_email"},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d := s.Match(inputs[i%len(inputs)])
		if d.Policy == nil && !d.Denied {
			b.Fatal("no decision")
		}
	}
}

func BenchmarkRender(b *testing.B) {
	s := loadExamples(b)
	m := s.Policy("draft-email").Meta
	d := benchData()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Render(d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApplySystemPrompt(b *testing.B) {
	s := loadExamples(b)
	prompt, err := s.Policy("draft-email").Meta.Render(benchData())
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"model":"gpt-4o","temperature":0.2,"stream":true,"messages":[{"role":"system","content":"You are the agent portal assistant."},` +
		`{"role":"user","content":"` + strings.Repeat("The customer wrote in about their headphones. ", 40) + `"},` +
		`{"role":"assistant","content":"Sure."},{"role":"user","content":"Draft the reply."}],"max_tokens":800}`)
	for _, mode := range []Mode{ModePrepend, ModeAppend, ModeReplace} {
		b.Run(string(mode), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := ApplySystemPrompt(body, prompt, mode); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLoadExamples(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		loadExamples(b)
	}
}
