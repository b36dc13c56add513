// Package storetest runs the conformance suites of the store contracts
// (usertest, devicetest, activationtest, authtest, audittest, pkitest):
// each suite is a table of cases, each case gets stores of its own, and
// the cases run in parallel, so one backend's suite finishes in the time of
// its slowest case.
package storetest

import "testing"

// Case is one named check of a store contract.
type Case[S any] struct {
	Name string
	Fn   func(*testing.T, S)
}

// Run runs every case in parallel on fresh stores from open.
func Run[S any](t *testing.T, open func(*testing.T) S, cases []Case[S]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			tc.Fn(t, open(t))
		})
	}
}
