package mde_test

import (
	"io"
	"log/slog"
	"os"
	"testing"
)

// TestMain silences the request log the handlers write to the default
// logger (refusals are expected by the hundred here).
func TestMain(m *testing.M) {
	if os.Getenv("MDE_TEST_LOG") == "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	os.Exit(m.Run())
}
