package throttle

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Redis is the shared [Limiter]: redis_rate's GCRA script, one round trip
// per decision, atomic in Redis and timed by Redis's clock, so replicas
// with skewed clocks still agree. Keys are "rate:" + prefix + key.
type Redis struct {
	limiter *redis_rate.Limiter
	prefix  string
}

// NewRedis returns a limiter on client, with keys under prefix.
func NewRedis(client *redis.Client, prefix string) *Redis {
	return &Redis{limiter: redis_rate.NewLimiter(client), prefix: prefix}
}

// Allow implements [Limiter].
func (r *Redis) Allow(ctx context.Context, key string, rule Rule) (Result, error) {
	res, err := r.limiter.Allow(ctx, r.prefix+key, redis_rate.Limit{Rate: int(rule.Limit), Burst: int(rule.Limit), Period: rule.Window})
	if err != nil {
		return Result{}, fmt.Errorf("throttle: redis: %w", err)
	}
	out := Result{Allowed: res.Allowed > 0, Remaining: int64(res.Remaining), ResetAfter: max(res.ResetAfter, 0)}
	if !out.Allowed {
		out.RetryAfter = max(res.RetryAfter, time.Millisecond)
	}
	return out, nil
}

// Reset implements [Limiter].
func (r *Redis) Reset(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if err := r.limiter.Reset(ctx, r.prefix+k); err != nil {
			return fmt.Errorf("throttle: redis reset: %w", err)
		}
	}
	return nil
}
