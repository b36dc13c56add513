package sqlstore

import "context"

// ClaimSetting stores value under key unless a value is stored already, and
// returns the stored value: value itself for the first caller, the earlier
// value for every later one. Concurrent first callers agree on one winner.
func (db *DB) ClaimSetting(ctx context.Context, key, value string) (string, error) {
	op := "claim installation setting " + key
	if _, err := db.exec(ctx, op, `INSERT INTO installation (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, key, value); err != nil {
		return "", err
	}
	var stored string
	if err := db.reader().row(ctx, `SELECT value FROM installation WHERE key = $1`, key).Scan(&stored); err != nil {
		return "", dbErr(op, err)
	}
	return stored, nil
}
