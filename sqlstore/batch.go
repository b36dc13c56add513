package sqlstore

import (
	"context"
	"errors"
	"fmt"
)

// maxBatch bounds how many writes share one SQLite commit, so that one
// failing commit fails a bounded number of callers.
const maxBatch = 128

// errClosed is returned by writes after Close.
var errClosed = errors.New("sqlstore: database is closed")

// writeQueue is SQLite's writer: one goroutine owns the writer connection
// and commits the writes that queued while it was busy together, in one
// transaction ("group commit"). Each write of a batch runs inside its own
// savepoint (a write alone needs none: the transaction is its own), so it
// is still atomic and a failing one is rolled back alone; writes run one
// after the other, so each sees the ones before it, exactly as if each had
// been a transaction of its own; and every caller waits for the commit. What
// is shared is the commit's cost: SQLite writes every changed page to the
// WAL once per commit, and writes of one batch mostly change the same pages
// (the ends of the same tables and indexes).
type writeQueue struct {
	db *DB
	q  *groupQueue[writeReq]
}

type writeReq struct {
	ctx    context.Context
	fn     func(context.Context, runner) error
	result chan error
}

func newWriteQueue(db *DB) *writeQueue {
	w := &writeQueue{db: db}
	// One worker: SQLite has one writer connection.
	w.q = newGroupQueue(1, maxBatch, w.commit)
	return w
}

// do queues fn and waits for the commit of its batch. It does not give up
// when ctx ends while fn is queued: the caller must not return before it
// knows whether fn was stored. A fn whose ctx has ended before it runs does
// not run.
func (q *writeQueue) do(ctx context.Context, fn func(context.Context, runner) error) error {
	req := writeReq{ctx: ctx, fn: fn, result: make(chan error, 1)}
	if err := q.q.add(req); err != nil {
		return err
	}
	return <-req.result
}

// close runs the writes already queued, refuses new ones, and waits for the
// writer to return.
func (q *writeQueue) close() { q.q.close() }

// commit runs the batch in one transaction and tells every caller its
// outcome.
func (q *writeQueue) commit(batch []writeReq) {
	results := make([]error, len(batch))
	if err := q.run(batch, results); err != nil {
		for i := range results {
			results[i] = err
		}
	}
	for i, req := range batch {
		req.result <- results[i]
	}
}

// run fills results with each write's own outcome, or returns the error
// that lost the whole batch.
func (q *writeQueue) run(batch []writeReq, results []error) error {
	// The batch belongs to no single caller: its transaction must not end
	// with the context of the one who happened to be first.
	ctx := context.Background()
	var missed []string
	defer q.db.ws.prepare(ctx, &missed)
	tx, err := q.db.w.BeginTx(ctx, nil)
	if err != nil {
		return dbErr("begin", err)
	}
	r := runner{stmts: q.db.ws, tx: tx, missed: &missed}
	if len(batch) == 1 {
		// Alone in its transaction, a write needs no savepoint: its own
		// failure rolls the transaction back. (Under light load most
		// batches are single writes; this saves two statements each.)
		return q.runAlone(ctx, batch[0], r, results)
	}
	for i, req := range batch {
		if results[i], err = savepoint(req, r); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	return dbErr("commit", tx.Commit())
}

// runAlone runs the batch's only write in the transaction of r and commits
// it, or rolls it back when the write fails.
func (q *writeQueue) runAlone(ctx context.Context, req writeReq, r runner, results []error) error {
	if err := req.ctx.Err(); err != nil {
		results[0] = dbErr("write", err)
		return dbErr("rollback", r.tx.Rollback())
	}
	if err := req.fn(context.WithoutCancel(req.ctx), r); err != nil {
		results[0] = err
		return dbErr("rollback", r.tx.Rollback())
	}
	return dbErr("commit", r.tx.Commit())
}

// savepoint runs one write in a savepoint and returns its outcome; txErr
// reports that the transaction itself failed.
func savepoint(req writeReq, r runner) (writeErr, txErr error) {
	if err := req.ctx.Err(); err != nil {
		return dbErr("write", err), nil
	}
	// Cancelling a statement interrupts SQLite, which rolls back the whole
	// transaction, other callers' writes included. So a write that has
	// started runs to its end.
	ctx := context.WithoutCancel(req.ctx)
	if _, err := r.run(ctx, `SAVEPOINT write`); err != nil {
		return nil, dbErr("savepoint", err)
	}
	err := req.fn(ctx, r)
	if err != nil {
		// Rolling back to the savepoint also checks that the transaction
		// survived fn's error: SQLite rolls back the whole transaction on
		// some (I/O error, disk full), and then there is no savepoint.
		if _, rerr := r.run(ctx, `ROLLBACK TO write`); rerr != nil {
			return nil, fmt.Errorf("sqlstore: write batch lost after %v: %w", err, dbErr("rollback to savepoint", rerr))
		}
	}
	if _, rerr := r.run(ctx, `RELEASE write`); rerr != nil {
		return nil, dbErr("release savepoint", rerr)
	}
	return err, nil
}
