package sqlstore

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// TestWriteRetriesDeadlock makes two PostgreSQL transactions take two locks
// in opposite orders. The server aborts one with deadlock_detected; write
// runs it again, and both succeed.
func TestWriteRetriesDeadlock(t *testing.T) {
	dsn := os.Getenv("CUSTOS_TEST_POSTGRES") // sqltest.EnvPostgres; sqltest imports this package
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CUSTOS_TEST_POSTGRES must be set in CI: this test needs PostgreSQL")
		}
		t.Skip("CUSTOS_TEST_POSTGRES is not set")
	}
	ctx := context.Background()
	// No migrations: the test needs advisory locks only, no tables.
	db, err := openPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.log = slog.New(slog.DiscardHandler)

	a, b := rand.Int64(), rand.Int64()
	var attempts atomic.Int32
	var bothHoldFirst sync.WaitGroup
	bothHoldFirst.Add(2)
	lockBoth := func(first, second int64) error {
		var once sync.Once
		return db.write(ctx, func(ctx context.Context, r runner) error {
			attempts.Add(1)
			if _, err := r.tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, first); err != nil {
				return dbErr("lock first", err)
			}
			once.Do(func() { // only the first attempt waits for the other
				bothHoldFirst.Done()
				bothHoldFirst.Wait()
			})
			_, err := r.tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, second)
			return dbErr("lock second", err)
		})
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = lockBoth(a, b) })
	wg.Go(func() { errs[1] = lockBoth(b, a) })
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("transaction %d: %v", i, err)
		}
	}
	if n := attempts.Load(); n != 3 {
		t.Errorf("%d attempts, want 3 (one deadlock victim run twice)", n)
	}
}
