// Command retrievalbench measures the gateway's knowledge retrieval on a
// labelled multi-turn dataset (DSTC11 track 5 layout: knowledge.json,
// <split>_logs.json, <split>_labels.json). Every knowledge-seeking
// dialogue becomes the chat request a client would send (the customer's
// turns as user messages, the agent's as assistant messages); the
// policy's context section grounds it against a local_index built from
// knowledge.json exactly as the gateway would, and the [docN] order of
// what would be injected is scored: recall@1/3/5 (a right document among
// the first k), MRR@10, and the time grounding takes per request.
//
//	go run ./cmd/retrievalbench -data ../shared/data/dstc11
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

func cli(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("retrievalbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.data, "data", "../shared/data/dstc11", "dataset directory")
	fs.StringVar(&o.split, "split", "dev", "dataset split: reads <split>_logs.json and <split>_labels.json")
	fs.StringVar(&o.policy, "policy", "cmd/retrievalbench/testdata/policy.yaml", "policy file whose context section grounds the dialogues")
	fs.StringVar(&o.index, "index", "cmd/retrievalbench/testdata/index.caddyfile", "Caddyfile local_index block ({data} and {index_dir} are replaced)")
	fs.StringVar(&o.indexDir, "index-dir", "", "snapshot directory (default: a temporary one)")
	fs.IntVar(&o.limit, "limit", 0, "dialogues to run (0: all)")
	fs.BoolVar(&o.noWarm, "no-warmup", false, "time the first pass (term neighbours and token counts computed on first use)")
	fs.IntVar(&o.misses, "misses", 0, "list this many queries whose first right document is not in the top 3")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	r, err := run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(stderr, "retrievalbench:", err)
		return 1
	}
	fmt.Fprint(stdout, r)
	for _, m := range r.Misses {
		fmt.Fprintln(stdout, "miss", m)
	}
	return 0
}
