package localindex

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func parse(t *testing.T, input string) (*LocalIndex, error) {
	t.Helper()
	li := new(LocalIndex)
	err := li.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	return li, err
}

func TestCaddyfile(t *testing.T) {
	li, err := parse(t, `local_index /srv/kb/a {
		name support-kb
		paths /srv/kb/b /srv/kb/*.html
		dir /var/lib/gg
		chunk_tokens 300
		tokenizer gpt-4o-mini
		rrf_k 40
		embeddings {
			endpoint https://res.openai.azure.com
			deployment text-embedding-3-small
			api_version 2024-10-21
			api_key {env.AOAI_KEY}
			dimensions 512
			batch_size 16
			timeout 20s
			query_timeout 1500ms
		}
	}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(li)
	want := `{"name":"support-kb","paths":["/srv/kb/a","/srv/kb/b","/srv/kb/*.html"],"dir":"/var/lib/gg","chunk_tokens":300,"tokenizer":"gpt-4o-mini","rrf_k":40,"embeddings":{"endpoint":"https://res.openai.azure.com","deployment":"text-embedding-3-small","api_version":"2024-10-21","api_key":"{env.AOAI_KEY}","dimensions":512,"batch_size":16,"timeout":20000000000,"query_timeout":1500000000}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestCaddyfileArticlesFrom(t *testing.T) {
	li, err := parse(t, `local_index {
		articles_from records /srv/crm {
			file incident /srv/crm/cases.csv
		}
		dir /tmp/x
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(li.ArticlesFromRaw); got != `{"dir":"/srv/crm","files":{"incident":"/srv/crm/cases.csv"},"source":"records"}` {
		t.Fatalf("articles_from = %s", got)
	}
	if li.Dir != "/tmp/x" {
		t.Fatalf("dir after the nested block: %q", li.Dir)
	}
	li, err = parse(t, `local_index {
		articles_from records
	}`)
	if err != nil || string(li.ArticlesFromRaw) != `{"source":"records"}` {
		t.Fatalf("%s %v", li.ArticlesFromRaw, err)
	}
}

func TestCaddyfileStrict(t *testing.T) {
	for input, want := range map[string]string{
		"local_index {\n colour blue\n}":                             `unrecognized local_index subdirective "colour"`,
		"local_index {\n embeddings {\n endpoint x\n modle y\n }\n}": `unrecognized embeddings subdirective "modle"`,
		"local_index {\n articles_from nosuch\n}":                    `unknown module "nosuch"`,
		"local_index {\n articles_from\n}":                           `expected a module name`,
		"local_index {\n articles_from records {\n bogus 1\n }\n}":   `unrecognized records subdirective "bogus"`,
		"local_index {\n chunk_tokens many\n}":                       `chunk_tokens: expected a whole number`,
		"local_index {\n chunk_tokens 1 2\n}":                        `wrong argument count`,
		"local_index {\n embeddings {\n timeout soon\n }\n}":         `timeout: expected a duration`,
		"local_index {\n embeddings {\n api grpc\n }\n}":             `api: expected azure or openai`,
		"local_index {\n embeddings {\n }\n embeddings {\n }\n}":     `embeddings given twice`,
		"local_index {\n embeddings extra {\n }\n}":                  `wrong argument count`,
		"local_index {\n paths\n}":                                   `paths: expected one or more`,
		"local_index {\n name\n}":                                    `wrong argument count`,
	} {
		_, err := parse(t, input)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n  err = %v\n  want %q", input, err, want)
		}
	}
}

func TestValidate(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"chunk_tokens": 8}`: "at least 32",
		`{"rrf_k": -1}`:       "rrf_k",
		`{"paths": ["/x"], "articles_from": {"source": "records"}}`:               "not both",
		`{"embeddings": {"endpoint": "ftp://x", "deployment": "d"}}`:              "http(s) URL",
		`{"embeddings": {"endpoint": "http://127.0.0.1:1"}}`:                      "endpoint and deployment",
		`{"embeddings": {"endpoint": "http://h", "deployment": "d", "api": "x"}}`: "api must be",
	} {
		li := new(LocalIndex)
		if err := json.Unmarshal([]byte(cfg), li); err != nil {
			t.Fatal(err)
		}
		err := li.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", cfg, err, want)
		}
	}
}

func TestCaddyfileDocuments(t *testing.T) {
	li, err := parse(t, `local_index {
		semantic off
		documents /srv/kb/knowledge.json /srv/kb/more {
			each *.*.faqs.*
			id $2
			title question
			body answer ../notes
			entity ../../name
			url 'https://kb.example/faq'
			metadata domain $1
			metadata type 'faq'
		}
		documents /srv/kb/flat.json
	}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(li)
	want := `{"documents":[{"paths":["/srv/kb/knowledge.json","/srv/kb/more"],"each":"*.*.faqs.*","id":"$2","title":"question","body":["answer","../notes"],"entity":"../../name","url":"'https://kb.example/faq'","metadata":{"domain":"$1","type":"'faq'"}},{"paths":["/srv/kb/flat.json"]}],"semantic":"off"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	for input, msg := range map[string]string{
		"local_index {\n documents\n}":                                            "expected one or more JSON files",
		"local_index {\n documents a.json {\n each\n }\n}":                        "wrong argument count",
		"local_index {\n documents a.json {\n metadata x\n }\n}":                  "metadata: expected <name> <field reference>",
		"local_index {\n documents a.json {\n metadata x a\n metadata x b\n }\n}": `metadata "x" given twice`,
		"local_index {\n documents a.json {\n title $2\n }\n}":                    "$2 but each has 1 wildcards",
		"local_index {\n documents a.json {\n colour red\n }\n}":                  `unrecognized documents subdirective "colour"`,
		"local_index {\n semantic maybe\n}":                                       "semantic: expected terms or off",
	} {
		if _, err := parse(t, input); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: err %v, want %q", input, err, msg)
		}
	}
}
