// Package redis is Groundgate's shared budget store, the Caddy module
// llm_gateway.stores.redis: several gateway instances behind a load
// balancer count against the same budgets in one Redis server.
//
// Reserve and Settle are each one Lua script, atomic on the server, over
// one key per limit and bucket (see scripts.go); keys expire slightly
// after their window stops counting. The gateway's clock picks the
// buckets, so instances should keep their clocks in sync (NTP); a skew
// of d moves bucket boundaries by d and never makes a reservation less
// atomic.
//
// Redis 6.0 or newer: standalone, Redis Cluster or a primary watched by
// Sentinel (go-redis's universal client). A reservation touches several
// keys in one script, which Redis Cluster allows only within one hash
// slot: every budget key carries the hash tag {budgets}, so all counters
// live on one shard (and fail over with it), while cache entries spread
// over the cluster.
//
// When Redis cannot be reached, does not answer within the timeout, or
// fails a script, Reserve, Settle and Release return an error wrapping
// budgets.ErrUnavailable; the gateway's policy decides whether to fail
// open or closed. Commands are never retried: a reservation applied twice
// would overcharge.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/budgets"
)

func init() {
	caddy.RegisterModule(new(Store))
	goredis.SetLogger(redisLog{})
}

const (
	defaultAddress     = "127.0.0.1:6379"
	defaultPrefix      = "gg:"
	defaultTimeout     = 250 * time.Millisecond
	defaultDialTimeout = time.Second

	// keyGrace keeps a bucket's key this long after its window stops
	// counting, for settles of requests that ran across the boundary and
	// for clock skew between gateway instances.
	keyGrace = time.Minute
)

// clients shares go-redis clients (and so their connection pools) across
// config reloads, keyed by the connection settings.
var clients = caddy.NewUsagePool()

// Modes of connecting to Redis.
const (
	modeStandalone = "standalone"
	modeCluster    = "cluster"
	modeSentinel   = "sentinel"
)

// clientKey is the identity of a shared client: every setting that
// changes the connection. The key prefix is not one of them.
type clientKey struct {
	mode                 string
	addrs                string // comma-separated
	masterName           string
	username, password   string
	sentinelPassword     string
	db                   int
	tls                  bool
	timeout, dialTimeout time.Duration
	poolSize             int
}

type sharedClient struct{ goredis.UniversalClient }

// Destruct closes the client when the last config using it is cleaned up.
func (c sharedClient) Destruct() error { return c.Close() }

// Store is a budget store in Redis, shared by every gateway instance that
// points at the same server, database and prefix.
type Store struct {
	// Address of the Redis server, host:port. Placeholders such as
	// {env.REDIS_ADDR} are resolved at provision time.
	// Default: 127.0.0.1:6379.
	Address string `json:"address,omitempty"`

	// Addresses are more host:port addresses, used with Address: seed
	// nodes of a Redis Cluster (any reachable node finds the others), or
	// the Sentinels watching the primary. Placeholders are resolved at
	// provision time.
	Addresses []string `json:"addresses,omitempty"`

	// Mode is how the addresses are used: standalone (one server),
	// cluster (Redis Cluster, following MOVED and ASK redirections and
	// failovers) or sentinel (the primary named by master_name, asked of
	// the Sentinels at the addresses). Default: sentinel when
	// master_name is set, else standalone.
	Mode string `json:"mode,omitempty"`

	// MasterName is the name of the primary the Sentinels monitor
	// (sentinel mode only).
	MasterName string `json:"master_name,omitempty"`

	// SentinelPassword authenticates to the Sentinels themselves (their
	// requirepass), when they have one; Username and Password are for
	// the data nodes. Use a placeholder such as {env.SENTINEL_PASSWORD}.
	SentinelPassword string `json:"sentinel_password,omitempty"`

	// Username for Redis ACL authentication (AUTH username password).
	// Placeholders are resolved at provision time. Default: none, which
	// authenticates as the default user when a password is set.
	Username string `json:"username,omitempty"`

	// Password for AUTH. Use a placeholder such as {env.REDIS_PASSWORD}
	// rather than the secret itself; it is resolved at provision time and
	// never logged.
	Password string `json:"password,omitempty"`

	// Database number to SELECT. Default: 0. Redis Cluster has only 0.
	DB int `json:"db,omitempty"`

	// Prefix of every key this store writes, so several deployments or
	// environments can share one server. Placeholders are resolved at
	// provision time. Default: "gg:".
	Prefix string `json:"prefix,omitempty"`

	// Longest time one store operation (a reservation, a settle) may take,
	// waiting for a pooled connection included; also the socket read and
	// write timeout. Past it the operation fails with
	// budgets.ErrUnavailable. Default: 250ms.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Timeout for establishing a connection in the background. A
	// connection dialled for a request is also bound by Timeout.
	// Default: 1s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	// Number of pooled connections. Default: go-redis's, 10 per CPU.
	PoolSize int `json:"pool_size,omitempty"`

	// Connect with TLS (for example Azure Cache for Redis on port 6380),
	// verifying the server's certificate against the system roots for
	// the address's host name.
	TLS bool `json:"tls,omitempty"`

	client  goredis.UniversalClient
	key     clientKey
	prefix  string
	timeout time.Duration
	now     func() time.Time
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "llm_gateway.stores.redis",
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision resolves placeholders, applies defaults and loads the shared
// client for these connection settings (creating it if needed). It does
// not fail when Redis is down: that is for each request's policy to
// decide; it logs a warning instead.
func (s *Store) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	if err := s.Validate(); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	key := clientKey{
		mode:             s.Mode,
		masterName:       repl.ReplaceKnown(s.MasterName, ""),
		username:         repl.ReplaceKnown(s.Username, ""),
		password:         repl.ReplaceKnown(s.Password, ""),
		sentinelPassword: repl.ReplaceKnown(s.SentinelPassword, ""),
		db:               s.DB,
		tls:              s.TLS,
		timeout:          time.Duration(s.Timeout),
		dialTimeout:      time.Duration(s.DialTimeout),
		poolSize:         s.PoolSize,
	}
	addrs, err := s.addresses(repl)
	if err != nil {
		return err
	}
	key.addrs = strings.Join(addrs, ",")
	if key.mode == "" {
		key.mode = modeStandalone
		if key.masterName != "" {
			key.mode = modeSentinel
		}
	}
	switch {
	case key.mode == modeSentinel && key.masterName == "":
		return fmt.Errorf("redis store: mode sentinel needs master_name")
	case key.mode != modeSentinel && key.masterName != "":
		return fmt.Errorf("redis store: master_name is for mode sentinel, not %s", key.mode)
	case key.mode == modeStandalone && len(addrs) > 1:
		return fmt.Errorf("redis store: %d addresses need mode cluster or sentinel", len(addrs))
	case key.mode == modeCluster && key.db != 0:
		return fmt.Errorf("redis store: Redis Cluster has only db 0, not %d", key.db)
	}
	if key.timeout == 0 {
		key.timeout = defaultTimeout
	}
	if key.dialTimeout == 0 {
		key.dialTimeout = defaultDialTimeout
	}
	s.prefix = defaultPrefix
	if s.Prefix != "" {
		s.prefix = repl.ReplaceKnown(s.Prefix, "")
	}
	if strings.ContainsAny(s.prefix, "{}") {
		return fmt.Errorf("redis store: prefix %q must not contain braces (they would change the keys' hash slot)", s.prefix)
	}
	v, _, err := clients.LoadOrNew(key, func() (caddy.Destructor, error) {
		return sharedClient{newClient(key)}, nil
	})
	if err != nil {
		return err
	}
	s.key, s.client, s.timeout = key, v.(sharedClient).UniversalClient, key.timeout
	if s.now == nil {
		s.now = time.Now
	}
	pctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.Ping(pctx).Err(); err != nil {
		s.logger.Warn("redis budget store not reachable yet; budgets will follow each policy's fail-open or fail-closed choice",
			zap.String("mode", key.mode), zap.String("address", key.addrs), zap.Int("db", key.db), zap.Error(err))
	}
	return nil
}

// addresses resolves Address and Addresses, checking each is host:port.
func (s *Store) addresses(repl *caddy.Replacer) ([]string, error) {
	var out []string
	for _, a := range append([]string{s.Address}, s.Addresses...) {
		a = repl.ReplaceKnown(a, "")
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("redis store: address %q: %v", a, err)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		out = []string{defaultAddress}
	}
	return out, nil
}

// newClient returns a go-redis client for the settings: a plain client,
// a cluster client or a Sentinel-backed failover client. Commands are not
// retried (a reservation applied twice would overcharge; scripts run as
// scriptCmd, which a cluster client does not retry either, though it
// follows MOVED and ASK, which mean the command did not run), dials are
// tried once, and the caller's context deadline bounds every command.
func newClient(k clientKey) goredis.UniversalClient {
	opts := &goredis.UniversalOptions{
		Addrs:                 strings.Split(k.addrs, ","),
		MasterName:            k.masterName,
		Username:              k.username,
		Password:              k.password,
		SentinelPassword:      k.sentinelPassword,
		DB:                    k.db,
		DialTimeout:           k.dialTimeout,
		ReadTimeout:           k.timeout,
		WriteTimeout:          k.timeout,
		ContextTimeoutEnabled: true,
		PoolTimeout:           k.timeout,
		PoolSize:              k.poolSize,
		MaxRetries:            -1,
		DialerRetries:         1,
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}
	if k.tls {
		host, _, _ := net.SplitHostPort(opts.Addrs[0])
		opts.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	switch k.mode {
	case modeCluster:
		return goredis.NewClusterClient(opts.Cluster())
	case modeSentinel:
		return goredis.NewFailoverClient(opts.Failover())
	}
	return goredis.NewClient(opts.Simple())
}

// Validate checks the configuration.
func (s *Store) Validate() error {
	switch s.Mode {
	case "", modeStandalone, modeCluster, modeSentinel:
	default:
		return fmt.Errorf("redis store: mode must be standalone, cluster or sentinel, not %q", s.Mode)
	}
	switch {
	case s.DB < 0:
		return fmt.Errorf("redis store: negative db %d", s.DB)
	case s.PoolSize < 0:
		return fmt.Errorf("redis store: negative pool_size %d", s.PoolSize)
	case s.Timeout < 0:
		return fmt.Errorf("redis store: negative timeout %v", time.Duration(s.Timeout))
	case s.DialTimeout < 0:
		return fmt.Errorf("redis store: negative dial_timeout %v", time.Duration(s.DialTimeout))
	}
	return nil
}

// Cleanup drops this config's reference to the shared client; the last
// reference closes it. A config that only changed the prefix or nothing
// keeps the same client and its connections.
func (s *Store) Cleanup() error {
	if s.client == nil {
		return nil
	}
	_, err := clients.Delete(s.key)
	return err
}

// budgetTag is the hash tag of every budget key: Redis Cluster hashes
// only the text between the braces, so all counters share one slot and a
// reservation may touch any of them in one script. (One request's limits,
// per key, team, policy and global, are shared with other requests' in
// any combination: no finer grouping keeps every script in one slot.)
const budgetTag = "{budgets}"

// bucketKey returns the Redis key of a limit's bucket starting at start.
func bucketKey(prefix string, l *budgets.Limit, start time.Time) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(budgetTag) + len(l.Key) + len(l.Window) + 14)
	b.WriteString(prefix)
	b.WriteString(budgetTag)
	b.WriteString(l.Key)
	b.WriteByte(':')
	b.WriteString(string(l.Window))
	b.WriteByte(':')
	var num [20]byte
	b.Write(strconv.AppendInt(num[:0], start.Unix(), 10))
	return b.String()
}

func (s *Store) unavailable(op string, err error) error {
	return fmt.Errorf("%w: redis %s %s: %w", budgets.ErrUnavailable, s.key.addrs, op, err)
}

// Reserve implements budgets.Store with one script: it reads every
// limit's buckets, and charges all or nothing.
func (s *Store) Reserve(ctx context.Context, charges []budgets.Charge) (*budgets.Reservation, []budgets.Status, error) {
	if err := budgets.ValidateCharges(charges); err != nil {
		return nil, nil, err
	}
	now := s.now()
	if len(charges) == 0 {
		return &budgets.Reservation{At: now}, nil, nil
	}
	keys := make([]string, 0, 2*len(charges))
	args := make([]any, 0, 5*len(charges))
	counters := make([]budgets.Counter, len(charges))
	for i := range charges {
		l := &charges[i].Limit
		start, end := l.Window.Bucket(now)
		c := budgets.Counter{Window: l.Window, Elapsed: now.Sub(start), Length: end.Sub(start)}
		counters[i] = c
		cur, prev := bucketKey(s.prefix, l, start), ""
		ttl := end.Sub(now) + keyGrace
		if l.Window.Sliding() {
			prev = bucketKey(s.prefix, l, start.Add(-c.Length))
			ttl += c.Length // it counts as the previous bucket for one more
		} else {
			prev = cur
		}
		num, den := c.PrevWeight()
		keys = append(keys, cur, prev)
		args = append(args, charges[i].N, l.Max, num, den, ttl.Milliseconds())
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	vals, err := runScript(ctx, s.client, reserveScript, keys, args).Int64Slice()
	if err != nil {
		return nil, nil, s.unavailable("reserve", err)
	}
	n := len(charges)
	switch {
	case len(vals) == 1+2*n && vals[0] == 1:
		statuses := make([]budgets.Status, n)
		for i := range charges {
			counters[i].Cur, counters[i].Prev = vals[1+2*i], vals[2+2*i]
			statuses[i] = counters[i].Status(charges[i].Limit)
		}
		return &budgets.Reservation{Charges: append([]budgets.Charge(nil), charges...), At: now}, statuses, nil
	case len(vals) == 2+2*n && vals[0] == 0 && vals[1] >= 1 && vals[1] <= int64(n):
		for i := range charges {
			counters[i].Cur, counters[i].Prev = vals[2+2*i], vals[3+2*i]
		}
		d := budgets.Check(charges, counters)
		if d == nil {
			// The script is the authority; name the charge it refused.
			f := &charges[vals[1]-1]
			d = &budgets.Denied{Limit: f.Limit, RetryAfter: counters[vals[1]-1].Length}
			d.Status = make([]budgets.Status, n)
			for i := range charges {
				d.Status[i] = counters[i].Status(charges[i].Limit)
			}
		}
		return nil, d.Status, d
	}
	return nil, nil, s.unavailable("reserve", fmt.Errorf("unexpected script reply %v", vals))
}

// Settle implements budgets.Store with one script that corrects the
// buckets the reservation was made in. It runs even when ctx is already
// canceled (a client that went away still used the tokens), bounded by
// the store's timeout.
func (s *Store) Settle(ctx context.Context, r *budgets.Reservation, actual []int64) error {
	if r == nil {
		return errors.New("redis store: settle of a nil reservation")
	}
	deltas, err := r.Deltas(actual)
	if err != nil {
		return err
	}
	if !r.Finish() {
		return budgets.ErrFinished
	}
	return s.correct(ctx, "settle", r, deltas)
}

// Release implements budgets.Store: Settle with nothing used.
func (s *Store) Release(ctx context.Context, r *budgets.Reservation) error {
	if r == nil {
		return errors.New("redis store: release of a nil reservation")
	}
	if !r.Finish() {
		return budgets.ErrFinished
	}
	deltas := make([]int64, len(r.Charges))
	for i := range r.Charges {
		deltas[i] = -r.Charges[i].N
	}
	return s.correct(ctx, "release", r, deltas)
}

func (s *Store) correct(ctx context.Context, op string, r *budgets.Reservation, deltas []int64) error {
	var keys []string
	var args []any
	for i := range r.Charges {
		if deltas[i] == 0 {
			continue
		}
		l := &r.Charges[i].Limit
		start, _ := l.Window.Bucket(r.At)
		keys = append(keys, bucketKey(s.prefix, l, start))
		args = append(args, deltas[i])
	}
	if len(keys) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	if err := runScript(ctx, s.client, settleScript, keys, args).Err(); err != nil {
		return s.unavailable(op, err)
	}
	return nil
}

// redisLog sends go-redis's own messages (failed dials while Redis is
// down, one per attempt) to Caddy's log at debug level: the store's
// errors already reach the caller, which logs and counts them.
type redisLog struct{}

func (redisLog) Printf(_ context.Context, format string, v ...any) {
	caddy.Log().Named("redis").Debug(fmt.Sprintf(format, v...))
}

// Interface guards.
var (
	_ caddy.Module       = (*Store)(nil)
	_ caddy.Provisioner  = (*Store)(nil)
	_ caddy.Validator    = (*Store)(nil)
	_ caddy.CleanerUpper = (*Store)(nil)
	_ budgets.Store      = (*Store)(nil)
	_ caddy.Destructor   = sharedClient{}
)
