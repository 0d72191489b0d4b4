package azuresearch

import (
	"testing"

	"github.com/groundgate/groundgate/entra"
)

// TestTokenSharedAcrossReloads: two configs with the same identity share
// one token source until both are cleaned up (the source itself is
// tested in package entra).
func TestTokenSharedAcrossReloads(t *testing.T) {
	f := newFakeSearch(t)
	withEntra := func(s *AzureSearch) {
		s.APIKey = ""
		s.Entra = &Entra{ClientID: testClient, ClientSecret: "{env." + secretEnv + "}", TokenURL: f.URL + "/t/oauth2/v2.0/token"}
	}
	s1 := provisionAS(t, f, withEntra)
	s2 := provisionAS(t, f, withEntra)
	if s1.creds.(tokenCreds).ts != s2.creds.(tokenCreds).ts {
		t.Fatal("not shared")
	}
	key := s1.poolKey
	s1.Cleanup()
	if n, ok := entra.References(key); !ok || n != 1 {
		t.Errorf("after one cleanup: %d refs, %v", n, ok)
	}
	s2.Cleanup()
	if _, ok := entra.References(key); ok {
		t.Error("still pooled")
	}
}
