package audit

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custos-uem/custos/httpx"
)

// Outcomes of an entry.
const (
	OutcomeOK     = "ok"     // the action was carried out
	OutcomeFailed = "failed" // the action was refused or failed (Detail["error"] has the code)
	OutcomeDenied = "denied" // the caller was not allowed (revoked or expired token, missing role)
)

// Logger records audit entries on behalf of the request that performed the
// action.
//
// When an entry is written: in the same request, right after the action
// (successful or not), before the answer is sent. The action and its entry
// are not one transaction — the stores are separate concepts and a
// dependency between them would couple every service to the audit trail —
// so a failure to append is not allowed to fail (or undo) an action that
// already happened. Instead it is logged at error level with the whole
// entry (so the log keeps what the trail lost) and counted in
// custos_audit_failures_total, which operators alert on.
//
// A nil *Logger records nothing.
type Logger struct {
	Store Store
	Now   func() time.Time
	// Failures counts entries that could not be stored (NewFailureCounter);
	// optional.
	Failures prometheus.Counter
}

// NewFailureCounter registers custos_audit_failures_total on reg.
func NewFailureCounter(reg prometheus.Registerer) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "custos_audit_failures_total",
		Help: "Audit entries that could not be stored (the action itself went ahead; the entry is in the error log).",
	})
	reg.MustRegister(c)
	return c
}

// Record appends e, filling At (when zero) and RequestID (from ctx, when
// empty). It never fails its caller: an error is logged and counted. The
// entry is written even when the client has gone away (ctx canceled).
func (l *Logger) Record(ctx context.Context, e Entry) {
	if l == nil || l.Store == nil {
		return
	}
	if e.At.IsZero() {
		if l.Now != nil {
			e.At = l.Now().UTC()
		} else {
			e.At = time.Now().UTC()
		}
	}
	if e.RequestID == "" {
		e.RequestID = httpx.RequestID(ctx)
	}
	if e.Outcome == "" {
		e.Outcome = OutcomeOK
	}
	if err := l.Store.AppendAudit(context.WithoutCancel(ctx), &e); err != nil {
		if l.Failures != nil {
			l.Failures.Inc()
		}
		httpx.Logger(ctx).Error("AUDIT ENTRY LOST: could not store audit entry",
			"err", err, "audit_action", e.Action, "audit_actor", e.Actor, "audit_actor_ip", e.ActorIP,
			"audit_object_type", e.ObjectType, "audit_object_id", e.ObjectID, "audit_outcome", e.Outcome,
			"audit_at", e.At, "audit_detail", e.Detail)
	}
}

// List returns entries matching q, newest first (the store caps Limit).
func (l *Logger) List(ctx context.Context, q Query) ([]*Entry, error) {
	if q.Limit <= 0 || q.Limit > MaxPage {
		q.Limit = MaxPage
	}
	return l.Store.ListAudit(ctx, q)
}
