// Package storetest runs the conformance suites of the store contracts
// (usertest, devicetest, activationtest, authtest, audittest, pkitest):
// each suite is a table of cases, each case gets stores of its own, and
// the cases run in parallel, so one backend's suite finishes in the time of
// its slowest case.
package storetest

import (
	"errors"
	"reflect"
	"testing"
)

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

// WantErr fails unless err matches want (nil meaning success), compared
// with errors.Is so stores may wrap their sentinels.
func WantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// WantEqual fails unless got and want are deeply equal.
func WantEqual(t testing.TB, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}
