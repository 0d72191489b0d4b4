package memory

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groundgate/groundgate/budgets"
)

func benchCharges(team string) []budgets.Charge {
	return []budgets.Charge{
		{Limit: budgets.Limit{Key: "tpm:team:" + team, Window: budgets.Minute, Max: 1 << 50}, N: 500},
		{Limit: budgets.Limit{Key: "rpm:team:" + team, Window: budgets.Minute, Max: 1 << 50}, N: 1},
		{Limit: budgets.Limit{Key: "tpd:team:" + team, Window: budgets.Day, Max: 1 << 50, Quota: true}, N: 500},
	}
}

// BenchmarkReserveSettle is one request's budget work in process: a
// reservation against three limits (tokens and requests per minute,
// tokens per day), then its settle.
func BenchmarkReserveSettle(b *testing.B) {
	s := New(time.Now)
	charges := benchCharges("support")
	actual := []int64{420, 1, 420}
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

// BenchmarkReserveSettleParallel: goroutines over 64 teams, so shards
// contend only when teams share one.
func BenchmarkReserveSettleParallel(b *testing.B) {
	s := New(time.Now)
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		charges := benchCharges(strconv.FormatInt(next.Add(1)%64, 10))
		actual := []int64{420, 1, 420}
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

// BenchmarkReserveSettleParallelOneKey: every goroutine on the same team,
// the worst case for the shard locks.
func BenchmarkReserveSettleParallelOneKey(b *testing.B) {
	s := New(time.Now)
	ctx := context.Background()
	charges := benchCharges("support")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		actual := []int64{420, 1, 420}
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
