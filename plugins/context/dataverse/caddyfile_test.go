package dataverse

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`dataverse https://contoso.crm.dynamics.com`, `{"url":"https://contoso.crm.dynamics.com","client_id":"","client_secret":""}`},
		{`dataverse {
			url https://contoso.crm.dynamics.com
			api_version v9.2
			tenant_id {env.AZURE_TENANT_ID}
			client_id {env.DATAVERSE_CLIENT_ID}
			client_secret {env.DATAVERSE_CLIENT_SECRET}
			token_url http://127.0.0.1:9/tenant/oauth2/v2.0/token
			scope https://contoso.crm.dynamics.com/.default
			timeout 5s
			page_size 50
			max_pages 10
			select incident title,ticketnumber,description,statecode,prioritycode
			select contact fullname, emailaddress1 telephone1
			article_url https://support.contoso.com/kb/{number}
			search on
		}`, `{"url":"https://contoso.crm.dynamics.com","api_version":"v9.2","tenant_id":"{env.AZURE_TENANT_ID}",` +
			`"client_id":"{env.DATAVERSE_CLIENT_ID}","client_secret":"{env.DATAVERSE_CLIENT_SECRET}",` +
			`"token_url":"http://127.0.0.1:9/tenant/oauth2/v2.0/token","scope":"https://contoso.crm.dynamics.com/.default",` +
			`"timeout":5000000000,"page_size":50,"max_pages":10,` +
			`"select":{"contact":["fullname","emailaddress1","telephone1"],"incident":["title","ticketnumber","description","statecode","prioritycode"]},` +
			`"article_url":"https://support.contoso.com/kb/{number}","search":{"enabled":true}}`},
		{`dataverse https://x.crm4.dynamics.com {
			search on {
				entities knowledgearticle
				search_columns title,content
				chunk_tokens 300
				tokenizer gpt-4
			}
		}`, `{"url":"https://x.crm4.dynamics.com","client_id":"","client_secret":"","search":{"enabled":true,"entities":["knowledgearticle"],"search_columns":["title","content"],"chunk_tokens":300,"tokenizer":"gpt-4"}}`},
		{"dataverse {\n search off\n}", `{"url":"","client_id":"","client_secret":"","search":{}}`},
	} {
		var d Dataverse
		if err := d.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in)); err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		js, _ := json.Marshal(&d)
		if string(js) != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.in, js, tc.want)
		}
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for in, want := range map[string]string{
		"dataverse {\n bogus 1\n}":                               `unrecognized dataverse subdirective "bogus"`,
		"dataverse {\n client_secret\n}":                         "wrong argument count",
		"dataverse {\n client_id a b\n}":                         "wrong argument count",
		"dataverse a b":                                          "wrong argument count",
		"dataverse {\n url a\n url b\n}":                         "url given twice",
		"dataverse {\n timeout soon\n}":                          `timeout: expected a positive duration such as 5s, got "soon"`,
		"dataverse {\n timeout 0s\n}":                            "expected a positive duration",
		"dataverse {\n page_size -1\n}":                          "page_size: expected a whole number",
		"dataverse {\n max_pages many\n}":                        "max_pages: expected a whole number",
		"dataverse {\n select incident\n}":                       "select: expected <table> <column",
		"dataverse {\n select opportunity name\n}":               `select: unknown table "opportunity"`,
		"dataverse {\n select incident Title\n}":                 `select incident: "Title" is not a column name`,
		"dataverse {\n select incident ti'tle\n}":                `is not a column name`,
		"dataverse {\n select incident a\n select incident b\n}": `select: table "incident" given twice`,
		"dataverse {\n search\n}":                                "search: expected on or off",
		"dataverse {\n search maybe\n}":                          `search: expected on or off, got "maybe"`,
		"dataverse {\n search on now\n}":                         "wrong argument count",
		"dataverse {\n search on {\n  bogus\n }\n}":              `unrecognized dataverse search subdirective "bogus"`,
		"dataverse {\n search on {\n  entities\n }\n}":           "wrong argument count",
		"dataverse {\n search on {\n  chunk_tokens x\n }\n}":     "chunk_tokens: expected a whole number",
	} {
		var d Dataverse
		err := d.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to contain %q", in, err, want)
		}
	}
}

// TestUnmarshalAsGuest parses the block the way a host module hands it
// over: by module ID through the Caddy registry, then as an inline-keyed
// JSON module object.
func TestUnmarshalAsGuest(t *testing.T) {
	d := caddyfile.NewTestDispenser("dataverse https://contoso.crm.dynamics.com {\n client_id id\n client_secret {env.S}\n tenant_id t\n}")
	d.Next() // positioned on the module name, as a host's parser leaves it
	unm, err := caddyfile.UnmarshalModule(d, "llm_gateway.context.dataverse")
	if err != nil {
		t.Fatal(err)
	}
	dv := unm.(*Dataverse)
	if err := dv.Validate(); err != nil {
		t.Fatal(err)
	}
	js := caddyconfig.JSONModuleObject(unm, "source", "dataverse", nil)
	want := `{"client_id":"id","client_secret":"{env.S}","source":"dataverse","tenant_id":"t","url":"https://contoso.crm.dynamics.com"}`
	if string(js) != want {
		t.Errorf("JSON %s", js)
	}
}
