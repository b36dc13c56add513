package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/id"
)

// Test-only helpers for the queue's crash test and benchmarks, which need
// thousands of devices: taking each through activation would take longer
// than what they measure.

// CreateDevicesForTest inserts n enrolled devices of the user in one
// statement and returns their IDs in ID order.
func (db *DB) CreateDevicesForTest(ctx context.Context, userID string, n int, now time.Time) ([]string, error) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = id.New()
	}
	// One list parameter, as Enqueue does: SQLite resolves $N parameters in
	// time quadratic in their number, which the race detector makes slow.
	var list any = ids
	from := `unnest($1::text[]) AS t (value)`
	if db.backend == SQLite {
		b, err := json.Marshal(ids)
		if err != nil {
			return nil, err
		}
		list, from = string(b), `json_each($1)`
	}
	_, err := db.exec(ctx, "create test devices", `INSERT INTO devices (id, user_id, hardware_id, platform, os_version,
		model, name, activation_type, state, created_at, enrolled_at)
		SELECT value, $2, 'hw-' || value, 'linux', '6.1', 'Laptop', 'bench', 'mdm_controls', 'enrolled', $3, $3 FROM `+from,
		list, userID, micros(now))
	return ids, err
}

// CountCommandsForTest returns how many commands are stored.
func (db *DB) CountCommandsForTest(ctx context.Context) (int, error) {
	var n int
	err := db.reader().row(ctx, `SELECT count(*) FROM commands`).Scan(&n)
	return n, dbErr("count commands", err)
}

// TripForTest is one request of a group RunTripGroupForTest runs: a
// result and the next delivery (CompleteAndNext), or with a nil Result a
// delivery alone (Next).
type TripForTest struct {
	DeviceID string
	Result   *command.Result
	Now      time.Time
}

// TripOutcomeForTest is what the group decided for one request; Alone
// means it left the request to a lone call.
type TripOutcomeForTest struct {
	Done, Next *command.Command
	Alone      bool
	Err        error
}

// RunTripGroupForTest runs trips as one group of PostgreSQL's round-trip
// queue, as if they had arrived together, and returns their outcomes.
func (db *DB) RunTripGroupForTest(trips []TripForTest) []TripOutcomeForTest {
	group := make([]*tripReq, len(trips))
	for i, tr := range trips {
		group[i] = &tripReq{ctx: context.Background(), deviceID: tr.DeviceID, res: tr.Result, now: tr.Now, out: make(chan tripOut, 1)}
	}
	db.runTrips(group)
	outs := make([]TripOutcomeForTest, len(trips))
	for i, r := range group {
		o := <-r.out
		outs[i] = TripOutcomeForTest{Done: o.done, Next: o.next, Alone: o.alone, Err: o.err}
	}
	return outs
}

// FillCommandsForTest inserts n lock commands in status st, spread over
// devices, in one statement (PostgreSQL only).
func (db *DB) FillCommandsForTest(ctx context.Context, devices []string, n int, st command.Status, now time.Time) error {
	_, err := db.exec(ctx, "fill test commands", `INSERT INTO commands (id, device_id, type, priority, status, created_by, created_at, expires_at)
		SELECT gen_random_uuid()::text, ($1::text[])[1 + g % cardinality($1::text[])], 'lock', 0, $2, 'test', $3, $4
		FROM generate_series(1, $5::int) g`, devices, string(st), micros(now), micros(now.Add(24*time.Hour)), n)
	return err
}

// AnalyzeCommandsForTest has PostgreSQL gather the commands table's
// statistics now, as autovacuum would.
func (db *DB) AnalyzeCommandsForTest(ctx context.Context) error {
	_, err := db.exec(ctx, "analyze commands", `ANALYZE commands`)
	return err
}

// CommandPlansForTest returns PostgreSQL's plans (EXPLAIN's JSON) of the
// queue's statements about one device, planned as the Core plans them: the
// round-trip group's statement generically on a group connection, the
// lone statements (result, delivery, due check, cancel) both generically
// and for their values (PostgreSQL may use either for a prepared
// statement).
func (db *DB) CommandPlansForTest(ctx context.Context, deviceID, commandID string) (map[string]string, error) {
	plans := map[string]string{}
	lit := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	now := strconv.FormatInt(micros(time.Now()), 10)
	for _, p := range []struct {
		name, types, query, args string
		pool                     *sql.DB
		modes                    []string
	}{
		{"group round trip", "int[], text[], text[], text[], text[], text[], bigint[], bigint[]", tripQuery,
			"ARRAY[0], ARRAY[" + lit(deviceID) + "], ARRAY[" + lit(commandID) + "], ARRAY['acknowledged'], ARRAY[''], ARRAY[NULL]::text[], ARRAY[" + now + "], ARRAY[NULL]::bigint[]",
			db.groups, []string{""}},
		{"acknowledgment", "text, text, text, text, text, bigint", completeQuery(command.StatusAcknowledged),
			lit(commandID) + ", " + lit(deviceID) + ", 'acknowledged', '', NULL, " + now,
			db.w, []string{"force_generic_plan", "force_custom_plan"}},
		{"NotNow", "text, text, text, bigint", completeQuery(command.StatusNotNow),
			lit(commandID) + ", " + lit(deviceID) + ", '', " + now,
			db.w, []string{"force_generic_plan", "force_custom_plan"}},
		{"delivery", "text, bigint", db.nextQuery(), lit(deviceID) + ", " + now,
			db.w, []string{"force_generic_plan", "force_custom_plan"}},
		{"due check", "text, bigint", dueQuery, lit(deviceID) + ", " + now,
			db.w, []string{"force_generic_plan", "force_custom_plan"}},
		{"cancel", "text, bigint", cancelQuery, lit(commandID) + ", " + now,
			db.w, []string{"force_generic_plan", "force_custom_plan"}},
	} {
		err := func() error {
			conn, err := p.pool.Conn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, "PREPARE plan_probe("+p.types+") AS "+p.query); err != nil {
				return err
			}
			defer conn.ExecContext(ctx, "DEALLOCATE plan_probe")
			for _, mode := range p.modes {
				name := p.name
				if mode != "" {
					name += " (" + mode + ")"
					if _, err := conn.ExecContext(ctx, "SET plan_cache_mode = "+mode); err != nil {
						return err
					}
					defer conn.ExecContext(ctx, "RESET plan_cache_mode")
				}
				var plan string
				if err := conn.QueryRowContext(ctx, "EXPLAIN (FORMAT JSON) EXECUTE plan_probe("+p.args+")").Scan(&plan); err != nil {
					return err
				}
				plans[name] = plan
			}
			return nil
		}()
		if err != nil {
			return nil, fmt.Errorf("plan of %s: %w", p.name, err)
		}
	}
	return plans, nil
}
