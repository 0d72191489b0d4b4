package integration

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/tidwall/gjson"
)

const versionedPolicy = `name: general
default: true
meta_prompt:
  mode: prepend
  template: "Policy VERSION-%d. Answer support questions."
`

var (
	versionRe   = regexp.MustCompile(`VERSION-(\d+)`)
	connRetries atomic.Int64
)

// ask sends one request whose answer is the system prompt the model saw,
// and returns the policy version in it.
func ask(stream bool) (int, error) {
	body := fmt.Sprintf(`{"model":"gpt-4o","stream":%v,"messages":[{"role":"user","content":"[[sim:echo_system]]"}]}`, stream)
	req, _ := http.NewRequest("POST", gatewayURL("/v1/chat/completions"), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+demoKey)
	// A reload closes idle keep-alive connections, and a request may race
	// with that close before the server reads it. Like the OpenAI SDKs,
	// which retry connection errors, this client lets Go's transport
	// replay such never-received requests: it marks them idempotent.
	req.Header.Set("Idempotency-Key", fmt.Sprintf("reload-test-%d", time.Now().UnixNano()))
	resp, err := plainClient.Do(req)
	// A connection the old server closed while it was handed over: the
	// OpenAI SDKs retry such errors (max_retries 2); so does this client,
	// and it counts them.
	for retry := 0; err != nil && retry < 2; retry++ {
		connRetries.Add(1)
		req, _ = http.NewRequest("POST", gatewayURL("/v1/chat/completions"), strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+demoKey)
		req.Header.Set("Idempotency-Key", fmt.Sprintf("reload-test-retry-%d", time.Now().UnixNano()))
		resp, err = plainClient.Do(req)
	}
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var answer strings.Builder
	if !stream {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, err
		}
		answer.WriteString(gjson.GetBytes(b, "choices.0.message.content").Str)
	} else {
		sc := bufio.NewScanner(resp.Body)
		done := false
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			if line == "[DONE]" {
				done = true
				continue
			}
			if e := gjson.Get(line, "error"); e.Exists() {
				return 0, fmt.Errorf("error event: %s", e.Raw)
			}
			answer.WriteString(gjson.Get(line, "choices.0.delta.content").Str)
		}
		if err := sc.Err(); err != nil || !done {
			return 0, fmt.Errorf("stream ended without [DONE]: %v", err)
		}
	}
	m := versionRe.FindAllStringSubmatch(answer.String(), -1)
	if len(m) != 1 {
		return 0, fmt.Errorf("answer carries %d policy versions: %q", len(m), answer.String())
	}
	var v int
	fmt.Sscan(m[0][1], &v)
	return v, nil
}

// Twenty reloads, each with new policy contents, under concurrent
// streamed and non-streamed traffic: no request fails, every answer saw
// exactly one whole policy version, and a bad policy file fails its
// reload while the last good config keeps serving.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	policyFile := filepath.Join(dir, "general.yaml")
	writeVersion := func(v int) {
		if err := os.WriteFile(policyFile, []byte(fmt.Sprintf(versionedPolicy, v)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cf := caddyfile("policies "+dir, "time_to_first_token 20ms\n\t\ttokens_per_second 400")
	writeVersion(0)
	load(t, cf)

	var ok, failed atomic.Int64
	var latest atomic.Int64 // highest version whose reload returned
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var errs []string
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				floor := latest.Load()
				v, err := ask((w+i)%2 == 0)
				if err == nil && int64(v) < floor {
					err = fmt.Errorf("request started after reload %d saw policy version %d", floor, v)
				}
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					errs = append(errs, err.Error())
					errMu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}(w)
	}

	for v := 1; v <= 20; v++ {
		time.Sleep(60 * time.Millisecond)
		writeVersion(v)
		if err := tryLoad(cf); err != nil {
			t.Errorf("reload %d: %v", v, err)
		}
		latest.Store(int64(v))
	}
	time.Sleep(100 * time.Millisecond)

	// A bad policy file: the reload fails, naming the file and line, and
	// the previous config keeps serving.
	if err := os.WriteFile(policyFile, []byte("name: general\ndefault: true\nmeta_prompt:\n  mode: prepend\n  template: \"{{.Nope\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := tryLoad(cf)
	if err == nil || !strings.Contains(err.Error(), "general.yaml:5") {
		t.Errorf("bad policy reload: err = %v, want an error naming general.yaml:5", err)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()

	if v, err := ask(false); err != nil || v != 20 {
		t.Fatalf("after the failed reload: version %d, %v; want 20", v, err)
	}
	t.Logf("%d requests during 20 reloads, %d failed, %d retried after a connection error", ok.Load(), failed.Load(), connRetries.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during reloads; first: %v", failed.Load(), ok.Load()+failed.Load(), errs[:min(len(errs), 5)])
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d requests ran during the reloads", ok.Load())
	}
}

// The shipped demo Caddyfile adapts and provisions (caddy validate).
func TestDemoCaddyfileValidates(t *testing.T) {
	t.Chdir("..")
	t.Setenv("AZURE_OPENAI_API_KEY", "simulator-key")
	src, err := os.ReadFile("Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	var c caddy.Config
	if err := jsonUnmarshal(cfg, &c); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&c); err != nil {
		t.Fatalf("demo Caddyfile does not validate: %v", err)
	}
}
