// Package audit records every administrator action: who, what, when, from
// where, on which object, with the request ID that ties it to the log.
//
// The audit trail is append-only: the Store has no update or delete.
package audit

import (
	"context"
	"time"
)

// Entry is one administrator action.
type Entry struct {
	ID         int64          `json:"id"`
	At         time.Time      `json:"at"`
	Actor      string         `json:"actor"`    // administrator ID, or "system"
	ActorIP    string         `json:"actor_ip"` // remote address of the request
	Action     string         `json:"action"`   // e.g. "user.create"
	ObjectType string         `json:"object_type"`
	ObjectID   string         `json:"object_id"`
	RequestID  string         `json:"request_id"`
	Outcome    string         `json:"outcome"` // "ok" or "denied" or "failed"
	Detail     map[string]any `json:"detail,omitempty"`
}

// Query filters the audit listing. Zero fields do not filter.
type Query struct {
	Actor    string
	Action   string
	ObjectID string
	Since    time.Time
	BeforeID int64 // page backwards: entries with ID < BeforeID
	Limit    int   // capped at MaxPage
}

// MaxPage caps the entries one listing returns.
const MaxPage = 1000

// Store keeps the audit trail.
type Store interface {
	// AppendAudit inserts e and sets e.ID.
	AppendAudit(ctx context.Context, e *Entry) error
	// ListAudit returns entries matching q, newest first.
	ListAudit(ctx context.Context, q Query) ([]*Entry, error)
}
