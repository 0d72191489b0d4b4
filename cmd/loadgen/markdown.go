package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// runInfo is what the Markdown table's first line says about the run.
type runInfo struct {
	when time.Time
	args []string // the command line's flags
	cpus int
}

// writeMarkdownFile writes the Markdown table to path.
func (r *report) writeMarkdownFile(path string, o options, info runInfo) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r.markdown(f, o, info)
	return f.Close()
}

// markdown writes the side-by-side results as the table of the README's
// "Speed" section, with the line that dates the run, so the README's
// table is pasted from one run.
func (r *report) markdown(w io.Writer, o options, info runInfo) {
	fmt.Fprintf(w, "Run of %s, groundgate commit %s", info.when.UTC().Format("2006-01-02 15:04 UTC"), r.revision)
	if r.beforeRevision != "" {
		fmt.Fprintf(w, " (before: commit %s)", r.beforeRevision)
	}
	fmt.Fprintf(w, "; `loadgen %s`; %d CPUs shared by the load generator and every server; HTTP/1.1 over loopback; each phase in %d rounds that take the targets in turn.\n\n",
		strings.Join(shownArgs(info.args), " "), info.cpus, o.rounds)

	d, rp := r.index(kindDirect), r.index(kindProxy)
	row := func(label string, cell func(i int, t target) string) {
		fmt.Fprint(w, strings.TrimSuffix("| "+label, " ")+" |")
		for i, t := range r.targets {
			if c := cell(i, t); c != "" {
				fmt.Fprintf(w, " %s |", c)
			} else {
				fmt.Fprint(w, " |")
			}
		}
		fmt.Fprintln(w)
	}
	row("", func(_ int, t target) string { return heading(t) })
	fmt.Fprintf(w, "|---|%s\n", strings.Repeat("---|", len(r.targets)))
	for n, p := range r.rates {
		added := func(i int, t target) string {
			if t.kind == kindDirect {
				return ""
			}
			return mdMS(p.s[i].p50-p.s[d].p50) + " / " + mdMS(p.s[i].p99-p.s[d].p99) + " ms"
		}
		name := thousands(int64(p.rate)) + " req/s"
		if n == 0 {
			row(name+" p50 / p99", func(i int, _ target) string { return mdMS(p.s[i].p50) + " / " + mdMS(p.s[i].p99) + " ms" })
			row("added over direct, p50 / p99", added)
			continue
		}
		row(name+" added p50 / p99", added)
	}
	row(r.sat.name, func(i int, t target) string {
		s := thousands(int64(r.rps[i]+0.5)) + " req/s"
		if t.kind != kindDirect && t.kind != kindProxy {
			s += fmt.Sprintf(" (%.0f%%)", 100*r.rps[i]/r.rps[rp])
		}
		return s
	})
	row("CPU per request at saturation (server + simulator + load generator)", func(i int, t target) string {
		u := r.sat.cpu[i]
		server := fmt.Sprint(u.server.Microseconds())
		if t.kind == kindDirect {
			server = "–" // the simulator is the server
		}
		return fmt.Sprintf("%s + %d + %d µs", server, u.simulator.Microseconds(), u.loadgen.Microseconds())
	})
	row(r.stream.name+", time to first token added p50", func(i int, t target) string {
		if t.kind == kindDirect {
			return ""
		}
		return mdMS(r.stream.s[i].ttft50-r.stream.s[d].ttft50) + " ms"
	})
	if len(r.many) > 0 {
		row(thousands(int64(o.streams))+" concurrent streams, peak RSS", func(i int, t target) string {
			if t.kind == kindDirect {
				return ""
			}
			m := r.many[i]
			return fmt.Sprintf("%s (%d KB/stream)", mb(m.peakRSS), m.perStream()>>10)
		})
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, r.failures())
}

// shownArgs are the flags as the table's first line shows them: without
// the machine's paths, which say nothing of the measure (-before and
// -policy keep the file's name, -peer its kind) and without the flags
// that only choose where output goes (-markdown, -pprof, -keep).
func shownArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		name, val, hasVal := strings.Cut(args[i], "=")
		flag := strings.TrimLeft(name, "-")
		switch flag {
		case "keep":
			continue
		case "markdown", "pprof", "before", "policy", "questions", "peer":
		default:
			out = append(out, args[i])
			continue
		}
		if !hasVal && i+1 < len(args) {
			i++
			val = args[i]
		}
		switch flag {
		case "markdown", "pprof":
			continue
		case "peer":
			val, _, _ = strings.Cut(val, "=")
		default:
			val = filepath.Base(val)
		}
		out = append(out, name, val)
	}
	return out
}

// heading is a target's column heading in the Markdown table.
func heading(t target) string {
	switch t.kind {
	case kindDirect:
		return "direct"
	case kindProxy:
		return "`reverse_proxy`"
	case kindGateway:
		return "Groundgate"
	case kindBefore:
		return "Groundgate (before)"
	}
	r, n := utf8.DecodeRuneInString(t.name)
	return string(unicode.ToUpper(r)) + t.name[n:]
}

// failures says which requests failed, by phase and target, or that none
// did.
func (r *report) failures() string {
	var out []string
	note := func(phase string, i, failed, n int) {
		if failed > 0 {
			out = append(out, fmt.Sprintf("%s: %d of %d on %s", phase, failed, failed+n, r.targets[i].name))
		}
	}
	for _, p := range append(append([]phase{}, r.rates...), r.sat, r.stream) {
		for i, s := range p.s {
			note(p.name, i, s.failed, s.n)
		}
	}
	for i, m := range r.many {
		note("concurrent streams", i, m.failed, m.ok)
	}
	if len(out) == 0 {
		return "No request failed in any phase."
	}
	return "Failed requests: " + strings.Join(out, "; ") + "."
}

// mdMS is a duration in milliseconds to two decimals, or one from 10 ms.
func mdMS(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	if v >= 10 || v <= -10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// thousands writes n with commas between groups of three digits.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
