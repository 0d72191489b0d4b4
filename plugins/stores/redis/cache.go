package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/groundgate/groundgate/budgets"
	"github.com/groundgate/groundgate/respcache"
)

// CacheGet reads a cached answer, so gateway instances share the response
// cache as they share budgets.
func (s *Store) CacheGet(ctx context.Context, key string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	val, err := s.client.Get(ctx, s.prefix+"cache:"+key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", budgets.ErrUnavailable, err)
	}
	return val, true, nil
}

// CacheSet stores a cached answer with its TTL.
func (s *Store) CacheSet(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.Set(ctx, s.prefix+"cache:"+key, val, ttl).Err(); err != nil {
		return fmt.Errorf("%w: %v", budgets.ErrUnavailable, err)
	}
	return nil
}

var _ respcache.Store = (*Store)(nil)
