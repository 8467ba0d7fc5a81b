package throttle

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-auth/gatehouse/internal/ephemeral"
	"github.com/gatehouse-auth/gatehouse/internal/ephemeral/ephemeraltest"
)

// benchRule never refuses within a benchmark: every decision does the
// full read-modify-write.
var benchRule = Rule{Limit: 1 << 40, Window: time.Hour}

// BenchmarkLimiter measures decisions per second (ns/op; run with
// -cpu to vary parallelism) of each limiter, on a key set like a busy
// server's: many distinct keys, spread over goroutines.
func BenchmarkLimiter(b *testing.B) {
	ls := map[string]Limiter{"memory": NewMemory(nil, DefaultMemoryKeys)}
	if ephemeraltest.RedisURLIsSet() {
		r := ephemeraltest.NewRedis(b)
		client, prefix := r.Client()
		ephemeraltest.CleanupPrefix(b, ephemeraltest.RedisURL(b), "rate:"+prefix)
		ls["redis"] = NewRedis(client, prefix)
	}
	for _, name := range []string{"memory", "redis"} {
		lim, ok := ls[name]
		if !ok {
			continue
		}
		b.Run(name, func(b *testing.B) {
			var seq atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					key := "bench:" + strconv.FormatInt(seq.Add(1)%10_000, 10)
					if _, err := lim.Allow(ctx, key, benchRule); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkSignInGuards is the work the limits add to one password
// sign-in (the per-IP GCRA decision, the account and pair reservations,
// and the refund of a right password), on each backend; compare it with
// the password hash (BenchmarkVerify in package password) of the same run.
func BenchmarkSignInGuards(b *testing.B) {
	type backend struct {
		lim Limiter
		eph ephemeral.Store
	}
	bs := map[string]backend{"memory": {NewMemory(nil, DefaultMemoryKeys), ephemeral.NewMemory(nil)}}
	if ephemeraltest.RedisURLIsSet() {
		r := ephemeraltest.NewRedis(b)
		client, prefix := r.Client()
		ephemeraltest.CleanupPrefix(b, ephemeraltest.RedisURL(b), "rate:"+prefix)
		bs["redis"] = backend{NewRedis(client, prefix), r}
	}
	for _, name := range []string{"memory", "redis"} {
		be, ok := bs[name]
		if !ok {
			continue
		}
		b.Run(name, func(b *testing.B) {
			th := New(map[string]Rule{"login_ip": benchRule}, be.lim, be.lim, quiet())
			acct := &Backoff{After: NoDelay, Window: time.Hour, Primary: be.eph, Log: quiet()}
			pair := &Backoff{After: 3, Base: time.Second, Cap: time.Minute, Window: time.Hour, Primary: be.eph, Log: quiet()}
			ctx := context.Background()
			b.ResetTimer()
			for i := range b.N {
				id := strconv.Itoa(i % 1000)
				if th.Attempt(ctx, Key{Class: "login_ip", ID: "192.0.2." + id}).Wait > 0 {
					b.Fatal("refused")
				}
				acct.Reserve(ctx, "user"+id+"@example.com|unfamiliar")
				pair.Reserve(ctx, "user"+id+"@example.com|192.0.2."+id)
				acct.Reset(ctx, "user"+id+"@example.com|unfamiliar", "user"+id+"@example.com|known")
				pair.Reset(ctx, "user"+id+"@example.com|192.0.2."+id)
			}
		})
	}
}
