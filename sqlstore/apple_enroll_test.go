package sqlstore_test

import (
	"testing"

	"github.com/custos-uem/custos/platform/apple/enroll/enrolltest"
)

// TestAppleEnrollStores runs the SCEP challenge store's conformance suite
// on SQLite and PostgreSQL.
func TestAppleEnrollStores(t *testing.T) { forEachBackend(t, enrolltest.Run) }
