package redact

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/groundgate/groundgate/post"
)

func provisioned(t *testing.T, r *Redact) *Redact {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	t.Cleanup(cancel)
	if err := r.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	return r
}

const answer = "Refund to IBAN GB82 WEST 1234 5698 7654 32 and card 4111 1111 1111 1111; mail ana@example.com."

func rewrite(r *Redact, pieces []string) string {
	w := r.NewRewriter(&post.Request{}, &post.Result{})
	var out strings.Builder
	for _, p := range pieces {
		s, _ := w.Delta(p)
		out.WriteString(s)
	}
	s, _ := w.Finish()
	out.WriteString(s)
	return out.String()
}

func TestRedactWholeAndAtEverySplit(t *testing.T) {
	r := provisioned(t, &Redact{Entities: []string{"iban", "credit_card"}})
	want := rewrite(r, []string{answer})
	if strings.Contains(want, "GB82") || strings.Contains(want, "4111") || !strings.Contains(want, "ana@example.com") ||
		!strings.Contains(want, "[REDACTED:iban]") || !strings.Contains(want, "[REDACTED:credit_card]") {
		t.Fatalf("whole answer: %q", want)
	}
	for i := 0; i <= len(answer); i++ {
		if got := rewrite(r, []string{answer[:i], answer[i:]}); got != want {
			t.Fatalf("split at %d: %q", i, got)
		}
	}
	bytes := make([]string, len(answer))
	for i := range answer {
		bytes[i] = answer[i : i+1]
	}
	if got := rewrite(r, bytes); got != want {
		t.Fatalf("byte by byte: %q", got)
	}
}

func TestCaddyfile(t *testing.T) {
	r := new(Redact)
	if err := r.UnmarshalCaddyfile(caddyfile.NewTestDispenser("redact {\n entities ssn email\n replacement ***\n}")); err != nil {
		t.Fatal(err)
	}
	if strings.Join(r.Entities, ",") != "ssn,email" || r.Replacement != "***" {
		t.Fatalf("%+v", r)
	}
	err := new(Redact).UnmarshalCaddyfile(caddyfile.NewTestDispenser("redact {\n entitys ssn\n}"))
	if err == nil || !strings.Contains(err.Error(), `"entitys"`) {
		t.Fatalf("err = %v", err)
	}
	provisioned(t, &Redact{Replacement: "***"})
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	if err := (&Redact{Entities: []string{"passport"}}).Provision(ctx); err == nil {
		t.Fatal("unknown entity accepted")
	}
}
