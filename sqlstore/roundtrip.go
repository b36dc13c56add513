package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/custos-uem/custos/command"
)

// On PostgreSQL a device's round trip (its result for one command, then
// the next command due) would cost four network round trips to the server
// (BEGIN, the result's UPDATE, the delivery's UPDATE, COMMIT) and one
// commit. Under load those dominate both our CPU and the server's: each is
// a write and a read system call here and a wake-up of a backend there.
// The round trips that arrive while others are in flight run together
// (a groupQueue), as one statement in its own implicit transaction: one
// network round trip and one commit for the whole group.
//
// What each caller sees is what CompleteAndNext and Next promise alone:
// the statement applies a result only where the lone UPDATE would (the
// command is the device's and was delivered), and picks the next command
// with the same order, the same conditions and the same row lock, skipping
// rows another transaction holds. A result the statement does not apply
// (a duplicate, an unknown command) is handed back and run alone, so that
// its outcome (duplicate, or ErrUnknownCommand with nothing delivered) is
// decided by the code that decides it for a lone call. If the statement
// fails, every caller of the group runs alone: one bad input cannot fail
// the others.

// tripReq is one device's round trip. A nil res is a delivery alone
// (Next).
type tripReq struct {
	ctx      context.Context
	deviceID string
	res      *command.Result
	now      time.Time
	out      chan tripOut
}

// tripOut is a tripReq's outcome. alone is set when the group could not
// decide it: the caller runs it on its own.
type tripOut struct {
	done, next *command.Command
	alone      bool
	err        error
}

// trip runs r in a group and returns its outcome.
func (db *DB) trip(r *tripReq) tripOut {
	r.out = make(chan tripOut, 1)
	if err := db.trips.add(r); err != nil {
		return tripOut{err: err}
	}
	return <-r.out
}

// runTrips answers every request of group.
func (db *DB) runTrips(group []*tripReq) {
	// One device's requests do not overlap in practice (a device waits
	// for each answer); when they do, the second runs alone, after the
	// group, as two lone calls would have run one after the other.
	seen := make(map[string]bool, len(group))
	batch := group[:0:0]
	for _, r := range group {
		switch {
		case r.ctx.Err() != nil:
			r.out <- tripOut{err: dbErr("round trip", r.ctx.Err())}
		case seen[r.deviceID]:
			r.out <- tripOut{alone: true}
		default:
			seen[r.deviceID] = true
			batch = append(batch, r)
		}
	}
	if len(batch) == 0 {
		return
	}
	outs, err := db.tripStatement(batch)
	for i, r := range batch {
		if err != nil {
			r.out <- tripOut{alone: true}
			continue
		}
		r.out <- outs[i]
	}
}

// tripQuery is the group's statement. input has one row per request (n
// its index); done applies the results exactly as completeIn's UPDATEs do
// (a NotNow keeps result and completed_at, sets not_before; an
// acknowledgment or error sets them and clears not_before); pick chooses
// each device's next command as nextIn does, for a delivery alone or a
// result done applied, never the command just answered (the statement's
// snapshot still shows it open; PostgreSQL's row lock would also pass over
// a row this statement updated, but the order of a group must not rest on
// that); next records those deliveries.
var tripQuery = `WITH input AS (
		SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[])
			AS i(n, device_id, command_id, status, message, result, now, not_before)
	), done AS (
		UPDATE commands c SET status = i.status, message = i.message,
			result = CASE WHEN i.status = 'not_now' THEN c.result ELSE i.result END,
			completed_at = CASE WHEN i.status = 'not_now' THEN c.completed_at ELSE i.now END,
			not_before = i.not_before
		FROM input i
		WHERE c.id = i.command_id AND c.device_id = i.device_id AND ` + resultApplies("c.status", "i.status") + `
		RETURNING i.n, c.` + commandColumnsC + `
	), pick AS (
		SELECT i.n, p.id, i.now FROM input i CROSS JOIN LATERAL (
			SELECT id FROM commands WHERE device_id = i.device_id AND status IN ` + openStatuses + `
				AND (not_before IS NULL OR not_before <= i.now) AND expires_at > i.now
				AND id IS DISTINCT FROM i.command_id
				ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) p
		WHERE i.command_id IS NULL OR i.n IN (SELECT n FROM done)
	), next AS (
		UPDATE commands c SET status = 'sent', deliveries = c.deliveries + 1, sent_at = p.now, not_before = NULL
		FROM pick p WHERE c.id = p.id
		RETURNING p.n, c.` + commandColumnsC + `
	)
	SELECT false, * FROM done UNION ALL SELECT true, * FROM next`

// commandColumnsC is commandColumns qualified by the alias c.
const commandColumnsC = `id, c.device_id, c.type, c.priority, c.payload, c.status, c.created_by, c.created_at, c.expires_at,
	c.not_before, c.deliveries, c.sent_at, c.completed_at, c.message, c.result`

// tripStatement runs tripQuery for batch (distinct devices) and returns
// each request's outcome. A result it did not apply is marked alone.
func (db *DB) tripStatement(batch []*tripReq) ([]tripOut, error) {
	k := len(batch)
	var (
		ns       = make([]int32, k)
		devices  = make([]string, k)
		cmdIDs   = make([]*string, k)
		statuses = make([]*string, k)
		messages = make([]*string, k)
		results  = make([]*string, k)
		nows     = make([]int64, k)
		notBef   = make([]*int64, k)
	)
	for i, r := range batch {
		ns[i], devices[i], nows[i] = int32(i), r.deviceID, micros(r.now)
		if r.res == nil {
			continue
		}
		id, st, msg := r.res.CommandID, string(r.res.Status), r.res.Message
		cmdIDs[i], statuses[i], messages[i] = &id, &st, &msg
		if r.res.Status == command.StatusNotNow {
			nb := micros(r.now.Add(command.NotNowDelay))
			notBef[i] = &nb
		} else if len(r.res.Data) > 0 {
			data := string(r.res.Data)
			results[i] = &data
		}
	}
	// The group belongs to no single caller: its statement must not end
	// with the context of the one who happened to be first.
	ctx := context.Background()
	rows, err := runner{stmts: db.gs}.rows(ctx, tripQuery, ns, devices, cmdIDs, statuses, messages, results, nows, notBef)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	outs := make([]tripOut, k)
	applied := make([]bool, k)
	for rows.Next() {
		var (
			isNext bool
			n      int32
		)
		c, err := scanCommand(prefixed{rows, []any{&isNext, &n}})
		if err != nil {
			return nil, err
		}
		if n < 0 || int(n) >= k {
			return nil, errors.New("sqlstore: round trip: a row of no request")
		}
		if isNext {
			outs[n].next = c
		} else {
			outs[n].done, applied[n] = c, true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, r := range batch {
		if r.res != nil && !applied[i] {
			outs[i] = tripOut{alone: true}
		}
	}
	return outs, nil
}

// prefixed scans a row whose first columns go to pre and the rest to the
// destinations its caller gives (scanCommand's, after the group's own).
type prefixed struct {
	s   scanner
	pre []any
}

func (p prefixed) Scan(dest ...any) error { return p.s.Scan(append(p.pre, dest...)...) }
