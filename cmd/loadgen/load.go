package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
)

// targetKind says what serves a target, for the report's comparisons.
type targetKind int

const (
	kindDirect  targetKind = iota // the simulator itself
	kindProxy                     // plain Caddy reverse_proxy
	kindGateway                   // Groundgate, the build under test
	kindBefore                    // Groundgate, an older build (-before)
	kindPeer                      // another gateway, passing requests through (-peer)
)

// target is one way of calling the model: the simulator directly, through
// plain reverse_proxy, or through Groundgate.
type target struct {
	name    string // column heading
	kind    targetKind
	srv     *server // the process serving it
	url     string  // chat completions URL
	header  http.Header
	slowURL string // the same, to the slow-streaming simulator
	// slowHeader, when set, replaces header for slowURL
	slowHeader http.Header
}

// slowHeaders are the headers of requests to slowURL.
func (t target) slowHeaders() http.Header {
	if t.slowHeader != nil {
		return t.slowHeader
	}
	return t.header
}

func targets(c *cluster) []target {
	p := c.p
	azure := func(port int) string {
		return "http://127.0.0.1:" + strconv.Itoa(port) + "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
	}
	simKey := http.Header{"Api-Key": {"simulator-key"}, "Content-Type": {"application/json"}}
	openai := func(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) + "/v1/chat/completions" }
	gwKey := http.Header{"Authorization": {"Bearer " + clientKey}, "Content-Type": {"application/json"}}
	ts := []target{
		{name: "direct", kind: kindDirect, srv: c.sim, url: azure(p.Simulator), slowURL: azure(p.SlowSimulator), header: simKey},
		{name: "reverse_proxy", kind: kindProxy, srv: c.proxy, url: azure(p.Proxy), slowURL: azure(p.SlowProxy), header: simKey},
		{name: "groundgate", kind: kindGateway, srv: c.gateway, url: openai(p.Gateway), slowURL: openai(p.Gateway), header: gwKey},
	}
	if c.before != nil {
		ts = append(ts, target{name: "groundgate (before)", kind: kindBefore, srv: c.before, url: openai(p.Before), slowURL: openai(p.Before), header: gwKey})
	}
	if c.peer != nil {
		ts = append(ts, portkeyTarget(c))
	}
	return ts
}

// chatBodies returns one request body per question. The simulator's
// answer repeats the question, and each question ends with [doc1] and
// [doc2] markers, so the citations post-processor checks and rewrites
// them as it would a grounded answer's.
func chatBodies(model string, stream bool, directive string, questions []string) [][]byte {
	out := make([][]byte, len(questions))
	for i, q := range questions {
		content, _ := json.Marshal(directive + q + " (see [doc1] and [doc2])")
		b := `{"model":"` + model + `","messages":[{"role":"system","content":"You are a support agent for Contoso Electronics. Answer briefly and cite articles."},` +
			`{"role":"user","content":` + string(content) + `}],"max_tokens":300`
		if stream {
			b += `,"stream":true`
		}
		out[i] = []byte(b + "}")
	}
	return out
}

// loadQuestions reads the labelled question set (sampledata/eval).
func loadQuestions(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("questions: %v (run from the repository's root, or set -questions)", err)
	}
	var set struct {
		Questions []struct {
			Q string `json:"q"`
		} `json:"questions"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("questions: %s: %v", path, err)
	}
	var qs []string
	for _, q := range set.Questions {
		if q.Q != "" {
			qs = append(qs, q.Q)
		}
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("questions: %s has none", path)
	}
	return qs, nil
}

// result is one request's outcome.
type result struct {
	latency time.Duration // from the intended send time to the end of the body
	ttft    time.Duration // streams: to the first content chunk
	err     error
}

func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}, Timeout: 2 * time.Minute}
}

// call sends one request and reads the whole answer, checking it is a
// well-formed success. start is the intended send time.
func call(ctx context.Context, c *http.Client, url string, h http.Header, body []byte, stream bool, start time.Time) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return result{err: err}
	}
	req.Header = h.Clone()
	resp, err := c.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return result{err: fmt.Errorf("status %d: %s", resp.StatusCode, b)}
	}
	if !stream {
		b, err := io.ReadAll(resp.Body)
		if err == nil && !gjson.GetBytes(b, "choices.0.message.content").Exists() {
			err = fmt.Errorf("answer without content: %.200s", b)
		}
		return result{latency: time.Since(start), err: err}
	}
	return readStream(resp.Body, start)
}

// readStream reads an SSE answer to its [DONE], noting when the first
// content chunk arrived.
func readStream(r io.Reader, start time.Time) result {
	var res result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	done := false
	for sc.Scan() {
		line := sc.Bytes()
		data, ok := bytes.CutPrefix(line, []byte("data: "))
		if !ok {
			continue
		}
		if string(data) == "[DONE]" {
			done = true
			continue
		}
		if res.ttft == 0 && gjson.GetBytes(data, "choices.0.delta.content").Str != "" {
			res.ttft = time.Since(start)
		}
	}
	res.latency = time.Since(start)
	switch {
	case sc.Err() != nil:
		res.err = sc.Err()
	case !done:
		res.err = errors.New("stream ended without [DONE]")
	case res.ttft == 0:
		res.err = errors.New("stream without content")
	}
	return res
}

// openLoop sends rate requests a second for d, each at its scheduled time
// whatever the previous ones are doing (no coordinated omission: latency
// counts from the scheduled time).
func openLoop(ctx context.Context, c *http.Client, url string, h http.Header, bodies [][]byte, stream bool, rate int, d time.Duration) []result {
	n := int(d.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	out := make([]result, n)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range n {
		due := begin.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = call(ctx, c, url, h, bodies[i%len(bodies)], stream, due)
		}()
	}
	wg.Wait()
	return out
}

// closedLoop runs workers that each send the next request as soon as the
// previous one is answered, for d: the throughput at saturation.
func closedLoop(ctx context.Context, c *http.Client, url string, h http.Header, bodies [][]byte, workers int, d time.Duration) (ok, failed int64, rps float64, lat []result) {
	var okN, failN atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	begin := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []result
			for i := w; time.Now().Before(stop); i += workers {
				r := call(ctx, c, url, h, bodies[i%len(bodies)], false, time.Now())
				if r.err != nil {
					failN.Add(1)
				} else {
					okN.Add(1)
				}
				mine = append(mine, r)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(begin)
	return okN.Load(), failN.Load(), float64(okN.Load()) / el.Seconds(), lat
}

// streamsResult is the outcome of holding many streams open at once.
type streamsResult struct {
	ok, failed int
	maxOpen    int64 // most streams open (headers received, [DONE] not yet) at one time
	peakRSS    int64 // the server's highest RSS sampled meanwhile
	firstErr   error
	ramp       time.Duration // until the last stream was started
	length     time.Duration // median stream length
}

// perStream is the peak RSS per open stream, 0 when none was open.
func (m streamsResult) perStream() int64 {
	if m.maxOpen == 0 {
		return 0
	}
	return m.peakRSS / m.maxOpen
}

// manyStreams opens n streams (dialing at most ramp a second, so the
// listen backlog does not overflow), each a slow answer that outlasts the
// ramp, and samples the server's RSS while they are open.
func manyStreams(ctx context.Context, url string, h http.Header, bodies [][]byte, n, ramp int, s *server) streamsResult {
	var (
		res      streamsResult
		lengths  []time.Duration
		open     atomic.Int64
		maxOpen  atomic.Int64
		mu       sync.Mutex
		wg       sync.WaitGroup
		begin    = time.Now()
		stopPeak = make(chan struct{})
		peakOut  = make(chan int64)
	)
	go func() {
		var peak int64
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				peak = max(peak, s.rss())
			case <-stopPeak:
				peakOut <- max(peak, s.rss())
				return
			}
		}
	}()
	interval := time.Second / time.Duration(ramp)
	for i := range n {
		if w := time.Until(begin.Add(time.Duration(i) * interval)); w > 0 {
			time.Sleep(w)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := time.Now()
			err := oneStream(ctx, url, h, bodies[i%len(bodies)], func() {
				cur := open.Add(1)
				for m := maxOpen.Load(); cur > m && !maxOpen.CompareAndSwap(m, cur); m = maxOpen.Load() {
				}
			}, func() { open.Add(-1) })
			mu.Lock()
			defer mu.Unlock()
			lengths = append(lengths, time.Since(began))
			if err != nil {
				res.failed++
				if res.firstErr == nil {
					res.firstErr = err
				}
				return
			}
			res.ok++
		}()
	}
	res.ramp = time.Since(begin)
	wg.Wait()
	close(stopPeak)
	res.peakRSS = <-peakOut
	res.maxOpen = maxOpen.Load()
	res.length = quantile(lengths, 0.5)
	return res
}

// oneStream reads one streamed answer on a connection of its own, as a
// separate client would, calling opened when the headers arrive and
// closed when it ends.
func oneStream(ctx context.Context, url string, h http.Header, body []byte, opened, closed func()) error {
	tr := &http.Transport{DisableKeepAlives: true, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Minute}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = h.Clone()
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	opened()
	defer closed()
	return readStream(resp.Body, time.Now()).err
}
