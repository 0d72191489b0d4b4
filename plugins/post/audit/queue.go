package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/groundgate/groundgate/post"
)

// sink stores audit records. Only the queue's one worker goroutine calls
// it, so implementations need no locking.
type sink interface {
	// write stores recs in order. It returns how many it stored (a
	// prefix of recs) and, when that is not all of them, why: a
	// *permanentError means recs[n] can never be stored (it is skipped);
	// a *retryAfterError says when to try again; anything else is retried
	// with backoff.
	write(ctx context.Context, recs []*post.Interaction) (n int, err error)
	close() error
}

// permanentError marks a record a sink can never store (it cannot be
// encoded, or the sink rejects it as invalid): retrying would only block
// the records behind it.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// retryAfterError is a transient failure with the time the sink asked us
// to wait (HTTP 429/503 Retry-After).
type retryAfterError struct {
	after time.Duration
	err   error
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// maxRetryAfter caps a Retry-After the worker honours.
const maxRetryAfter = 10 * time.Minute

// Stats counts what happened to the records offered to a queue.
type Stats struct {
	Enqueued int64 // accepted into the queue
	Written  int64 // stored by the sink
	Dropped  int64 // refused: the queue was full (or closed)
	Failed   int64 // rejected by the sink for good (permanent errors)
	Lost     int64 // still queued or unwritten when the drain deadline passed
	Retries  int64 // failed sink writes that were retried
}

// queueOptions configure a queue.
type queueOptions struct {
	size, batch        int
	retryMin, retryMax time.Duration
	drain              time.Duration
}

// queue is a bounded in-memory queue in front of a sink, drained by one
// worker goroutine with retry. It is shared by every config that uses the
// same sink settings (sinkPool) and closed, drained, when the last one is
// cleaned up.
type queue struct {
	kind   string
	sink   sink
	opts   queueOptions
	logger *zap.Logger

	mu     sync.RWMutex // write-held only to close ch
	closed bool
	ch     chan *post.Interaction

	stop    context.Context // cancelled when the drain deadline passes
	cancel  context.CancelFunc
	done    chan struct{} // closed when the worker has exited
	destroy sync.Once

	enqueued, written, dropped, failed, lost, retries atomic.Int64
	lastDropLog, lastRetryLog                         atomic.Int64 // unix nanos

	mWritten, mDropped, mFailed, mLost, mRetries prometheus.Counter
	mLength                                      prometheus.Gauge
}

func newQueue(kind string, s sink, opts queueOptions, logger *zap.Logger) *queue {
	if logger == nil {
		logger = zap.NewNop()
	}
	q := &queue{
		kind: kind, sink: s, opts: opts, logger: logger,
		ch:   make(chan *post.Interaction, opts.size),
		done: make(chan struct{}),

		mWritten: recordsTotal.WithLabelValues(kind, "written"),
		mDropped: recordsTotal.WithLabelValues(kind, "dropped"),
		mFailed:  recordsTotal.WithLabelValues(kind, "failed"),
		mLost:    recordsTotal.WithLabelValues(kind, "lost"),
		mRetries: retriesTotal.WithLabelValues(kind),
		mLength:  queueLength.WithLabelValues(kind),
	}
	q.stop, q.cancel = context.WithCancel(context.Background())
	go q.run()
	return q
}

// enqueue offers a record without blocking; false when it was dropped.
func (q *queue) enqueue(in *post.Interaction) bool {
	q.mu.RLock()
	if q.closed {
		q.mu.RUnlock()
		q.drop("the audit sink is closed")
		return false
	}
	select {
	case q.ch <- in:
		q.mu.RUnlock()
		q.enqueued.Add(1)
		return true
	default:
		q.mu.RUnlock()
		q.drop("the audit queue is full")
		return false
	}
}

// drop counts a dropped record and logs, at most every 10 seconds.
func (q *queue) drop(why string) {
	n := q.dropped.Add(1)
	q.mDropped.Inc()
	if q.due(&q.lastDropLog) {
		q.logger.Warn("audit record dropped", zap.String("sink", q.kind), zap.String("reason", why),
			zap.Int64("dropped_total", n), zap.Int("queue_size", q.opts.size))
	}
}

// due reports whether 10 seconds have passed since *last, and if so
// moves *last to now.
func (q *queue) due(last *atomic.Int64) bool {
	now := time.Now().UnixNano()
	l := last.Load()
	return now-l >= int64(10*time.Second) && last.CompareAndSwap(l, now)
}

func (q *queue) run() {
	defer close(q.done)
	batch := make([]*post.Interaction, 0, q.opts.batch)
	for {
		in, ok := <-q.ch
		if !ok {
			q.mLength.Set(0)
			return
		}
		batch = append(batch[:0], in)
	fill:
		for len(batch) < q.opts.batch {
			select {
			case in, ok := <-q.ch:
				if !ok {
					break fill
				}
				batch = append(batch, in)
			default:
				break fill
			}
		}
		q.flush(batch)
		clear(batch)
		q.mLength.Set(float64(len(q.ch)))
	}
}

// flush writes one batch, retrying transient failures with exponential
// backoff (or the sink's Retry-After) until it is written or the drain
// deadline passes.
func (q *queue) flush(batch []*post.Interaction) {
	delay := q.opts.retryMin
	for len(batch) > 0 {
		if q.stop.Err() != nil {
			q.loseAll(len(batch))
			return
		}
		n, err := q.sink.write(q.stop, batch)
		if n > 0 {
			q.written.Add(int64(n))
			q.mWritten.Add(float64(n))
			batch = batch[n:]
			delay = q.opts.retryMin
		}
		if err == nil {
			if len(batch) > 0 { // a sink broke its contract; do not spin
				err = fmt.Errorf("sink stored %d of %d records without an error", n, n+len(batch))
			} else {
				return
			}
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			q.failed.Add(1)
			q.mFailed.Inc()
			q.logger.Error("audit record rejected by the sink; skipped",
				zap.String("sink", q.kind), zap.String("request_id", batch[0].RequestID), zap.Error(err))
			batch = batch[1:]
			continue
		}
		if q.stop.Err() != nil {
			q.loseAll(len(batch))
			return
		}
		q.retries.Add(1)
		q.mRetries.Inc()
		wait := delay
		var ra *retryAfterError
		if errors.As(err, &ra) && ra.after > 0 {
			wait = min(ra.after, maxRetryAfter)
		} else {
			delay = min(2*delay, q.opts.retryMax)
		}
		if q.due(&q.lastRetryLog) {
			q.logger.Warn("audit sink write failed; retrying", zap.String("sink", q.kind),
				zap.Int("records", len(batch)), zap.Duration("retry_in", wait), zap.Error(err))
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-q.stop.Done():
			t.Stop()
		}
	}
}

func (q *queue) loseAll(n int) {
	q.lost.Add(int64(n))
	q.mLost.Add(float64(n))
}

// Destruct implements caddy.Destructor: it stops taking records, drains
// the queue into the sink for up to the drain timeout, then gives up on
// what is left (counted as lost and logged) and closes the sink.
func (q *queue) Destruct() error {
	var err error
	q.destroy.Do(func() { err = q.close() })
	return err
}

func (q *queue) close() error {
	q.mu.Lock()
	q.closed = true
	close(q.ch)
	q.mu.Unlock()

	t := time.NewTimer(q.opts.drain)
	defer t.Stop()
	select {
	case <-q.done:
	case <-t.C:
		q.cancel()
		// The worker counts what is left as lost; give a sink that
		// ignores cancellation a moment, then leave it.
		select {
		case <-q.done:
		case <-time.After(2 * time.Second):
			q.logger.Error("audit sink did not stop after the drain deadline; leaving it", zap.String("sink", q.kind))
			return errors.New("audit: sink did not stop")
		}
	}
	q.cancel()
	if n := q.lost.Load(); n > 0 {
		q.logger.Error("audit records lost: the drain deadline passed", zap.String("sink", q.kind),
			zap.Int64("lost", n), zap.Duration("drain_timeout", q.opts.drain))
	}
	return q.sink.close()
}

// stats returns the counters.
func (q *queue) stats() Stats {
	return Stats{
		Enqueued: q.enqueued.Load(), Written: q.written.Load(), Dropped: q.dropped.Load(),
		Failed: q.failed.Load(), Lost: q.lost.Load(), Retries: q.retries.Load(),
	}
}
