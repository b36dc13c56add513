package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// stmtCache keeps one prepared statement per query text for a pool, so that
// a statement is parsed once per connection instead of on every call
// (parsing took a quarter of the CPU time of an activation on SQLite). The
// query texts come from this package, never from input, so the cache stays
// small.
type stmtCache struct {
	pool  *sql.DB
	stmts sync.Map // query text → *sql.Stmt
}

func (c *stmtCache) lookup(query string) (*sql.Stmt, bool) {
	s, ok := c.stmts.Load(query)
	if !ok {
		return nil, false
	}
	return s.(*sql.Stmt), true
}

// get returns the cached statement, preparing it on a free connection of
// the pool if need be.
func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := c.lookup(query); ok {
		return s, nil
	}
	s, err := c.pool.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := c.stmts.LoadOrStore(query, s); loaded { // lost a race to prepare it
		s.Close()
		return prev.(*sql.Stmt), nil
	}
	return s, nil
}

// prepare caches the queries a transaction missed, once it has ended.
func (c *stmtCache) prepare(ctx context.Context, missed *[]string) {
	for _, q := range *missed {
		// A statement that fails to prepare failed the transaction too,
		// which reported it; the next use tries again.
		_, _ = c.get(ctx, q)
	}
}

// runner runs cached statements on a pool, or inside tx when it is set.
type runner struct {
	stmts *stmtCache
	tx    *sql.Tx
	// missed collects the queries a transaction found uncached. They cannot
	// be prepared on the pool there and then: on SQLite the transaction
	// holds the writer's only connection. They are cached afterwards.
	missed *[]string
}

func (r runner) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if r.tx == nil {
		return r.stmts.get(ctx, query)
	}
	if s, ok := r.stmts.lookup(query); ok {
		return r.tx.StmtContext(ctx, s), nil // closed with the transaction
	}
	*r.missed = append(*r.missed, query)
	return r.tx.PrepareContext(ctx, query)
}

func (r runner) run(ctx context.Context, query string, args ...any) (sql.Result, error) {
	s, err := r.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

func (r runner) rows(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := r.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// row runs a query for one row; a failure to prepare it comes out of Scan.
func (r runner) row(ctx context.Context, query string, args ...any) scanner {
	s, err := r.stmt(ctx, query)
	if err != nil {
		return errRow{err}
	}
	return s.QueryRowContext(ctx, args...)
}

type errRow struct{ err error }

func (e errRow) Scan(...any) error { return e.err }

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// reader runs statements on the read pool.
func (db *DB) reader() runner { return runner{stmts: db.rs} }

// write runs fn as one atomic write and returns once it is committed. If fn
// fails, everything it did is rolled back and its error is returned
// unchanged. fn must run its statements with the context it is given, and
// must not call write itself (on SQLite it would wait for itself).
func (db *DB) write(ctx context.Context, fn func(context.Context, runner) error) error {
	if db.queue != nil {
		return db.queue.do(ctx, fn)
	}
	return db.writeTx(ctx, fn)
}

// writeOne is write for fn that runs a single statement. On PostgreSQL
// the statement runs outside BEGIN and COMMIT, as its own implicit
// transaction: as atomic, and one network round trip instead of three. A
// statement that lost a race it may win on a second try runs again, as in
// writeTx. SQLite's writes go through its single writer.
func (db *DB) writeOne(ctx context.Context, fn func(context.Context, runner) error) error {
	if db.queue != nil {
		return db.queue.do(ctx, fn)
	}
	for attempt := 1; ; attempt++ {
		err := fn(ctx, runner{stmts: db.ws})
		if err == nil || attempt == maxAttempts || !isRetryable(err) {
			return err
		}
		db.log.DebugContext(ctx, "sqlstore: statement lost a race; retrying", "attempt", attempt, "err", err)
	}
}

// exec runs one write statement and returns how many rows it changed.
func (db *DB) exec(ctx context.Context, op, query string, args ...any) (int64, error) {
	var n int64
	err := db.writeOne(ctx, func(ctx context.Context, r runner) (err error) {
		n, err = exec(ctx, r, op, query, args...)
		return err
	})
	return n, err
}

// execOne runs one write statement that must change a row; changing none
// is errs.ErrNotFound for op.
func (db *DB) execOne(ctx context.Context, op, query string, args ...any) error {
	return db.writeOne(ctx, func(ctx context.Context, r runner) error {
		return execOne(ctx, r, op, query, args...)
	})
}

// maxAttempts bounds how often writeTx runs a transaction that lost a race
// it may win on a second try (see isRetryable).
const maxAttempts = 3

// writeTx runs fn in a transaction of its own (the PostgreSQL way: the
// server runs many at once).
func (db *DB) writeTx(ctx context.Context, fn func(context.Context, runner) error) error {
	for attempt := 1; ; attempt++ {
		err := db.tryWrite(ctx, fn)
		if err == nil || attempt == maxAttempts || !isRetryable(err) {
			return err
		}
		db.log.DebugContext(ctx, "sqlstore: transaction lost a race; retrying", "attempt", attempt, "err", err)
	}
}

func (db *DB) tryWrite(ctx context.Context, fn func(context.Context, runner) error) error {
	var missed []string
	defer db.ws.prepare(ctx, &missed)
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return dbErr("begin", err)
	}
	if err := fn(ctx, runner{stmts: db.ws, tx: tx, missed: &missed}); err != nil {
		// fn's error is the one that matters; a failed rollback still
		// returns the connection to the pool, where it is reset.
		_ = tx.Rollback()
		return err
	}
	return dbErr("commit", tx.Commit())
}

// one runs a query for a single row and scans it; no row is
// errs.ErrNotFound for op.
func one[T any](ctx context.Context, r runner, scan func(scanner) (T, error), op, query string, args ...any) (T, error) {
	v, err := scan(r.row(ctx, query, args...))
	if err != nil {
		var zero T
		return zero, dbErr(op, err)
	}
	return v, nil
}

// list runs a query and scans every row. An empty result is an empty,
// non-nil slice, which encodes as [] rather than null.
func list[T any](ctx context.Context, r runner, scan func(scanner) (T, error), op, query string, args ...any) ([]T, error) {
	rows, err := r.rows(ctx, query, args...)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, dbErr(op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(op, err)
	}
	return out, nil
}

// exec runs a statement and returns how many rows it changed.
func exec(ctx context.Context, r runner, op, query string, args ...any) (int64, error) {
	res, err := r.run(ctx, query, args...)
	if err != nil {
		return 0, dbErr(op, err)
	}
	n, err := res.RowsAffected()
	return n, dbErr(op, err)
}

// execOne runs a statement that must change a row; changing none is
// errs.ErrNotFound for op.
func execOne(ctx context.Context, r runner, op, query string, args ...any) error {
	n, err := exec(ctx, r, op, query, args...)
	if err == nil && n == 0 {
		return notFound(op)
	}
	return err
}

// Listing page sizes.
const defaultPage = 100

// pageSize is the LIMIT for a requested limit: the default when none is
// asked for, never more than maxPage.
func pageSize(limit, maxPage int) int {
	if limit <= 0 {
		limit = defaultPage
	}
	return min(limit, maxPage)
}

// filter builds the WHERE clause of a listing from optional conditions.
type filter struct {
	conds []string
	args  []any
}

// param binds v and returns its placeholder.
func (f *filter) param(v any) string {
	f.args = append(f.args, v)
	return "$" + strconv.Itoa(len(f.args))
}

// add appends cond, in which "?" stands for arg's placeholder.
func (f *filter) add(cond string, arg any) {
	f.conds = append(f.conds, strings.Replace(cond, "?", f.param(arg), 1))
}

// where returns the WHERE clause, or "" when there is no condition.
func (f *filter) where() string {
	if len(f.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(f.conds, " AND ")
}

// Stored forms of Go values.

func micros(t time.Time) int64 { return t.UnixMicro() }

func nullMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

// nullText stores "" as NULL, for optional references and logins, which
// must not collide in their unique index or foreign key.
func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func jsonText(op string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("sqlstore: %s: encode: %w", op, err)
	}
	return string(b), nil
}

// Scan destinations for stored forms.

// timeDest scans microseconds into a UTC time.
type timeDest struct{ p *time.Time }

func (d timeDest) Scan(src any) error {
	v, ok := src.(int64)
	if !ok {
		return fmt.Errorf("timestamp: got %T", src)
	}
	*d.p = time.UnixMicro(v).UTC()
	return nil
}

// nullTimeDest scans nullable microseconds into a *time.Time.
type nullTimeDest struct{ p **time.Time }

func (d nullTimeDest) Scan(src any) error {
	if src == nil {
		*d.p = nil
		return nil
	}
	var t time.Time
	if err := (timeDest{&t}).Scan(src); err != nil {
		return err
	}
	*d.p = &t
	return nil
}

// textDest scans nullable text into a string, NULL becoming "".
type textDest struct{ p *string }

func (d textDest) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d.p = ""
	case string:
		*d.p = v
	case []byte:
		*d.p = string(v)
	default:
		return fmt.Errorf("text: got %T", src)
	}
	return nil
}

// jsonDest decodes nullable JSON text into p, leaving it alone for NULL.
type jsonDest struct{ p any }

func (d jsonDest) Scan(src any) error {
	var s string
	if err := (textDest{&s}).Scan(src); err != nil || src == nil {
		return err
	}
	return json.Unmarshal([]byte(s), d.p)
}
