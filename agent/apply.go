package agent

import (
	"context"

	wire "github.com/custos-uem/custos/platform/agent"
)

// Item statuses of an acknowledgment (wire.ItemStatus.Status).
const (
	StatusApplied = "applied"
	StatusFailed  = "failed"
)

// Applier makes the device match a configuration (step 11: "applies the …
// IT policy rules"). The Client calls it when the Core's configuration
// version differs from the one last acknowledged, and acknowledges what it
// returns (step 12).
type Applier interface {
	// Apply moves the device from prev (the configuration last applied;
	// zero on the first activation) to next, and returns one status per
	// item of next, in the same order. Failing items are reported with
	// StatusFailed and a short Error; an error return means nothing could
	// be applied at all (the Client then acknowledges nothing and retries
	// with backoff).
	Apply(ctx context.Context, prev, next wire.Configuration) ([]wire.ItemStatus, error)
}

// NoApplier applies nothing: it reports each item failed, naming its kind.
// It is the default until a platform's applier exists; an empty
// configuration is acknowledged as applied.
type NoApplier struct{}

// Apply implements Applier.
func (NoApplier) Apply(_ context.Context, _, next wire.Configuration) ([]wire.ItemStatus, error) {
	if len(next.Items) == 0 {
		return nil, nil
	}
	out := make([]wire.ItemStatus, len(next.Items))
	for i, it := range next.Items {
		msg, _ := Clean("no applier for item kind " + it.Kind)
		out[i] = wire.ItemStatus{ID: it.ID, Status: StatusFailed, Error: msg}
	}
	return out, nil
}

// statuses checks what an Applier returned against the items: one per item,
// same order and IDs; a missing or mismatched status is reported failed.
// The result never exceeds wire.MaxItems.
func statuses(items []wire.Item, got []wire.ItemStatus) []wire.ItemStatus {
	if len(items) == 0 {
		return nil
	}
	n := min(len(items), wire.MaxItems)
	out := make([]wire.ItemStatus, n)
	for i := range n {
		id := items[i].ID
		if i < len(got) && got[i].ID == id && (got[i].Status == StatusApplied || got[i].Status == StatusFailed) {
			out[i] = got[i]
			out[i].Error, _ = Clean(out[i].Error)
			continue
		}
		out[i] = wire.ItemStatus{ID: id, Status: StatusFailed, Error: "the applier reported no status for this item"}
	}
	return out
}
