package sqlstore

import (
	"context"
	"sort"
	"time"

	"github.com/custos-uem/custos/report"
)

var _ report.Store = (*DB)(nil)

// Dashboard implements report.Store.
func (db *DB) Dashboard(ctx context.Context, scopeGroups []string, since, now time.Time) (*report.Dashboard, error) {
	since = since.UTC().Truncate(24 * time.Hour)
	now = now.UTC()
	if now.Sub(since) > report.MaxDays*24*time.Hour {
		since = now.Truncate(24*time.Hour).AddDate(0, 0, -report.MaxDays+1)
	}
	d := &report.Dashboard{}
	// count runs "SELECT key, COUNT(*) … GROUP BY key" over the devices
	// in scope; extra is the rest of the FROM and WHERE.
	count := func(keyExpr, from, extra string) ([]report.Count, error) {
		var f filter
		with := ""
		cond := "d.state <> 'removed'"
		if scopeGroups != nil {
			w, err := db.scopeUsers(&f, scopeGroups)
			if err != nil {
				return nil, err
			}
			with = w
			cond += " AND d.user_id IN (SELECT id FROM scope_users)"
		}
		q := with + `SELECT ` + keyExpr + `, COUNT(*) FROM devices d ` + from + ` WHERE ` + cond + extra + ` GROUP BY 1 ORDER BY 2 DESC, 1`
		return list(ctx, db.reader(), func(s scanner) (report.Count, error) {
			var c report.Count
			return c, s.Scan(&c.Key, &c.Count)
		}, "dashboard counts", q, f.args...)
	}
	var err error
	if d.ByPlatform, err = count("d.platform", "", ""); err != nil {
		return nil, err
	}
	if d.ByState, err = count("d.state", "", ""); err != nil {
		return nil, err
	}
	if d.ByCompliance, err = count("COALESCE(c.status, 'unknown')", "LEFT JOIN compliance_states c ON c.device_id = d.id", ""); err != nil {
		return nil, err
	}
	for _, c := range d.ByState {
		d.Total += c.Count
	}

	days := map[int64]*report.Day{}
	for t := since; !t.After(now); t = t.AddDate(0, 0, 1) {
		d.Days = append(d.Days, report.Day{Day: t})
	}
	for i := range d.Days {
		days[d.Days[i].Day.Unix()] = &d.Days[i]
	}
	// perDay counts rows of table (joined to its device for the scope)
	// by the UTC day of their created_at (microseconds).
	perDay := func(table string, set func(*report.Day, int)) error {
		var f filter
		with, cond := "", ""
		if scopeGroups != nil {
			w, err := db.scopeUsers(&f, scopeGroups)
			if err != nil {
				return err
			}
			with, cond = w, " AND d.user_id IN (SELECT id FROM scope_users)"
		}
		join := ""
		if table != "devices" {
			join = " JOIN devices d ON d.id = t.device_id"
		} else {
			join = " JOIN devices d ON d.id = t.id"
		}
		q := with + `SELECT t.created_at / 86400000000, COUNT(*) FROM ` + table + ` t` + join +
			` WHERE t.created_at >= ` + f.param(micros(since)) + cond + ` GROUP BY 1`
		rows, err := list(ctx, db.reader(), func(s scanner) ([2]int64, error) {
			var r [2]int64
			return r, s.Scan(&r[0], &r[1])
		}, "dashboard "+table+" per day", q, f.args...)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if day := days[r[0]*86400]; day != nil {
				set(day, int(r[1]))
			}
		}
		return nil
	}
	if err := perDay("devices", func(d *report.Day, n int) { d.Activations = n }); err != nil {
		return nil, err
	}
	if err := perDay("commands", func(d *report.Day, n int) { d.Commands = n }); err != nil {
		return nil, err
	}
	sort.Slice(d.Days, func(i, j int) bool { return d.Days[i].Day.Before(d.Days[j].Day) })
	return d, nil
}
