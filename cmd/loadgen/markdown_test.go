package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestMarkdown writes the README's table from a made-up report: every
// row, the percentages of reverse_proxy, CPU with the direct call's
// server as a dash, the figures rounded as the README shows them.
func TestMarkdown(t *testing.T) {
	µs := time.Microsecond
	lat := func(p50, p99 time.Duration) summary { return summary{n: 100, p50: p50, p99: p99} }
	r := &report{
		targets: []target{{name: "direct", kind: kindDirect}, {name: "reverse_proxy", kind: kindProxy}, {name: "groundgate", kind: kindGateway},
			{name: "groundgate (before)", kind: kindBefore}, {name: "portkey 1.15.2 (pass-through)", kind: kindPeer}},
		rates: []phase{
			{name: "200 req/s", rate: 200, s: []summary{lat(1220*µs, 3140*µs), lat(1650*µs, 4710*µs), lat(2090*µs, 6250*µs), lat(2300*µs, 7000*µs), lat(5000*µs, 15000*µs)}},
			{name: "1000 req/s", rate: 1000, s: []summary{lat(1000*µs, 3000*µs), lat(1350*µs, 6310*µs), lat(1870*µs, 14000*µs), lat(1900*µs, 15000*µs), lat(9000*µs, 40000*µs)}},
		},
		sat: phase{name: "saturation (32 clients)", s: make([]summary, 5),
			cpu: []cpuUse{{0, 81 * µs, 60 * µs}, {233 * µs, 127 * µs, 90 * µs}, {508 * µs, 245 * µs, 150 * µs}, {600 * µs, 250 * µs, 150 * µs}, {3766 * µs, 415 * µs, 347 * µs}}},
		rps: []float64{11554.4, 3637, 2156, 1900.5, 367},
		stream: phase{name: "streams 200 req/s", s: []summary{{n: 10, ttft50: 1000 * µs}, {n: 10, ttft50: 1500 * µs}, {n: 10, ttft50: 2060 * µs},
			{n: 10, ttft50: 2100 * µs}, {n: 10, ttft50: 71000 * µs}}},
		many: []streamsResult{{}, {ok: 5000, maxOpen: 5000, peakRSS: 530 << 20}, {ok: 5000, maxOpen: 5000, peakRSS: 869 << 20},
			{ok: 5000, maxOpen: 5000, peakRSS: 900 << 20}, {ok: 4990, failed: 10, maxOpen: 4990, peakRSS: 700 << 20, firstErr: errors.New("reset")}},
		revision: "0123456789ab", beforeRevision: "ba9876543210",
	}
	o := options{streams: 5000, rounds: 3}
	var b bytes.Buffer
	r.markdown(&b, o, runInfo{when: time.Date(2026, 12, 6, 7, 8, 0, 0, time.FixedZone("CET", 3600)), args: []string{"-duration", "6s"}, cpus: 2})
	want := "Run of 2026-12-06 06:08 UTC, groundgate commit 0123456789ab (before: commit ba9876543210); `loadgen -duration 6s`; 2 CPUs shared by the load generator and every server; HTTP/1.1 over loopback; each phase in 3 rounds that take the targets in turn.\n" +
		"\n" +
		"| | direct | `reverse_proxy` | Groundgate | Groundgate (before) | Portkey 1.15.2 (pass-through) |\n" +
		"|---|---|---|---|---|---|\n" +
		"| 200 req/s p50 / p99 | 1.22 / 3.14 ms | 1.65 / 4.71 ms | 2.09 / 6.25 ms | 2.30 / 7.00 ms | 5.00 / 15.0 ms |\n" +
		"| added over direct, p50 / p99 | | 0.43 / 1.57 ms | 0.87 / 3.11 ms | 1.08 / 3.86 ms | 3.78 / 11.9 ms |\n" +
		"| 1,000 req/s added p50 / p99 | | 0.35 / 3.31 ms | 0.87 / 11.0 ms | 0.90 / 12.0 ms | 8.00 / 37.0 ms |\n" +
		"| saturation (32 clients) | 11,554 req/s | 3,637 req/s | 2,156 req/s (59%) | 1,901 req/s (52%) | 367 req/s (10%) |\n" +
		"| CPU per request at saturation (server + simulator + load generator) | – + 81 + 60 µs | 233 + 127 + 90 µs | 508 + 245 + 150 µs | 600 + 250 + 150 µs | 3766 + 415 + 347 µs |\n" +
		"| streams 200 req/s, time to first token added p50 | | 0.50 ms | 1.06 ms | 1.10 ms | 70.0 ms |\n" +
		"| 5,000 concurrent streams, peak RSS | | 530 MB (108 KB/stream) | 869 MB (177 KB/stream) | 900 MB (184 KB/stream) | 700 MB (143 KB/stream) |\n" +
		"\n" +
		"Failed requests: concurrent streams: 10 of 5000 on portkey 1.15.2 (pass-through).\n"
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	r.many[4].failed = 0
	if got := r.failures(); got != "No request failed in any phase." {
		t.Errorf("failures = %q", got)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 11554: "11,554", 1234567: "1,234,567", -5000: "-5,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestShownArgs(t *testing.T) {
	in := []string{"-duration", "6s", "-before", "/home/me/old/loadgen", "-peer=portkey=/home/me/.cache/pk", "-markdown", "out.md",
		"-pprof=/tmp/p", "-keep", "-rates", "200", "--policy", "/repo/policies/examples/default.yaml"}
	want := "-duration 6s -before loadgen -peer portkey -rates 200 --policy default.yaml"
	if got := strings.Join(shownArgs(in), " "); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
