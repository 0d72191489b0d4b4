package dataverse

import (
	"strings"
	"testing"
)

func TestProvisionErrors(t *testing.T) {
	f := newFakeDataverse(t)
	for _, tc := range []struct {
		name   string
		mutate func(*Dataverse)
		want   string
	}{
		{"no url", func(d *Dataverse) { d.URL = "" }, "url is required"},
		{"http elsewhere", func(d *Dataverse) { d.URL = "http://contoso.crm.dynamics.com" }, "url must use https"},
		{"path", func(d *Dataverse) { d.URL = f.URL + "/api/data/v9.2" }, "environment URL alone"},
		{"not a url", func(d *Dataverse) { d.URL = "contoso" }, "is not a URL"},
		{"token url http", func(d *Dataverse) { d.TokenURL = "http://login.example/t" }, "token_url must use https"},
		{"no client", func(d *Dataverse) { d.ClientID = "" }, "client_id and client_secret are required"},
		{"no tenant", func(d *Dataverse) { d.TenantID, d.TokenURL = "", "" }, "tenant_id (or token_url) is required"},
		{"unset env", func(d *Dataverse) { d.ClientSecret = "{env.GROUNDGATE_TEST_UNSET_VARIABLE}" }, "client_secret"},
		{"api version", func(d *Dataverse) { d.APIVersion = "9.2" }, "api_version must look like v9.2"},
		{"page size", func(d *Dataverse) { d.PageSize = 6000 }, "page_size must be between 1 and 5000"},
		{"select table", func(d *Dataverse) { d.Select = map[string][]string{"lead": {"subject"}} }, `unknown table "lead"`},
		{"select column", func(d *Dataverse) { d.Select = map[string][]string{"incident": {"title eq 'x'"}} }, "is not a column name"},
		{"search table", func(d *Dataverse) { d.SearchConfig = &SearchConfig{Enabled: true, Entities: []string{"incident"}} }, "only knowledgearticle may be searched"},
		{"search tokenizer", func(d *Dataverse) { d.SearchConfig = &SearchConfig{Enabled: true, Tokenizer: "no-such-model"} }, "search tokenizer"},
		{"chunk tokens", func(d *Dataverse) { d.SearchConfig = &SearchConfig{Enabled: true, ChunkTokens: 8} }, "chunk_tokens must be at least 32"},
	} {
		_, err := tryProvisionDV(t, f, tc.mutate)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
		if err != nil {
			assertNoSecrets(t, err.Error(), f)
		}
	}
}

func TestProvisionDefaults(t *testing.T) {
	f := newFakeDataverse(t)
	d := provisionDV(t, f, func(d *Dataverse) { d.URL = strings.ToUpper(f.URL[:4]) + f.URL[4:] + "/" })
	c := d.c
	if c.api != f.URL+"/api/data/v9.2/" || c.timeout.String() != "5s" || c.pageSize != 50 || c.maxPages != 100 {
		t.Errorf("client %+v", c)
	}
	if d.SearchEnabled() {
		t.Error("search on by default")
	}
}
