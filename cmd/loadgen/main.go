// Command loadgen measures Groundgate side by side with plain Caddy.
//
// It starts, as child processes of its own binary (which embeds Caddy with
// the standard modules and Groundgate's), the Azure OpenAI simulator with
// instant answers, plain `reverse_proxy` to it, and Groundgate with the
// full demo policy (meta prompt, a case record and three knowledge chunks,
// token counting and budgets, PII redaction in and out, prompt-injection
// checks, citations, the audit record). It then drives the same requests
// at each of them and at the simulator directly, and prints, side by side:
// latency at fixed rates (open loop) and what each adds over the direct
// call, throughput at saturation, time to first token of streams, peak RSS,
// and the RSS of thousands of concurrent streams.
//
//	go run ./cmd/loadgen                  # the whole run, a few minutes
//	go run ./cmd/loadgen -duration 3s -streams 500
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/groundgate/groundgate"
)

func main() {
	if os.Getenv(roleEnv) == "caddy" {
		caddycmd.Main()
		return
	}
	os.Exit(run(os.Args[1:], os.Stdout))
}

// options are the run's flags.
type options struct {
	rates      []int
	duration   time.Duration
	workers    int
	streamRate int
	streams    int
	ramp       int
	keep       bool
	check      bool
	pprof      string
	questions  string
	tokens     int // tokens of each slow stream (2 a second)
	rounds     int // rounds of each rate and saturation phase
}

func parseFlags(args []string, errOut io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(errOut)
	rates := fs.String("rates", "200,1000", "fixed request rates (req/s, comma-separated), open loop, non-streamed")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each phase on each target")
	fs.IntVar(&o.workers, "workers", 32, "concurrent clients at saturation (closed loop)")
	fs.IntVar(&o.streamRate, "stream-rate", 200, "rate of streamed requests for time to first token (req/s)")
	fs.IntVar(&o.streams, "streams", 5000, "concurrent slow streams held open at once (0: skip)")
	fs.IntVar(&o.ramp, "ramp", 1000, "streams opened per second while ramping up")
	fs.IntVar(&o.tokens, "stream-tokens", 40, "tokens of each concurrent slow stream, sent 2 a second")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds that take the targets in turn in each rate and saturation phase (-duration in all)")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's directory (configs, server logs, audit file)")
	fs.BoolVar(&o.check, "check", false, "exit 1 when a target is missed")
	fs.StringVar(&o.questions, "questions", "sampledata/eval/questions.json", "the questions the requests ask, in turn")
	fs.StringVar(&o.pprof, "pprof", "", "write the gateway's CPU and allocation profiles (saturation) and heap profile (streams) to this directory")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, f := range strings.Split(*rates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r <= 0 {
			return o, fmt.Errorf("-rates: %q is not a positive integer", f)
		}
		o.rates = append(o.rates, r)
	}
	switch {
	case o.duration <= 0:
		return o, fmt.Errorf("-duration must be positive")
	case o.workers <= 0 || o.streamRate <= 0 || o.ramp <= 0 || o.streams < 0 || o.tokens <= 0 || o.rounds <= 0:
		return o, fmt.Errorf("-workers, -stream-rate, -ramp, -stream-tokens and -rounds must be positive, -streams not negative")
	}
	return o, nil
}

func run(args []string, out io.Writer) int {
	o, err := parseFlags(args, os.Stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	missed, err := measure(ctx, self, o, out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 1
	}
	if o.check && missed > 0 {
		return 1
	}
	return 0
}

// measure starts the servers, runs every phase and prints the report. It
// returns how many targets were missed.
func measure(ctx context.Context, self string, o options, out io.Writer) (int, error) {
	questions, err := loadQuestions(o.questions)
	if err != nil {
		return 0, err
	}
	files := raiseFileLimit()
	c, err := startCluster(self, o.pprof != "")
	if err != nil {
		return 0, err
	}
	defer c.cleanup(o.keep)
	defer c.stop()
	if o.keep {
		fmt.Fprintf(out, "run directory: %s\n", c.dir)
	}
	ts := targets(c.p)
	servers := []*server{c.sim, c.proxy, c.gateway} // serving each target
	client := newClient(4 * o.workers)
	body := chatBodies("gpt-4o", false, "", questions)
	streamBody := chatBodies("gpt-4o", true, "", questions)

	// Every target must answer before anything is measured.
	for _, t := range ts {
		r := call(ctx, client, t.url, t.header, body[0], false, time.Now())
		if r.err != nil {
			return 0, fmt.Errorf("%s does not answer: %v", t.name, r.err)
		}
		if r = call(ctx, client, t.url, t.header, streamBody[0], true, time.Now()); r.err != nil {
			return 0, fmt.Errorf("%s does not stream: %v", t.name, r.err)
		}
	}
	// Warm up connection pools, caches and the heap.
	for _, t := range ts {
		closedLoop(ctx, client, t.url, t.header, body, o.workers, min(2*time.Second, o.duration))
	}

	rep := &report{targets: ts}
	// Each phase but the concurrent streams runs in rounds that take the
	// targets in turn, so a slow
	// spell of the machine falls on all of them alike: latencies are
	// pooled over the rounds, throughput is the median round's.
	slice := o.duration / time.Duration(o.rounds)
	for _, rate := range o.rates {
		row := phase{name: fmt.Sprintf("%d req/s", rate)}
		rs := make([][]result, len(ts))
		cpu := make([]cpuUse, len(ts))
		peak := make([]int64, len(ts))
		for range o.rounds {
			for i, t := range ts {
				servers[i].resetPeakRSS()
				meter := c.cpuMeter(servers[i])
				r := openLoop(ctx, client, t.url, t.header, body, false, rate, slice)
				rs[i] = append(rs[i], r...)
				cpu[i] = cpu[i].add(meter(len(r)), o.rounds)
				peak[i] = max(peak[i], servers[i].peakRSS())
			}
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
		}
		for i := range ts {
			row.s = append(row.s, summarize(rs[i]))
		}
		row.rss, row.cpu = peak, cpu
		rep.rates = append(rep.rates, row)
	}
	satLat := make([][]result, len(ts))
	satOK, satFailed := make([]int, len(ts)), make([]int, len(ts))
	satRPS := make([][]float64, len(ts))
	rep.sat.cpu = make([]cpuUse, len(ts))
	rep.sat.rss = make([]int64, len(ts))
	for round := range o.rounds {
		for i, t := range ts {
			servers[i].resetPeakRSS()
			var prof <-chan error
			if t.name == "groundgate" && o.pprof != "" && round == 0 {
				prof = c.profile(ctx, "profile?seconds="+strconv.Itoa(max(1, int(slice.Seconds())-1)), filepath.Join(o.pprof, "gateway.cpu.pprof"))
			}
			meter := c.cpuMeter(servers[i])
			ok, failed, rps, lat := closedLoop(ctx, client, t.url, t.header, body, o.workers, slice)
			rep.sat.cpu[i] = rep.sat.cpu[i].add(meter(int(ok+failed)), o.rounds)
			satLat[i] = append(satLat[i], lat...)
			satOK[i] += int(ok)
			satFailed[i] += int(failed)
			satRPS[i] = append(satRPS[i], rps)
			rep.sat.rss[i] = max(rep.sat.rss[i], servers[i].peakRSS())
			if prof != nil {
				if err := <-prof; err != nil {
					return 0, fmt.Errorf("CPU profile: %v", err)
				}
				// every allocation since the start, mostly this phase's
				if err := <-c.profile(ctx, "allocs", filepath.Join(o.pprof, "gateway.allocs.pprof")); err != nil {
					return 0, fmt.Errorf("allocs profile: %v", err)
				}
			}
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	for i := range ts {
		s := summarize(satLat[i])
		s.n, s.failed = satOK[i], satFailed[i]
		rep.sat.s = append(rep.sat.s, s)
		rep.rps = append(rep.rps, median(satRPS[i]))
	}
	rep.stream.name = fmt.Sprintf("streams %d req/s", o.streamRate)
	streamRS := make([][]result, len(ts))
	for range o.rounds {
		for i, t := range ts {
			streamRS[i] = append(streamRS[i], openLoop(ctx, client, t.url, t.header, streamBody, true, o.streamRate, slice)...)
		}
	}
	for i := range ts {
		rep.stream.s = append(rep.stream.s, summarize(streamRS[i]))
	}
	if o.streams > 0 {
		// By default 40 tokens at 2 a second: each stream lasts 20 s,
		// longer than the ramp (5,000 at 1,000 a second), at 10,000 events
		// a second in all.
		slow := chatBodies("gpt-4o-slow", true, "[[sim:tokens="+strconv.Itoa(o.tokens)+"]] ", questions)
		for i, t := range ts[1:] {
			servers[i+1].resetPeakRSS()
			var prof, vars <-chan error
			if t.name == "groundgate" && o.pprof != "" {
				// ten seconds after the last stream opened: all are open
				at := time.Duration(o.streams)*time.Second/time.Duration(o.ramp) + 10*time.Second
				prof = c.profileAfter(ctx, at, "heap", filepath.Join(o.pprof, "gateway.heap.pprof"))
				// Go's memory statistics (stacks, heap in use, released)
				vars = c.fetchAfter(ctx, at, "/debug/vars", filepath.Join(o.pprof, "gateway.vars.json"))
			}
			r := manyStreams(ctx, t.slowURL, t.header, slow, o.streams, o.ramp, servers[i+1])
			if prof != nil {
				if err := <-prof; err != nil {
					return 0, fmt.Errorf("heap profile: %v", err)
				}
			}
			if vars != nil {
				if err := <-vars; err != nil {
					return 0, fmt.Errorf("runtime memory statistics: %v", err)
				}
			}
			r.peakRSS = max(r.peakRSS, servers[i+1].peakRSS())
			rep.many = append(rep.many, r)
		}
	}
	missed := rep.print(out, o, files)
	return missed, nil
}
