package sqlstore_test

import (
	"testing"

	"github.com/custos-uem/custos/command/commandtest"
)

func TestCommandStore(t *testing.T) { forEachBackend(t, commandtest.Run) }
