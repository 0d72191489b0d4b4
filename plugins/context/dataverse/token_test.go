package dataverse

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/groundgate/groundgate/entra"
)

func caddyDuration(d time.Duration) caddy.Duration { return caddy.Duration(d) }

// TestTokenSharedAcrossReloads: two provisions with the same identity
// share the token source (a reload keeps the token); after both are
// cleaned up it is gone from the pool.
func TestTokenSharedAcrossReloads(t *testing.T) {
	f := newFakeDataverse(t)
	d1 := provisionDV(t, f, nil)
	d2 := provisionDV(t, f, nil)
	if d1.c.tokens != d2.c.tokens {
		t.Fatal("token sources not shared")
	}
	for _, d := range []*Dataverse{d1, d2} {
		if _, _, err := d.Lookup(context.Background(), nil, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Articles(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.tokenCalls.Load(); n != 1 {
		t.Errorf("%d token requests for two configs", n)
	}
	key := d1.poolKey
	if strings.Contains(key, testSecret) {
		t.Error("the pool key holds the secret")
	}
	d1.Cleanup()
	if refs, ok := entra.References(key); !ok || refs != 1 {
		t.Errorf("after one cleanup: %d refs, %v", refs, ok)
	}
	d2.Cleanup()
	if _, ok := entra.References(key); ok {
		t.Error("token source still pooled")
	}
}
