package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/errs"
)

var _ command.Store = (*DB)(nil)

const commandColumns = `id, device_id, type, priority, payload, status, created_by, created_at, expires_at,
	not_before, deliveries, sent_at, completed_at, message, result`

// The status sets of the queries below are spelled exactly as in the
// predicates of the partial indexes (0003_commands.sql): both planners use
// a partial index only when the query implies its predicate.
const (
	openStatuses  = `('pending', 'sent', 'not_now')`
	finalStatuses = `('acknowledged', 'error', 'cancelled', 'expired')`
)

// Enqueue sizes. On PostgreSQL one statement inserts up to enqueueChunk
// rows (or enqueueChunkBytes of payload, whichever comes first) from array
// parameters, so a bulk send of command.MaxBulk commands takes a few dozen
// statements, not 100,000. On SQLite a statement inserts sqliteChunk rows
// (the rest of a send one row at a time) with anonymous "?" parameters:
// SQLite resolves numbered $N parameters in time quadratic in their
// number, and decoding the rows from one JSON parameter cost a third of
// the insert.
const (
	enqueueChunk      = 5000
	enqueueChunkBytes = 4 << 20
	sqliteChunk       = 100
	deviceCheckChunk  = 10000
)

func scanCommand(s scanner) (*command.Command, error) {
	c := new(command.Command)
	return c, s.Scan(&c.ID, &c.DeviceID, &c.Type, &c.Priority, rawDest{&c.Payload}, &c.Status, &c.CreatedBy,
		timeDest{&c.CreatedAt}, timeDest{&c.ExpiresAt}, nullTimeDest{&c.NotBefore}, &c.Deliveries,
		nullTimeDest{&c.SentAt}, nullTimeDest{&c.CompletedAt}, &c.Message, rawDest{&c.Result})
}

// rawDest scans nullable JSON text into a json.RawMessage, NULL becoming nil.
type rawDest struct{ p *json.RawMessage }

func (d rawDest) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d.p = nil
	case string:
		*d.p = json.RawMessage(v)
	case []byte:
		*d.p = append(json.RawMessage(nil), v...) // the driver reuses its buffer
	default:
		return fmt.Errorf("json: got %T", src)
	}
	return nil
}

// nullJSON stores an empty JSON value as NULL.
func nullJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// idSet is a query condition "column is one of ids" with a constant
// statement text whatever the number of IDs: an array parameter on
// PostgreSQL, a JSON array walked by json_each on SQLite. Statement texts
// that vary with a list's length would fill the statement cache.
func (db *DB) idSet(column string, ids []string) (string, any, error) {
	if db.backend == Postgres {
		return column + ` = ANY($1)`, ids, nil
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return "", nil, err
	}
	return column + ` IN (SELECT value FROM json_each($1))`, string(b), nil
}

// enqueueRows is one INSERT statement of Enqueue and its parameters.
type enqueueRows struct {
	query string
	ids   []string
	arg   []any
}

// insertConflict skips a SyncConfig command whose device already has one
// pending (the partial unique index commands_sync_config_pending).
const insertConflict = ` ON CONFLICT (device_id) WHERE type = 'sync_config' AND status = 'pending' DO NOTHING`

const insertColumns = `INSERT INTO commands (id, device_id, type, priority, payload, status, created_by, created_at, expires_at) `

// pgInsertCommands inserts the rows of eight parallel arrays.
const pgInsertCommands = insertColumns + `SELECT id, device_id, type, priority, NULLIF(payload, ''), 'pending', created_by,
	created_at, expires_at FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])
	AS t (id, device_id, type, priority, payload, created_by, created_at, expires_at)` + insertConflict

// sqliteInsertCommands returns the statement inserting rows rows.
func sqliteInsertCommands(rows int) string {
	const row = `(?, ?, ?, ?, NULLIF(?, ''), 'pending', ?, ?, ?)`
	return insertColumns + `VALUES ` + strings.Repeat(row+`, `, rows-1) + row + insertConflict
}

// The two SQLite statement texts Enqueue uses.
var sqliteInsertChunk, sqliteInsertOne = sqliteInsertCommands(sqliteChunk), sqliteInsertCommands(1)

// enqueueChunks splits cmds into INSERT statements. They are built before
// the write starts: on SQLite the write holds the only writer, and encoding
// is no work for it to wait on.
func (db *DB) enqueueChunks(cmds []*command.Command) []enqueueRows {
	var out []enqueueRows
	if db.backend == SQLite {
		for len(cmds) > 0 {
			n, query := sqliteChunk, sqliteInsertChunk
			if len(cmds) < sqliteChunk {
				n, query = 1, sqliteInsertOne
			}
			rows := enqueueRows{query: query, ids: make([]string, n), arg: make([]any, 0, 8*n)}
			for i, c := range cmds[:n] {
				rows.ids[i] = c.ID
				rows.arg = append(rows.arg, c.ID, c.DeviceID, string(c.Type), c.Priority, string(c.Payload), c.CreatedBy,
					micros(c.CreatedAt), micros(c.ExpiresAt))
			}
			out = append(out, rows)
			cmds = cmds[n:]
		}
		return out
	}
	for len(cmds) > 0 {
		n, size := 0, 0
		for n < len(cmds) && n < enqueueChunk && (n == 0 || size+len(cmds[n].Payload) <= enqueueChunkBytes) {
			size += len(cmds[n].Payload)
			n++
		}
		var (
			ids, devices, types = make([]string, n), make([]string, n), make([]string, n)
			payloads, by        = make([]string, n), make([]string, n)
			prios               = make([]int32, n)
			created, expires    = make([]int64, n), make([]int64, n)
		)
		for i, c := range cmds[:n] {
			ids[i], devices[i], types[i], payloads[i], by[i] = c.ID, c.DeviceID, string(c.Type), string(c.Payload), c.CreatedBy
			prios[i], created[i], expires[i] = int32(c.Priority), micros(c.CreatedAt), micros(c.ExpiresAt)
		}
		out = append(out, enqueueRows{query: pgInsertCommands, ids: ids,
			arg: []any{ids, devices, types, prios, payloads, by, created, expires}})
		cmds = cmds[n:]
	}
	return out
}

// Enqueue implements command.Store. Every command is inserted in one
// transaction; on SQLite it holds the writer for its duration (about a
// second for command.MaxBulk devices, see BenchmarkEnqueue100k).
//
// A device removed by a concurrent transaction after the check below may
// still get its commands queued; they are never delivered, because a
// removed device's certificate is refused before it can ask for them.
func (db *DB) Enqueue(ctx context.Context, cmds []*command.Command) (int, error) {
	if len(cmds) == 0 {
		return 0, nil
	}
	op := fmt.Sprintf("enqueue %d commands", len(cmds))
	seen := make(map[string]bool)
	var devices []string
	for _, c := range cmds {
		if !seen[c.DeviceID] {
			seen[c.DeviceID] = true
			devices = append(devices, c.DeviceID)
		}
	}
	chunks := db.enqueueChunks(cmds)
	var skipped map[string]bool
	err := db.write(ctx, func(ctx context.Context, r runner) error {
		skipped = nil // the function runs again when a PostgreSQL transaction is retried
		if err := db.checkDevices(ctx, r, op, devices); err != nil {
			return err
		}
		for _, rows := range chunks {
			n, err := exec(ctx, r, op, rows.query, rows.arg...)
			if err != nil {
				return err
			}
			if int(n) < len(rows.ids) {
				// Rare: a SyncConfig was deduplicated. Find which.
				if skipped, err = db.missingCommands(ctx, r, op, rows.ids, skipped); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, c := range cmds {
		if skipped[c.ID] {
			c.ID = ""
		}
	}
	return len(cmds) - len(skipped), nil
}

// checkDevices fails with errs.ErrNotFound unless every device exists and
// is enrolled or active.
func (db *DB) checkDevices(ctx context.Context, r runner, op string, devices []string) error {
	for len(devices) > 0 {
		chunk := devices[:min(len(devices), deviceCheckChunk)]
		devices = devices[len(chunk):]
		cond, arg, err := db.idSet("id", chunk)
		if err != nil {
			return fmt.Errorf("sqlstore: %s: encode: %w", op, err)
		}
		found, err := list(ctx, r, scanString, op, `SELECT id FROM devices WHERE `+cond+` AND state IN ('enrolled', 'active')`, arg)
		if err != nil {
			return err
		}
		if len(found) == len(chunk) {
			continue
		}
		ok := make(map[string]bool, len(found))
		for _, id := range found {
			ok[id] = true
		}
		for _, id := range chunk {
			if !ok[id] {
				return fmt.Errorf("sqlstore: %s: device %q is unknown or not enrolled: %w", op, id, errs.ErrNotFound)
			}
		}
	}
	return nil
}

// missingCommands adds to skipped the IDs that are not stored.
func (db *DB) missingCommands(ctx context.Context, r runner, op string, ids []string, skipped map[string]bool) (map[string]bool, error) {
	cond, arg, err := db.idSet("id", ids)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %s: encode: %w", op, err)
	}
	found, err := list(ctx, r, scanString, op, `SELECT id FROM commands WHERE `+cond, arg)
	if err != nil {
		return nil, err
	}
	stored := make(map[string]bool, len(found))
	for _, id := range found {
		stored[id] = true
	}
	if skipped == nil {
		skipped = make(map[string]bool)
	}
	for _, id := range ids {
		if !stored[id] {
			skipped[id] = true
		}
	}
	return skipped, nil
}

// Next implements command.Store. The delivery is recorded by the same
// statement that picks the command. On PostgreSQL, where several Core
// processes may serve one device at the same instant, the pick locks its
// row and skips rows another transaction holds: two concurrent requests
// never both take one command without both deliveries being counted, and
// neither waits for the other (the second gets the next due command, or
// ErrIdle). SQLite has a single writer, so picks never overlap. On
// PostgreSQL concurrent calls are grouped into one statement (see
// runTrips).
func (db *DB) Next(ctx context.Context, deviceID string, now time.Time) (*command.Command, error) {
	if db.trips != nil {
		if out := db.trip(&tripReq{ctx: ctx, deviceID: deviceID, now: now}); !out.alone {
			switch {
			case out.err != nil:
				return nil, dbErr("next command of device "+deviceID, out.err)
			case out.next == nil:
				return nil, command.ErrIdle
			}
			return out.next, nil
		}
	}
	var c *command.Command
	err := db.write(ctx, func(ctx context.Context, r runner) (err error) {
		c, err = db.nextIn(ctx, r, deviceID, now)
		return err
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, command.ErrIdle
	case err != nil:
		return nil, dbErr("next command of device "+deviceID, err)
	}
	return c, nil
}

// dueQuery is Due's statement: $1 the device, $2 the time.
const dueQuery = `SELECT EXISTS (SELECT 1 FROM commands WHERE device_id = $1 AND status IN ` + openStatuses + `
	AND (not_before IS NULL OR not_before <= $2) AND expires_at > $2)`

// Due implements command.Store with Next's conditions and no delivery.
func (db *DB) Due(ctx context.Context, deviceID string, now time.Time) (bool, error) {
	var due bool
	err := db.reader().row(ctx, dueQuery, deviceID, micros(now)).Scan(&due)
	if err != nil {
		return false, dbErr("due commands of device "+deviceID, err)
	}
	return due, nil
}

// nextIn is Next's statement, run by r (Next, and CompleteAndNext in
// apple.go, which shares one transaction between a result and the next
// delivery).
func (db *DB) nextIn(ctx context.Context, r runner, deviceID string, now time.Time) (*command.Command, error) {
	return scanCommand(r.row(ctx, db.nextQuery(), deviceID, micros(now)))
}

// nextQuery is nextIn's statement: $1 the device, $2 the time.
func (db *DB) nextQuery() string {
	lock := ""
	if db.backend == Postgres {
		lock = ` FOR UPDATE SKIP LOCKED`
	}
	return `UPDATE commands SET status = 'sent', deliveries = deliveries + 1, sent_at = $2, not_before = NULL
		WHERE id = (SELECT id FROM commands WHERE device_id = $1 AND status IN ` + openStatuses + `
			AND (not_before IS NULL OR not_before <= $2) AND expires_at > $2
			ORDER BY priority DESC, id LIMIT 1` + lock + `)
		RETURNING ` + commandColumns
}

// Complete implements command.Store. The result is recorded by a
// conditional UPDATE; only when it matches nothing is the command read to
// tell a duplicate from an unknown command, in the same transaction.
func (db *DB) Complete(ctx context.Context, deviceID string, res command.Result, now time.Time) (*command.Command, bool, error) {
	op := "complete command " + res.CommandID
	var (
		c         *command.Command
		duplicate bool
	)
	err := db.write(ctx, func(ctx context.Context, r runner) (err error) {
		c, duplicate, err = completeIn(ctx, r, op, deviceID, res, now)
		return err
	})
	if err != nil {
		return nil, false, commandErr(op, err)
	}
	return c, duplicate, nil
}

// completeIn is Complete's statements, run by r (Complete, and
// CompleteAndNext in apple.go).
func completeIn(ctx context.Context, r runner, op, deviceID string, res command.Result, now time.Time) (c *command.Command, duplicate bool, err error) {
	var args []any
	switch res.Status {
	case command.StatusNotNow:
		args = []any{res.CommandID, deviceID, res.Message, micros(now.Add(command.NotNowDelay))}
	case command.StatusAcknowledged, command.StatusError:
		args = []any{res.CommandID, deviceID, string(res.Status), res.Message, nullJSON(res.Data), micros(now)}
	default:
		return nil, false, fmt.Errorf("sqlstore: %s: result status %q is not a result", op, res.Status)
	}
	c, err = scanCommand(r.row(ctx, completeQuery(res.Status), args...))
	if !errors.Is(err, sql.ErrNoRows) {
		return c, false, err
	}
	c, err = scanCommand(r.row(ctx, `SELECT `+commandColumns+` FROM commands WHERE id = $1 AND device_id = $2`,
		res.CommandID, deviceID))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, command.ErrUnknownCommand
	case err != nil:
		return nil, false, err
	case c.Status.Final() || c.Status == command.StatusNotNow && res.Status == command.StatusNotNow:
		return c, true, nil
	}
	return nil, false, command.ErrUnknownCommand // pending: never delivered
}

// completeQuery is completeIn's statement for a result of status st: for a
// NotNow $1 the command, $2 the device, $3 the message, $4 until when it
// is held back; for an acknowledgment or an error $1 the command, $2 the
// device, $3 the status, $4 the message, $5 the result, $6 the time.
func completeQuery(st command.Status) string {
	if st == command.StatusNotNow {
		return `UPDATE commands SET status = 'not_now', message = $3, not_before = $4
			WHERE id = $1 AND device_id = $2 AND ` + resultApplies("status", "'not_now'") + ` RETURNING ` + commandColumns
	}
	return `UPDATE commands SET status = $3, message = $4, result = $5, completed_at = $6, not_before = NULL
		WHERE id = $1 AND device_id = $2 AND ` + resultApplies("status", "$3") + ` RETURNING ` + commandColumns
}

// resultApplies is the condition for recording a result whose status is
// next (an SQL expression) on a command whose status is the column status:
// the command was delivered, or a NotNow is followed by a final answer. It
// is a CASE, not status IN ('sent', 'not_now'), on purpose: PostgreSQL
// proves that the IN implies the predicate of the partial index
// commands_due, and where its statistics say few commands are open it then
// reads that whole index (every open command of the fleet) and joins,
// instead of looking the one command up by its id. It does not see through
// a CASE, so the id's primary key is the only index left to it.
func resultApplies(status, next string) string {
	return `CASE ` + status + ` WHEN 'sent' THEN true WHEN 'not_now' THEN ` + next + ` <> 'not_now' ELSE false END`
}

// commandErr wraps err for op, keeping the command package's errors as
// they are.
func commandErr(op string, err error) error {
	if errors.Is(err, command.ErrUnknownCommand) || errors.Is(err, command.ErrNotFound) || errors.Is(err, command.ErrFinal) {
		return fmt.Errorf("sqlstore: %s: %w", op, err)
	}
	return dbErr(op, err)
}

// cancelQuery is Cancel's statement: $1 the command, $2 the time.
const cancelQuery = `UPDATE commands SET status = 'cancelled', completed_at = $2, not_before = NULL
	WHERE id = $1 AND status IN ` + openStatuses + ` RETURNING ` + commandColumns

// Cancel implements command.Store.
func (db *DB) Cancel(ctx context.Context, id string, now time.Time) (*command.Command, error) {
	op := "cancel command " + id
	var c *command.Command
	err := db.write(ctx, func(ctx context.Context, r runner) (err error) {
		c, err = scanCommand(r.row(ctx, cancelQuery, id, micros(now)))
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var status string
		switch err := r.row(ctx, `SELECT status FROM commands WHERE id = $1`, id).Scan(&status); {
		case errors.Is(err, sql.ErrNoRows):
			return command.ErrNotFound
		case err != nil:
			return err
		}
		return command.ErrFinal
	})
	if err != nil {
		return nil, commandErr(op, err)
	}
	return c, nil
}

// Command implements command.Store.
func (db *DB) Command(ctx context.Context, id string) (*command.Command, error) {
	c, err := scanCommand(db.reader().row(ctx, `SELECT `+commandColumns+` FROM commands WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = command.ErrNotFound
	}
	if err != nil {
		return nil, commandErr("command "+id, err)
	}
	return c, nil
}

// ListCommands implements command.Store.
func (db *DB) ListCommands(ctx context.Context, q command.Query) ([]*command.Command, error) {
	var f filter
	f.add("id > ?", q.After)
	if q.DeviceID != "" {
		f.add("device_id = ?", q.DeviceID)
	}
	switch {
	case q.Open && !q.Final:
		f.conds = append(f.conds, "status IN "+openStatuses)
	case q.Final && !q.Open:
		f.conds = append(f.conds, "status IN "+finalStatuses)
	}
	query := `SELECT ` + commandColumns + ` FROM commands` + f.where() +
		` ORDER BY id LIMIT ` + f.param(pageSize(q.Limit, command.MaxPage))
	return list(ctx, db.reader(), scanCommand, "list commands", query, f.args...)
}

// PruneCommands implements command.Store. A batch walks the primary key
// from the oldest id (ids are UUIDv7, so in creation order), keeping its
// statements short; its rows are final, so no device's round trip waits
// on them.
func (db *DB) PruneCommands(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	pick := `SELECT id FROM commands WHERE status IN ` + finalStatuses + ` AND created_at < $1 ORDER BY id LIMIT $2`
	rows := `id IN (` + pick + `)`
	if db.backend == Postgres {
		// As in ExpireCommands: the chosen rows are deleted by their ids,
		// and two Cores pruning at once skip each other's.
		rows = `id = ANY(ARRAY(` + pick + ` FOR UPDATE SKIP LOCKED))`
	}
	n, err := db.exec(ctx, "prune commands", `DELETE FROM commands WHERE `+rows, micros(before), limit)
	return int(n), err
}

// ExpireCommands implements command.Store. The sweep reads the open
// commands through commands_due (there is no index by expiry: see
// migration 0018), once a minute. On PostgreSQL two Core processes
// sweeping at once skip each other's rows instead of waiting, and the rows
// chosen and locked are updated by their ids (ARRAY(…) is computed once):
// written as id IN (…), the planner, believing few commands open, would
// probe the chosen rows once per open command.
func (db *DB) ExpireCommands(ctx context.Context, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	pick := `SELECT id FROM commands WHERE status IN ` + openStatuses + ` AND expires_at <= $1 ORDER BY expires_at LIMIT $2`
	rows := `status IN ` + openStatuses + ` AND id IN (` + pick + `)`
	if db.backend == Postgres {
		// The rows are locked open, so they are still open when updated.
		rows = `id = ANY(ARRAY(` + pick + ` FOR UPDATE SKIP LOCKED))`
	}
	n, err := db.exec(ctx, "expire commands", `UPDATE commands SET status = 'expired', completed_at = $1, not_before = NULL
		WHERE `+rows, micros(now), limit)
	return int(n), err
}
