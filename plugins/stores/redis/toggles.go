package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/groundgate/groundgate/budgets"
	"github.com/groundgate/groundgate/toggles"
)

// The feature-toggle overlay: one document, its version and its change
// log, under one hash tag so that a Redis Cluster keeps them on one slot.
func (s *Store) toggleKeys() []string {
	p := s.prefix + "toggles:{t}:"
	return []string{p + "doc", p + "version", p + "log"}
}

// toggleSwapScript saves the document if the version is unchanged.
// KEYS: doc, version, log. ARGV[1] the version read, ARGV[2] the document,
// ARGV[3] the log length kept, ARGV[4..] log entries (oldest first).
// Returns {1, new version} or {0, current version}.
var toggleSwapScript = goredis.NewScript(`
local v = tonumber(redis.call('GET', KEYS[2]) or '0')
if v ~= tonumber(ARGV[1]) then return {0, v} end
redis.call('SET', KEYS[1], ARGV[2])
v = redis.call('INCR', KEYS[2])
for i = 4, #ARGV do redis.call('LPUSH', KEYS[3], ARGV[i]) end
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[3]) - 1)
return {1, v}
`)

// ToggleLoad implements toggles.Store.
func (s *Store) ToggleLoad(ctx context.Context) ([]byte, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	k := s.toggleKeys()
	vals, err := s.client.MGet(ctx, k[0], k[1]).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", budgets.ErrUnavailable, err)
	}
	var doc []byte
	var ver int64
	if d, ok := vals[0].(string); ok {
		doc = []byte(d)
	}
	if v, ok := vals[1].(string); ok {
		if ver, err = strconv.ParseInt(v, 10, 64); err != nil {
			return nil, 0, fmt.Errorf("redis: toggle version %q: %v", v, err)
		}
	}
	return doc, ver, nil
}

// ToggleSwap implements toggles.Store.
func (s *Store) ToggleSwap(ctx context.Context, version int64, doc []byte, log [][]byte) (int64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	args := make([]any, 0, 3+len(log))
	args = append(args, version, doc, toggles.MaxLog)
	for _, l := range log {
		args = append(args, l)
	}
	res, err := toggleSwapScript.Run(ctx, s.client, s.toggleKeys(), args...).Int64Slice()
	if err != nil {
		return 0, false, fmt.Errorf("%w: %v", budgets.ErrUnavailable, err)
	}
	if len(res) != 2 {
		return 0, false, errors.New("redis: unexpected toggle script reply")
	}
	return res[1], res[0] == 1, nil
}

// ToggleLog implements toggles.Store.
func (s *Store) ToggleLog(ctx context.Context, limit int) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	vals, err := s.client.LRange(ctx, s.toggleKeys()[2], 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", budgets.ErrUnavailable, err)
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		out[i] = []byte(v)
	}
	return out, nil
}

var _ toggles.Store = (*Store)(nil)
