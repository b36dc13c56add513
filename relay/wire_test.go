package relay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

// FuzzReadMsg: readMsg of arbitrary bytes never panics, never allocates
// past its limit, and a Hello written by writeMsg reads back equal.
func FuzzReadMsg(f *testing.F) {
	var b bytes.Buffer
	writeMsg(&b, Hello{Version: 1, ServerID: "cabc", Key: NewKey(), Instance: "i", Slot: 1, License: "-----BEGIN CUSTOS LICENSE-----"})
	f.Add(b.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add([]byte{0, 0, 0, 5, '{', '"', 'x', '"', '}'})
	f.Fuzz(func(t *testing.T, in []byte) {
		var h Hello
		err := readMsg(bytes.NewReader(in), MaxHello, &h)
		if len(in) >= 4 && binary.BigEndian.Uint32(in) > MaxHello && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("a %d-byte message passed the %d-byte limit: %v", binary.BigEndian.Uint32(in), MaxHello, err)
		}
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := writeMsg(&out, h); err != nil {
			t.Fatal(err)
		}
		var again Hello
		if err := readMsg(&out, MaxHello, &again); err != nil || !reflect.DeepEqual(h, again) {
			t.Fatalf("round trip: %+v → %+v (%v)", h, again, err)
		}
	})
}
