package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// phase is one row group: each target's summary and its server's peak RSS.
type phase struct {
	name string
	rate int // requests a second, for the fixed rates
	s    []summary
	rss  []int64
	cpu  []cpuUse
}

type report struct {
	targets []target
	rates   []phase
	sat     phase
	rps     []float64
	stream  phase
	many    []streamsResult // by target; none for direct
	profile *profileResult  // nil without -pprof
	// the commits of this build and of the -before binary ("" for none)
	revision, beforeRevision string
}

// index is the position of the first target of kind k, -1 for none.
func (r *report) index(k targetKind) int {
	for i, t := range r.targets {
		if t.kind == k {
			return i
		}
	}
	return -1
}

// Targets as the product states them, checked on the first rate (200
// req/s by default).
const (
	targetAddedP50  = 300 * time.Microsecond
	targetAddedP99  = 1500 * time.Microsecond
	targetThruRatio = 0.70
	targetTTFTAdded = time.Millisecond
	// What Groundgate may hold per concurrent stream above plain
	// reverse_proxy's peak RSS for the same streams (300 MB for 5,000).
	targetStreamAdded = 60 << 10
	// The absolute peak RSS once stated for 5,000 streams: reported, not
	// checked, since reverse_proxy alone needs more on this setup.
	statedStreamRSS = 300 << 20
)

func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }

func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/(1<<20)) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// print writes the side-by-side table and the targets; it returns how
// many were missed.
func (r *report) print(out io.Writer, o options, files uint64) int {
	fmt.Fprintf(out, "groundgate: commit %s", r.revision)
	if r.beforeRevision != "" {
		fmt.Fprintf(out, "; groundgate (before): %s, commit %s", o.before, r.beforeRevision)
	}
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "\t")
	for _, t := range r.targets {
		fmt.Fprintf(w, "%s\t", t.name)
	}
	fmt.Fprintln(w)
	errs := func(p phase) {
		fmt.Fprintf(w, "  ok / failed\t")
		for _, s := range p.s {
			fmt.Fprintf(w, "%d / %d\t", s.n, s.failed)
		}
		fmt.Fprintln(w)
	}
	latency := func(p phase) {
		fmt.Fprintf(w, "%s p50 / p99 ms\t", p.name)
		for _, s := range p.s {
			fmt.Fprintf(w, "%s / %s\t", ms(s.p50), ms(s.p99))
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  added over direct ms\t\t")
		for _, s := range p.s[1:] {
			fmt.Fprintf(w, "%s / %s\t", ms(s.p50-p.s[0].p50), ms(s.p99-p.s[0].p99))
		}
		fmt.Fprintln(w)
		errs(p)
		if p.cpu != nil {
			fmt.Fprintf(w, "  CPU µs/request: server + simulator + loadgen\t")
			for _, u := range p.cpu {
				fmt.Fprintf(w, "%s\t", u)
			}
			fmt.Fprintln(w)
		}
		if p.rss != nil {
			fmt.Fprintf(w, "  peak RSS\t")
			for _, b := range p.rss {
				fmt.Fprintf(w, "%s\t", mb(b))
			}
			fmt.Fprintln(w)
		}
	}
	for _, p := range r.rates {
		latency(p)
	}
	fmt.Fprintf(w, "%s req/s\t", r.sat.name)
	for _, v := range r.rps {
		fmt.Fprintf(w, "%.0f\t", v)
	}
	fmt.Fprintln(w)
	latency(r.sat)
	fmt.Fprintf(w, "%s TTFT p50 / p99 ms\t", r.stream.name)
	for _, s := range r.stream.s {
		fmt.Fprintf(w, "%s / %s\t", ms(s.ttft50), ms(s.ttft99))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  TTFT added over direct ms\t\t")
	for _, s := range r.stream.s[1:] {
		fmt.Fprintf(w, "%s / %s\t", ms(s.ttft50-r.stream.s[0].ttft50), ms(s.ttft99-r.stream.s[0].ttft99))
	}
	fmt.Fprintln(w)
	errs(r.stream)
	if len(r.many) > 0 {
		row := func(label string, cell func(m streamsResult) string) {
			fmt.Fprintf(w, "%s\t", label)
			for i, m := range r.many {
				if r.targets[i].kind == kindDirect {
					fmt.Fprintf(w, "-\t")
					continue
				}
				fmt.Fprintf(w, "%s\t", cell(m))
			}
			fmt.Fprintln(w)
		}
		row(fmt.Sprintf("%d concurrent streams: peak RSS", o.streams), func(m streamsResult) string { return mb(m.peakRSS) })
		row("  most open at once", func(m streamsResult) string { return fmt.Sprint(m.maxOpen) })
		row("  ok / failed", func(m streamsResult) string { return fmt.Sprintf("%d / %d", m.ok, m.failed) })
		row("  ramp / stream length s", func(m streamsResult) string {
			return fmt.Sprintf("%.1f / %.1f", m.ramp.Seconds(), m.length.Seconds())
		})
		row("  RSS per open stream", func(m streamsResult) string { return fmt.Sprintf("%d KB", m.perStream()>>10) })
	}
	w.Flush()

	for _, p := range append(append([]phase{}, r.rates...), r.sat, r.stream) {
		for i, s := range p.s {
			if s.firstErr != nil {
				fmt.Fprintf(out, "first failure, %s on %s: %v\n", p.name, r.targets[i].name, s.firstErr)
			}
		}
	}
	for i, m := range r.many {
		if m.firstErr != nil {
			fmt.Fprintf(out, "first failure, concurrent streams on %s: %v\n", r.targets[i].name, m.firstErr)
		}
	}
	if p := r.profile; p != nil {
		fmt.Fprintf(out, "profile phase (after the measured ones): groundgate alone at saturation, %d clients, %v: %.0f req/s, %d ok / %d failed,\n",
			o.workers, p.d, p.rps, p.ok, p.fail)
		fmt.Fprintf(out, "  CPU µs/request %s (server + simulator + load generator), profiler running; CPU profile %s and allocations %s of its first %v\n",
			p.cpu, p.cpuPath, p.allocs, p.window)
	}

	// The targets, on groundgate against direct and reverse_proxy.
	d, rp, g := r.index(kindDirect), r.index(kindProxy), r.index(kindGateway)
	missed := 0
	check := func(ok bool, format string, args ...any) {
		if !ok {
			missed++
		}
		fmt.Fprintf(out, "%-7s "+format+"\n", append([]any{verdict(ok)}, args...)...)
	}
	fmt.Fprintln(out)
	if len(r.rates) > 0 {
		p := r.rates[0]
		a50, a99 := p.s[g].p50-p.s[d].p50, p.s[g].p99-p.s[d].p99
		check(a50 <= targetAddedP50 && p.s[g].failed == 0, "added p50 at %s: %s ms (target ≤ %s)", p.name, ms(a50), ms(targetAddedP50))
		check(a99 <= targetAddedP99 && p.s[g].failed == 0, "added p99 at %s: %s ms (target ≤ %s)", p.name, ms(a99), ms(targetAddedP99))
	}
	ratio := r.rps[g] / r.rps[rp]
	check(ratio >= targetThruRatio && r.sat.s[g].failed == 0, "throughput: %.0f%% of reverse_proxy (target ≥ %.0f%%)", 100*ratio, 100*targetThruRatio)
	t50 := r.stream.s[g].ttft50 - r.stream.s[d].ttft50
	check(t50 <= targetTTFTAdded && r.stream.s[g].failed == 0, "TTFT added p50: %s ms (target ≤ %s)", ms(t50), ms(targetTTFTAdded))
	if len(r.many) > 0 {
		m, base := r.many[g], r.many[rp]
		added := (m.peakRSS - base.peakRSS) / int64(max(1, o.streams))
		check(added <= targetStreamAdded && m.failed == 0 && m.maxOpen >= int64(o.streams),
			"%d concurrent streams: %d KB per stream above reverse_proxy's peak RSS (%s against %s), %d open at once (target ≤ %d KB)",
			o.streams, added>>10, mb(m.peakRSS), mb(base.peakRSS), m.maxOpen, targetStreamAdded>>10)
		fmt.Fprintf(out, "%-7s %d concurrent streams: %s peak RSS in all, against the %s once stated for 5,000 (reported, not a target)\n",
			"note", o.streams, mb(m.peakRSS), mb(statedStreamRSS))
	}
	fmt.Fprintf(out, "open files limit %d; all processes share this machine's cores\n", files)
	return missed
}
