package sqlstore

import (
	"context"
	"encoding/json"
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
