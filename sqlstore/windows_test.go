package sqlstore_test

import (
	"testing"

	"github.com/custos-uem/custos/platform/windows/windowstest"
)

func TestWindowsSessionStore(t *testing.T) { forEachBackend(t, windowstest.Run) }
