package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// MaxNotifyPayload bounds one published payload: PostgreSQL refuses
// NOTIFY payloads of 8000 bytes or more
// (https://www.postgresql.org/docs/current/sql-notify.html).
const MaxNotifyPayload = 7900

// ErrNoBus is returned by Listen on SQLite: one process owns the file, so
// there is nobody else to hear from.
var ErrNoBus = errors.New("sqlstore: SQLite has no cross-process notifications (one process owns the database)")

// Publish sends each payload on channel to every process listening on this
// database, after the statement commits (PostgreSQL NOTIFY). It does
// nothing on SQLite. A payload longer than MaxNotifyPayload is refused.
// channel must be a constant identifier of the caller, never input.
func (db *DB) Publish(ctx context.Context, channel string, payloads []string) error {
	if db.backend != Postgres {
		return nil
	}
	for _, p := range payloads {
		if len(p) > MaxNotifyPayload {
			return fmt.Errorf("sqlstore: publish on %s: payload of %d bytes exceeds %d", channel, len(p), MaxNotifyPayload)
		}
		if _, err := db.reader().run(ctx, `SELECT pg_notify($1, $2)`, channel, p); err != nil {
			return dbErr("publish on "+channel, err)
		}
	}
	return nil
}

// Listen calls fn with every payload published on channel (by any process,
// this one included) until ctx ends, over a connection of its own that it
// reopens with backoff when it breaks; it returns ctx's error. fn runs on
// Listen's goroutine and must not block long. On SQLite it returns ErrNoBus
// at once. ready, when not nil, is called each time the LISTEN is in place
// (payloads published before then are not seen).
func (db *DB) Listen(ctx context.Context, channel string, ready func(), fn func(payload string)) error {
	if db.backend != Postgres {
		return ErrNoBus
	}
	backoff := 100 * time.Millisecond
	for {
		err := db.listenOnce(ctx, channel, ready, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		db.log.Warn("sqlstore: notification connection lost; reconnecting", "channel", channel, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (db *DB) listenOnce(ctx context.Context, channel string, ready func(), fn func(string)) error {
	conn, err := pgx.Connect(ctx, db.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	if ready != nil {
		ready()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}
