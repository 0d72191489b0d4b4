package redis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// Each operation is one Lua script, so it runs atomically on the Redis
// server: no other client sees or changes the counters half-way. Scripts
// are sent with EVALSHA and, after a NOSCRIPT (a restarted or flushed
// server), once with EVAL (go-redis Script.Run).
//
// Counters are plain string keys holding integers, one per limit and
// bucket: <prefix><limit key>:<window>:<bucket start, Unix seconds>.
// The bucket is computed by the gateway (its clock, UTC calendar), so the
// scripts do no date arithmetic and every store shares budgets.Counter's
// rules; Redis only counts, atomically.

// reserveScript admits all charges or none.
//
// KEYS[2i-1] is charge i's current bucket, KEYS[2i] its previous bucket
// (the same key for a fixed window, whose previous bucket never counts).
// ARGV[5(i-1)+1 .. 5(i-1)+5] are n, max, num, den, ttl: the units asked,
// the limit, the previous bucket's weight num/den in milliseconds (0/1
// for a fixed window) and the lifetime in milliseconds of the current
// bucket's key if this call creates it.
//
// The usage is cur + ceil(prev*num/den) (computed as budgets.Counter does); charges to the same key in one
// call add up; a charge fits when usage < max and usage + n <= max
// (budgets.Counter.Admits).
//
// Returns {1, cur1, prev1, cur2, prev2, ...} after charging, or
// {0, i, cur1, prev1, ...} as found when charge i (the first) did not fit.
var reserveScript = newScript(`
local nc = #KEYS / 2
local cur, prev, asked = {}, {}, {}
local failed = 0
for i = 1, nc do
  local ck, pk = KEYS[2*i-1], KEYS[2*i]
  local a = 5 * (i - 1)
  local n, max = tonumber(ARGV[a+1]), tonumber(ARGV[a+2])
  local num, den = tonumber(ARGV[a+3]), tonumber(ARGV[a+4])
  local c = tonumber(redis.call('GET', ck) or '0')
  local p = 0
  if num > 0 and pk ~= ck then
    p = tonumber(redis.call('GET', pk) or '0')
  end
  cur[i], prev[i] = c, p
  local used = c
  if p > 0 and num > 0 then
    -- ceil(p*num/den), exact in doubles for p up to budgets.MaxUnits
    local q = math.floor(p / den)
    used = used + q * num + math.floor(((p - q * den) * num + den - 1) / den)
  end
  local total = (asked[ck] or 0) + n
  asked[ck] = total
  if failed == 0 and not (used < max and used + total <= max) then
    failed = i
  end
end
local out
if failed > 0 then
  out = {0, failed}
  for i = 1, nc do
    out[#out+1] = cur[i]
    out[#out+1] = prev[i]
  end
  return out
end
local final = {}
for i = 1, nc do
  local ck = KEYS[2*i-1]
  local n = tonumber(ARGV[5*(i-1)+1])
  if n > 0 then
    local v = redis.call('INCRBY', ck, n)
    if v == n then
      redis.call('PEXPIRE', ck, ARGV[5*(i-1)+5])
    end
    final[ck] = v
  end
end
out = {1}
for i = 1, nc do
  out[#out+1] = final[KEYS[2*i-1]] or cur[i]
  out[#out+1] = prev[i]
end
return out
`)

// settleScript adds corrections to the buckets the reservation was made
// in. KEYS[i] is a bucket, ARGV[i] its correction. A bucket that has
// expired is not recreated (its window no longer counts), and a counter
// never goes below zero. Returns the number of corrections applied.
var settleScript = newScript(`
local applied = 0
for i = 1, #KEYS do
  local d = tonumber(ARGV[i])
  if d ~= 0 and redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], d) < 0 then
      redis.call('SET', KEYS[i], 0, 'KEEPTTL')
    end
    applied = applied + 1
  end
end
return applied
`)

// scriptCmd is a script call that go-redis never retries: a cluster
// client otherwise resends a command after a network error or a read
// timeout, when the first one may already have run. Redirections (MOVED,
// ASK, READONLY after a failover) are still followed: the command did not
// run on the node that sent them.
type scriptCmd struct{ *goredis.Cmd }

// NoRetry implements goredis.Cmder.
func (scriptCmd) NoRetry() bool { return true }

// script is a Lua script and its SHA-1, the name EVALSHA knows it by.
type script struct{ src, hash string }

func newScript(src string) *script {
	sum := sha1.Sum([]byte(src))
	return &script{src: src, hash: hex.EncodeToString(sum[:])}
}

// runScript runs sc with EVALSHA and, after NOSCRIPT (a new, restarted or
// flushed node, such as a replica just promoted), once with EVAL.
func runScript(ctx context.Context, c goredis.UniversalClient, sc *script, keys []string, args []any) *goredis.Cmd {
	cmd := evalCmd(ctx, "evalsha", sc.hash, keys, args)
	_ = c.Process(ctx, cmd)
	if err := cmd.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		cmd = evalCmd(ctx, "eval", sc.src, keys, args)
		_ = c.Process(ctx, cmd)
	}
	return cmd.Cmd
}

func evalCmd(ctx context.Context, name, script string, keys []string, args []any) scriptCmd {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, name, script, len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	a = append(a, args...)
	return scriptCmd{goredis.NewCmd(ctx, a...)}
}
