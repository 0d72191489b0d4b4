// Command loadgen measures Groundgate side by side with plain Caddy.
//
// It starts, as child processes of its own binary (which embeds Caddy with
// the standard modules and Groundgate's), the Azure OpenAI simulator with
// instant answers, plain `reverse_proxy` to it, and Groundgate as the demo
// runs it: the demo's default policy file (meta prompt, a case record and
// three knowledge chunks, token counting and budgets, PII redaction in and
// out, prompt-injection checks, citations and record links), the audit
// record, the access log and metrics (reverse_proxy gets the same log and
// metrics). Optionally an older build of itself (-before) and another
// gateway as a pass-through peer (-peer). It then drives the same requests
// at each of them and at the simulator directly, and prints, side by side:
// latency at fixed rates (open loop) and what each adds over the direct
// call, CPU per request of each server, the simulator and the load
// generator, throughput at saturation, time to first token of streams,
// peak RSS, and the RSS of thousands of concurrent streams; with -pprof,
// a profile phase after the measured ones; with -markdown, the README's
// table.
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
	"runtime"
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
	profileDur time.Duration
	questions  string
	policy     string
	before     string // an older loadgen binary, for a before/after column
	peer       peerSpec
	markdown   string   // file for the README's table
	args       []string // the flags as given
	tokens     int      // tokens of each slow stream (2 a second)
	rounds     int      // rounds of each rate and saturation phase
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
	fs.StringVar(&o.policy, "policy", demoPolicy, "the policy file the gateway serves (the demo's default policy)")
	fs.StringVar(&o.markdown, "markdown", "", "also write the results to this file as the Markdown table of the README's \"Speed\" section, with the run's date and commit")
	fs.Var(&o.peer, "peer", "portkey=DIR: adds a column for the Portkey AI gateway installed in DIR (scripts/peer-portkey.sh install), a pass-through peer without grounding, pointed at the simulator")
	fs.StringVar(&o.before, "before", "", "a loadgen binary built from an older commit: adds a column \"groundgate (before)\" it serves with the same configuration, in the same rounds (targets are checked on this build)")
	fs.StringVar(&o.pprof, "pprof", "", "write the gateway's heap profile (concurrent streams) and, from a profile phase after the measured ones, its CPU and allocation profiles at saturation, to this directory")
	fs.DurationVar(&o.profileDur, "profile-duration", 20*time.Second, "length of the profile phase (-pprof): the gateway alone at saturation, profiled for all of it but the last second")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.args = args
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
	case o.profileDur < 2*time.Second:
		return o, fmt.Errorf("-profile-duration must be at least 2s")
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
	c, err := startCluster(self, o)
	if err != nil {
		return 0, err
	}
	defer c.cleanup(o.keep)
	defer c.stop()
	if o.keep {
		fmt.Fprintf(out, "run directory: %s\n", c.dir)
	}
	b := &bench{
		o: o, c: c, ts: targets(c), client: newClient(4 * o.workers),
		body:       chatBodies("gpt-4o", false, "", questions),
		streamBody: chatBodies("gpt-4o", true, "", questions),
		slowBody:   slowBodies(o, questions),
	}
	// Every target must answer before anything is measured.
	for _, t := range b.ts {
		r := call(ctx, b.client, t.url, t.header, b.body[0], false, time.Now())
		if r.err != nil {
			return 0, fmt.Errorf("%s does not answer: %v", t.name, r.err)
		}
		if r = call(ctx, b.client, t.url, t.header, b.streamBody[0], true, time.Now()); r.err != nil {
			return 0, fmt.Errorf("%s does not stream: %v", t.name, r.err)
		}
	}
	// Warm up connection pools, caches and the heap.
	for _, t := range b.ts {
		closedLoop(ctx, b.client, t.url, t.header, b.body, o.workers, min(2*time.Second, o.duration))
	}

	rep := &report{targets: b.ts, revision: selfRevision()}
	if o.before != "" {
		rep.beforeRevision = fileRevision(o.before)
	}
	for _, rate := range o.rates {
		row, err := b.ratePhase(ctx, rate)
		if err != nil {
			return 0, err
		}
		rep.rates = append(rep.rates, row)
	}
	if rep.sat, rep.rps, err = b.saturationPhase(ctx); err != nil {
		return 0, err
	}
	if rep.stream, err = b.streamPhase(ctx); err != nil {
		return 0, err
	}
	if o.streams > 0 {
		if rep.many, err = b.manyStreamsPhase(ctx); err != nil {
			return 0, err
		}
	}
	if o.pprof != "" {
		p, err := b.profilePhase(ctx)
		if err != nil {
			return 0, err
		}
		rep.profile = &p
	}
	missed := rep.print(out, o, files)
	if o.markdown != "" {
		if err := rep.writeMarkdownFile(o.markdown, o, runInfo{when: time.Now(), args: o.args, cpus: runtime.NumCPU()}); err != nil {
			return missed, fmt.Errorf("-markdown: %v", err)
		}
		fmt.Fprintf(out, "Markdown table: %s\n", o.markdown)
	}
	return missed, nil
}
