package redis

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groundgate/groundgate/budgets"
)

// BenchmarkReserveSettle is one request's round trips to a local Redis:
// a reservation against a tokens-per-minute and a requests-per-minute
// limit, then its settle.
func BenchmarkReserveSettle(b *testing.B) {
	srv := startRedis(b)
	s := newTestStore(b, srv.addr(), "bench:", time.Now, time.Second)
	charges := []budgets.Charge{
		{Limit: budgets.Limit{Key: "tpm:team:support", Window: budgets.Minute, Max: 1 << 50}, N: 500},
		{Limit: budgets.Limit{Key: "rpm:team:support", Window: budgets.Minute, Max: 1 << 50}, N: 1},
	}
	actual := []int64{420, 1}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r, _, err := s.Reserve(ctx, charges)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Settle(ctx, r, actual); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReserveSettleParallel spreads requests over 64 teams from
// parallel goroutines sharing one client.
func BenchmarkReserveSettleParallel(b *testing.B) {
	srv := startRedis(b)
	s := newTestStore(b, srv.addr(), "bench:", time.Now, time.Second)
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		team := strconv.FormatInt(next.Add(1)%64, 10)
		charges := []budgets.Charge{
			{Limit: budgets.Limit{Key: "tpm:team:" + team, Window: budgets.Minute, Max: 1 << 50}, N: 500},
			{Limit: budgets.Limit{Key: "tpd:team:" + team, Window: budgets.Day, Max: 1 << 50, Quota: true}, N: 500},
		}
		actual := []int64{420, 420}
		for pb.Next() {
			r, _, err := s.Reserve(ctx, charges)
			if err != nil {
				b.Error(err)
				return
			}
			if err := s.Settle(ctx, r, actual); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
