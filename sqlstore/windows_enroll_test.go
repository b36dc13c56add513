package sqlstore_test

import (
	"testing"

	"github.com/custos-uem/custos/platform/windows/mde/mdetest"
)

// TestWindowsEnrollStores runs the federated token store's conformance
// suite on SQLite and PostgreSQL.
func TestWindowsEnrollStores(t *testing.T) { forEachBackend(t, mdetest.Run) }
