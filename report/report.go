// Package report answers the questions of the console's dashboard: how
// many devices there are by platform, state and compliance, and how many
// activations and commands happened each day. Counts are computed by the
// database on demand; nothing is cached, so a dashboard is as current as
// its last reload.
package report

import (
	"context"
	"time"
)

// Count is how many devices share one value of a dimension.
type Count struct {
	Key   string `json:"key"`
	Count int    `json:"count"`
}

// Day is the activity of one UTC day.
type Day struct {
	Day         time.Time `json:"day"`
	Activations int       `json:"activations"`
	Commands    int       `json:"commands"`
}

// Dashboard is the console's overview.
type Dashboard struct {
	// Devices not removed, by platform, by state, and by compliance
	// status ("unknown" for devices never evaluated).
	Total        int     `json:"total"`
	ByPlatform   []Count `json:"by_platform"`
	ByState      []Count `json:"by_state"`
	ByCompliance []Count `json:"by_compliance"`
	// Days from Since to today, oldest first, every day present.
	Days []Day `json:"days"`
}

// MaxDays bounds the activity window of one dashboard.
const MaxDays = 90

// Store computes the dashboard.
type Store interface {
	// Dashboard counts the devices of the users in scope (members of one
	// of scopeGroups or of their subgroups at any depth; nil means every
	// device) and the activations (devices created) and commands queued
	// for them on each UTC day from since (truncated to its day) to now.
	// Any caller; no error for an empty installation.
	Dashboard(ctx context.Context, scopeGroups []string, since, now time.Time) (*Dashboard, error)
}
