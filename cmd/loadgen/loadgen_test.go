package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

// TestMain lets the test binary play Caddy, as the loadgen binary does,
// when the harness starts it as a server.
func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "caddy" {
		caddycmd.Main()
		return
	}
	os.Exit(m.Run())
}

func TestQuantile(t *testing.T) {
	d := func(ms ...int) []time.Duration {
		var out []time.Duration
		for _, m := range ms {
			out = append(out, time.Duration(m)*time.Millisecond)
		}
		return out
	}
	for _, tc := range []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{d(7), 0.99, 7 * time.Millisecond},
		{d(5, 1, 4, 2, 3), 0.5, 3 * time.Millisecond},
		{d(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{d(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 0.99, 10 * time.Millisecond},
		{d(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 0.9, 9 * time.Millisecond},
	} {
		if got := quantile(tc.in, tc.q); got != tc.want {
			t.Errorf("quantile(%v, %v) = %v, want %v", tc.in, tc.q, got, tc.want)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestReadStream(t *testing.T) {
	ok := "data: {\"choices\":[],\"prompt_filter_results\":[]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n"
	if r := readStream(strings.NewReader(ok), time.Now()); r.err != nil || r.ttft <= 0 {
		t.Errorf("complete stream: %+v", r)
	}
	cut := "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n"
	if r := readStream(strings.NewReader(cut), time.Now()); r.err == nil {
		t.Error("a stream without [DONE] passed")
	}
	empty := "data: {\"choices\":[]}\n\ndata: [DONE]\n\n"
	if r := readStream(strings.NewReader(empty), time.Now()); r.err == nil {
		t.Error("a stream without content passed")
	}
}

func TestParseFlags(t *testing.T) {
	var errOut bytes.Buffer
	o, err := parseFlags([]string{"-rates", "200, 500", "-duration", "3s"}, &errOut)
	if err != nil || len(o.rates) != 2 || o.rates[1] != 500 || o.duration != 3*time.Second || o.streams != 5000 || o.tokens != 40 || o.rounds != 3 || o.profileDur != 20*time.Second {
		t.Fatalf("%+v %v", o, err)
	}
	if o, err := parseFlags([]string{"-peer", "portkey=/opt/pk"}, &errOut); err != nil || o.peer != (peerSpec{"portkey", "/opt/pk"}) {
		t.Errorf("-peer portkey=/opt/pk: %+v %v", o.peer, err)
	}
	for _, bad := range [][]string{{"-rates", "fast"}, {"-rates", "0"}, {"-duration", "0s"}, {"-workers", "0"}, {"-stream-tokens", "0"}, {"-rounds", "0"}, {"-profile-duration", "1s"}, {"-peer", "portkey"}, {"-peer", "kong=/opt/kong"}, {"extra"}} {
		if _, err := parseFlags(bad, &errOut); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestHarnessRuns runs the whole harness briefly: four servers started
// as child processes (the test binary again as the older gateway), every
// phase (the profile phase too), the report. It
// checks that every request succeeded, the report has every row and the
// profiles were written, not the figures (speed is measured by running
// the harness, not by tests).
func TestHarnessRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o := options{rates: []int{50}, duration: 400 * time.Millisecond, workers: 4, streamRate: 50, streams: 40, ramp: 200, tokens: 4, rounds: 2,
		questions: "../../sampledata/eval/questions.json", policy: "../../" + demoPolicy, pprof: t.TempDir(), profileDur: 2 * time.Second,
		before:   self, // this build again, for the before column
		markdown: filepath.Join(t.TempDir(), "speed.md")}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := measure(ctx, self, o, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	report := out.String()
	for _, row := range []string{"groundgate (before)", "50 req/s p50 / p99 ms", "added over direct ms", "saturation (4 clients) req/s", "TTFT p50 / p99 ms",
		"40 concurrent streams: peak RSS", "most open at once", "throughput:", "TTFT added p50", "per stream above reverse_proxy", "peak RSS in all", "groundgate alone at saturation"} {
		if !strings.Contains(report, row) {
			t.Errorf("report lacks %q:\n%s", row, report)
		}
	}
	if strings.Contains(report, "first failure") {
		t.Errorf("requests failed:\n%s", report)
	}
	for _, f := range []string{"gateway.cpu.pprof", "gateway.allocs.pprof", "gateway.heap.pprof", "gateway.vars.json"} {
		if st, err := os.Stat(filepath.Join(o.pprof, f)); err != nil || st.Size() == 0 {
			t.Errorf("profile %s: %v", f, err)
		}
	}
	md, err := os.ReadFile(o.markdown)
	if err != nil || !bytes.Contains(md, []byte("| saturation (4 clients) | ")) || !bytes.Contains(md, []byte("No request failed in any phase.")) {
		t.Errorf("-markdown: %v\n%s", err, md)
	}
	t.Logf("\n%s\n%s", report, md)
}

// An older binary that cannot serve the configuration stops the run
// before anything is measured, saying which and why.
func TestBeforeThatDoesNotStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o := options{rates: []int{50}, duration: 400 * time.Millisecond, workers: 4, streamRate: 50, ramp: 200, tokens: 4, rounds: 1,
		questions: "../../sampledata/eval/questions.json", policy: "../../" + demoPolicy, before: "/bin/false"}
	var out bytes.Buffer
	_, err = measure(t.Context(), self, o, &out)
	if err == nil || !strings.Contains(err.Error(), "-before /bin/false") || !strings.Contains(err.Error(), "did not start") {
		t.Fatalf("err = %v", err)
	}
	if out.Len() > 0 {
		t.Errorf("measured anyway:\n%s", out.String())
	}
}
