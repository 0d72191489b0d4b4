// Command auditgen writes a realistic audit database for the admin
// console's analytics: interactions of several teams, features and models
// over a span of days, in the SQLite table the audit sink writes, then
// opens it for analytics (rollups and indexes built once).
//
//	go run ./cmd/auditgen -db /tmp/audit.db -rows 1000000 -days 90
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/groundgate/groundgate/analytics"
	"github.com/groundgate/groundgate/analytics/auditgen"
)

func main() {
	db := flag.String("db", "audit.db", "SQLite file to write (appended to if it exists)")
	table := flag.String("table", "audit", "audit table name")
	rows := flag.Int("rows", 1000000, "interactions to write")
	days := flag.Int("days", 90, "days the interactions span, ending now")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	ctx := context.Background()
	start := time.Now()
	err := auditgen.Generate(ctx, auditgen.Options{Path: *db, Table: *table, Rows: *rows, Days: *days, Seed: *seed,
		Progress: func(n int) {
			if n%100000 == 0 || n == *rows {
				fmt.Fprintf(os.Stderr, "auditgen: %d rows (%s)\n", n, time.Since(start).Round(time.Second))
			}
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "auditgen:", err)
		os.Exit(1)
	}
	t := time.Now()
	a, err := analytics.Open(ctx, *db, *table)
	if err != nil {
		fmt.Fprintln(os.Stderr, "auditgen:", err)
		os.Exit(1)
	}
	a.Close()
	fmt.Fprintf(os.Stderr, "auditgen: analytics rollups and indexes ready (%s)\n", time.Since(t).Round(time.Millisecond))
}
