package main

import (
	"slices"
	"time"
)

// summary is the latency distribution of one phase on one target.
type summary struct {
	n, failed int
	p50, p99  time.Duration
	ttft50    time.Duration
	ttft99    time.Duration
	firstErr  error
}

func summarize(rs []result) summary {
	var s summary
	lat := make([]time.Duration, 0, len(rs))
	ttft := make([]time.Duration, 0, len(rs))
	for _, r := range rs {
		if r.err != nil {
			s.failed++
			if s.firstErr == nil {
				s.firstErr = r.err
			}
			continue
		}
		lat = append(lat, r.latency)
		if r.ttft > 0 {
			ttft = append(ttft, r.ttft)
		}
	}
	s.n = len(lat)
	s.p50, s.p99 = quantile(lat, 0.50), quantile(lat, 0.99)
	s.ttft50, s.ttft99 = quantile(ttft, 0.50), quantile(ttft, 0.99)
	return s
}

// quantile is the nearest-rank q-quantile of d (sorted in place); 0 for
// an empty slice.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(q*float64(len(d))+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}

// median is the median of v (the lower middle of an even count); 0 for
// none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
