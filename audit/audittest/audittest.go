// Package audittest is the conformance suite of audit.Store, run by every
// implementation against each of its backends.
package audittest

import (
	"context"
	"fmt"
	"github.com/custos-uem/custos/storetest"
	"reflect"
	"testing"
	"time"

	"github.com/custos-uem/custos/audit"
	"github.com/custos-uem/custos/user/usertest"
)

// Run runs the suite; open must return an empty store of its own for each
// call (the subtests run in parallel).
func Run(t *testing.T, open func(t *testing.T) audit.Store) {
	storetest.Run(t, open, []storetest.Case[audit.Store]{
		{Name: "AppendAuditSetsIncreasingIDs", Fn: testAppendIDs},
		{Name: "AppendAuditRoundTripsDetail", Fn: testDetail},
		{Name: "ListAuditFiltersNewestFirst", Fn: testListFilters},
		{Name: "ListAuditPagesBackwards", Fn: testListPages},
		{Name: "ListAuditCapsLimitAtMaxPage", Fn: testListCap},
	})
}

// t0 is the suite's clock: microseconds in UTC, which is what stores keep.
var t0 = time.Date(2031, 3, 4, 5, 6, 7, 8000, time.UTC)

func entry(actor, action, objectID string, at time.Time) *audit.Entry {
	return &audit.Entry{At: at, Actor: actor, ActorIP: "192.0.2.1", Action: action, ObjectType: "user",
		ObjectID: objectID, RequestID: "req-" + objectID, Outcome: "ok"}
}

func appendAudit(t testing.TB, s audit.Store, e *audit.Entry) *audit.Entry {
	t.Helper()
	if err := s.AppendAudit(context.Background(), e); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	return e
}

func list(t testing.TB, s audit.Store, q audit.Query) []*audit.Entry {
	t.Helper()
	got, err := s.ListAudit(context.Background(), q)
	if err != nil {
		t.Fatalf("ListAudit(%+v): %v", q, err)
	}
	return got
}

func wantEntries(t testing.TB, what string, got, want []*audit.Entry) {
	t.Helper()
	if len(got) != len(want) || len(got) > 0 && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testAppendIDs(t *testing.T, s audit.Store) {
	var last int64
	for i := range 3 {
		e := appendAudit(t, s, entry("admin", "user.create", fmt.Sprint(i), t0))
		if e.ID <= last {
			t.Fatalf("entry %d got ID %d after %d, want increasing", i, e.ID, last)
		}
		last = e.ID
	}
}

func testDetail(t *testing.T, s audit.Store) {
	tests := []struct {
		name   string
		detail map[string]any
	}{
		{"ok/nil", nil},
		{"ok/nested", map[string]any{"count": 2.0, "ok": true, "list": []any{"a", 1.5}, "nested": map[string]any{"k": "v"}}},
		{"ok/hostile strings", map[string]any{usertest.ScriptTag: usertest.SQLInject, "tmpl": "{{.}}", "nul": "a\x00b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := entry(usertest.SQLInject, "user.update", usertest.ScriptTag, t0)
			e.Detail = tc.detail
			appendAudit(t, s, e)
			wantEntries(t, "ListAudit", list(t, s, audit.Query{Limit: 1}), []*audit.Entry{e})
		})
	}
}

func testListFilters(t *testing.T, s audit.Store) {
	a := appendAudit(t, s, entry("alice", "user.create", "u1", t0))
	b := appendAudit(t, s, entry("bob", "user.create", "u2", t0.Add(time.Minute)))
	c := appendAudit(t, s, entry("alice", "device.remove", "d1", t0.Add(2*time.Minute)))
	d := appendAudit(t, s, entry("alice", "user.create", "u2", t0.Add(3*time.Minute)))
	tests := []struct {
		name string
		q    audit.Query
		want []*audit.Entry
	}{
		{"ok/no filter", audit.Query{}, []*audit.Entry{d, c, b, a}},
		{"ok/actor", audit.Query{Actor: "alice"}, []*audit.Entry{d, c, a}},
		{"ok/action", audit.Query{Action: "user.create"}, []*audit.Entry{d, b, a}},
		{"ok/object", audit.Query{ObjectID: "u2"}, []*audit.Entry{d, b}},
		{"ok/since is inclusive", audit.Query{Since: t0.Add(time.Minute)}, []*audit.Entry{d, c, b}},
		{"ok/combined", audit.Query{Actor: "alice", Action: "user.create", Since: t0.Add(time.Second)}, []*audit.Entry{d}},
		{"ok/nothing matches", audit.Query{Actor: "mallory"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantEntries(t, fmt.Sprintf("ListAudit(%+v)", tc.q), list(t, s, tc.q), tc.want)
		})
	}
}

func testListPages(t *testing.T, s audit.Store) {
	var all []*audit.Entry
	for i := range 5 {
		all = append([]*audit.Entry{appendAudit(t, s, entry("admin", "user.create", fmt.Sprint(i), t0))}, all...)
	}
	var got []*audit.Entry
	for q := (audit.Query{Limit: 2}); ; {
		page := list(t, s, q)
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		q.BeforeID = page[len(page)-1].ID
	}
	wantEntries(t, "ListAudit paged", got, all)
}

func testListCap(t *testing.T, s audit.Store) {
	for i := range audit.MaxPage + 1 {
		appendAudit(t, s, entry("admin", "user.create", fmt.Sprint(i), t0))
	}
	if got := list(t, s, audit.Query{Limit: audit.MaxPage + 1}); len(got) != audit.MaxPage {
		t.Fatalf("ListAudit(Limit MaxPage+1) returned %d, want %d", len(got), audit.MaxPage)
	}
	if got := list(t, s, audit.Query{}); len(got) == 0 || len(got) > audit.MaxPage {
		t.Fatalf("ListAudit(no limit) returned %d", len(got))
	}
}
