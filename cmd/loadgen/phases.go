package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"time"
)

// bench is what every phase needs: the servers, the targets and the
// requests.
type bench struct {
	o          options
	c          *cluster
	ts         []target
	client     *http.Client
	body       [][]byte // non-streamed requests, one per question
	streamBody [][]byte // the same, streamed
	slowBody   [][]byte // slow streams, for the concurrent streams
}

// ratePhase sends rate requests a second to each target in turn, in
// o.rounds rounds, so a slow spell of the machine falls on all of them
// alike; latencies are pooled over the rounds.
func (b *bench) ratePhase(ctx context.Context, rate int) (phase, error) {
	row := phase{name: fmt.Sprintf("%d req/s", rate), rate: rate}
	rs := make([][]result, len(b.ts))
	row.cpu = make([]cpuUse, len(b.ts))
	row.rss = make([]int64, len(b.ts))
	slice := b.o.duration / time.Duration(b.o.rounds)
	for range b.o.rounds {
		for i, t := range b.ts {
			t.srv.resetPeakRSS()
			meter := b.c.cpuMeter(t.srv)
			r := openLoop(ctx, b.client, t.url, t.header, b.body, false, rate, slice)
			rs[i] = append(rs[i], r...)
			row.cpu[i] = row.cpu[i].add(meter(len(r)), b.o.rounds)
			row.rss[i] = max(row.rss[i], t.srv.peakRSS())
		}
		if ctx.Err() != nil {
			return row, ctx.Err()
		}
	}
	for i := range b.ts {
		row.s = append(row.s, summarize(rs[i]))
	}
	return row, nil
}

// saturationPhase runs o.workers closed-loop clients at each target in
// turn, in rounds; throughput is the median round's.
func (b *bench) saturationPhase(ctx context.Context) (phase, []float64, error) {
	n := len(b.ts)
	row := phase{name: fmt.Sprintf("saturation (%d clients)", b.o.workers), cpu: make([]cpuUse, n), rss: make([]int64, n)}
	lat := make([][]result, n)
	ok, failed := make([]int, n), make([]int, n)
	rps := make([][]float64, n)
	slice := b.o.duration / time.Duration(b.o.rounds)
	for range b.o.rounds {
		for i, t := range b.ts {
			t.srv.resetPeakRSS()
			meter := b.c.cpuMeter(t.srv)
			k, f, r, l := closedLoop(ctx, b.client, t.url, t.header, b.body, b.o.workers, slice)
			row.cpu[i] = row.cpu[i].add(meter(int(k+f)), b.o.rounds)
			lat[i] = append(lat[i], l...)
			ok[i] += int(k)
			failed[i] += int(f)
			rps[i] = append(rps[i], r)
			row.rss[i] = max(row.rss[i], t.srv.peakRSS())
		}
		if ctx.Err() != nil {
			return row, nil, ctx.Err()
		}
	}
	med := make([]float64, n)
	for i := range b.ts {
		s := summarize(lat[i])
		s.n, s.failed = ok[i], failed[i]
		row.s = append(row.s, s)
		med[i] = median(rps[i])
	}
	return row, med, nil
}

// streamPhase sends streamed requests at o.streamRate to each target in
// turn, in rounds, for the time to first token.
func (b *bench) streamPhase(ctx context.Context) (phase, error) {
	row := phase{name: fmt.Sprintf("streams %d req/s", b.o.streamRate)}
	rs := make([][]result, len(b.ts))
	slice := b.o.duration / time.Duration(b.o.rounds)
	for range b.o.rounds {
		for i, t := range b.ts {
			rs[i] = append(rs[i], openLoop(ctx, b.client, t.url, t.header, b.streamBody, true, b.o.streamRate, slice)...)
		}
		if ctx.Err() != nil {
			return row, ctx.Err()
		}
	}
	for i := range b.ts {
		row.s = append(row.s, summarize(rs[i]))
	}
	return row, nil
}

// manyStreamsPhase holds o.streams slow streams open at once through each
// target but the direct one, in turn. By default 40 tokens at 2 a second:
// each stream lasts 20 s, longer than the ramp (5,000 at 1,000 a second),
// at 10,000 events a second in all.
func (b *bench) manyStreamsPhase(ctx context.Context) ([]streamsResult, error) {
	out := make([]streamsResult, len(b.ts))
	for i, t := range b.ts {
		if t.kind == kindDirect {
			continue
		}
		t.srv.resetPeakRSS()
		var prof, vars <-chan error
		if t.kind == kindGateway && b.o.pprof != "" {
			// ten seconds after the last stream opened: all are open
			at := time.Duration(b.o.streams)*time.Second/time.Duration(b.o.ramp) + 10*time.Second
			prof = b.c.profileAfter(ctx, at, "heap", filepath.Join(b.o.pprof, "gateway.heap.pprof"))
			// Go's memory statistics (stacks, heap in use, released)
			vars = b.c.fetchAfter(ctx, at, "/debug/vars", filepath.Join(b.o.pprof, "gateway.vars.json"))
		}
		r := manyStreams(ctx, t.slowURL, t.slowHeaders(), b.slowBody, b.o.streams, b.o.ramp, t.srv)
		if prof != nil {
			if err := <-prof; err != nil {
				return nil, fmt.Errorf("heap profile: %v", err)
			}
		}
		if vars != nil {
			if err := <-vars; err != nil {
				return nil, fmt.Errorf("runtime memory statistics: %v", err)
			}
		}
		r.peakRSS = max(r.peakRSS, t.srv.peakRSS())
		out[i] = r
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return out, nil
}

// slowBodies are the concurrent streams' requests: o.tokens tokens each,
// from the slow simulator (2 a second).
func slowBodies(o options, questions []string) [][]byte {
	return chatBodies("gpt-4o-slow", true, "[[sim:tokens="+strconv.Itoa(o.tokens)+"]] ", questions)
}

// profileResult is the profile phase's outcome: the gateway alone at
// saturation while its profiles were taken.
type profileResult struct {
	d        time.Duration // length of the phase
	window   time.Duration // what the profiles cover
	ok, fail int64
	rps      float64
	cpu      cpuUse
	cpuPath  string
	allocs   string
}

// profilePhase drives the gateway alone at saturation (the same clients
// and requests as the saturation phase) for o.profileDur, while fetching
// a CPU profile of the whole phase less a second and the allocations of
// the same window (a delta profile). It runs after every measured phase,
// so the profiler's cost falls on none of them, and it is long enough for
// the profile to hold thousands of samples.
func (b *bench) profilePhase(ctx context.Context) (profileResult, error) {
	var gw target
	for _, t := range b.ts {
		if t.kind == kindGateway {
			gw = t
		}
	}
	p := profileResult{
		d:       b.o.profileDur,
		window:  b.o.profileDur.Truncate(time.Second) - time.Second,
		cpuPath: filepath.Join(b.o.pprof, "gateway.cpu.pprof"),
		allocs:  filepath.Join(b.o.pprof, "gateway.allocs.pprof"),
	}
	secs := strconv.Itoa(int(p.window / time.Second))
	cpuProf := b.c.profile(ctx, "profile?seconds="+secs, p.cpuPath)
	allocProf := b.c.profile(ctx, "allocs?seconds="+secs, p.allocs)
	meter := b.c.cpuMeter(gw.srv)
	p.ok, p.fail, p.rps, _ = closedLoop(ctx, b.client, gw.url, gw.header, b.body, b.o.workers, p.d)
	p.cpu = meter(int(p.ok + p.fail))
	if err := <-cpuProf; err != nil {
		return p, fmt.Errorf("CPU profile: %v", err)
	}
	if err := <-allocProf; err != nil {
		return p, fmt.Errorf("allocation profile: %v", err)
	}
	return p, nil
}
