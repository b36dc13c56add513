package audit_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custos-uem/custos/audit"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

func TestRecordFillsTimeAndOutcomeAndStores(t *testing.T) {
	for _, b := range sqltest.Backends(t) {
		t.Run(b, func(t *testing.T) {
			db := sqltest.Open(t, b)
			now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
			l := &audit.Logger{Store: db, Now: func() time.Time { return now }}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // the client went away: the entry is still written
			l.Record(ctx, audit.Entry{Actor: "a1", ActorIP: "192.0.2.1", Action: "user.create", ObjectType: "user", ObjectID: "u1", RequestID: "r1",
				Detail: map[string]any{"email": "<script>alert(1)</script>"}})
			es, err := l.List(context.Background(), audit.Query{Actor: "a1"})
			if err != nil || len(es) != 1 {
				t.Fatalf("List = %v, %v", es, err)
			}
			e := es[0]
			if !e.At.Equal(now) || e.Outcome != audit.OutcomeOK || e.RequestID != "r1" || e.ActorIP != "192.0.2.1" || e.Detail["email"] != "<script>alert(1)</script>" {
				t.Fatalf("stored %+v", e)
			}
		})
	}
}

type failingStore struct{ audit.Store }

func (failingStore) AppendAudit(context.Context, *audit.Entry) error { return errors.New("disk full") }

func TestRecordFailureIsLoggedAndCountedNeverPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	l := &audit.Logger{Store: failingStore{}, Failures: audit.NewFailureCounter(reg)}
	var buf bytes.Buffer
	ctx := httpx.WithLogger(context.Background(), slog.New(slog.NewTextHandler(&buf, nil)))
	l.Record(ctx, audit.Entry{Actor: "a1", Action: "device.remove", ObjectID: "d1"})
	if got := counter(t, reg, "custos_audit_failures_total"); got != 1 {
		t.Errorf("custos_audit_failures_total = %v, want 1", got)
	}
	out := buf.String()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "device.remove") || !strings.Contains(out, "disk full") {
		t.Errorf("log does not keep the lost entry: %s", out)
	}
	var nilLogger *audit.Logger
	nilLogger.Record(ctx, audit.Entry{Action: "x"}) // no-op
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
