package sqlstore_test

import (
	"testing"

	"github.com/custos-uem/custos/platform/apple/appletest"
)

func TestAppleStores(t *testing.T) { forEachBackend(t, appletest.RunStore) }
