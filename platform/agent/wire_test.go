package agent

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/custos-uem/custos/httpx"
)

// FuzzRequestBodies feeds arbitrary bytes to the decoder every device
// endpoint uses, for each request type of the protocol. Property: decoding
// never panics, and what decodes re-encodes to a fixed point: decoding the
// encoding and encoding again gives the same bytes. (Not the same Go value:
// an empty list and an absent one are the same on the wire, "items":[] and
// no "items" both mean none; the corpus entry that found this is kept.)
func FuzzRequestBodies(f *testing.F) {
	f.Add(byte(0), []byte(`{"login":"a@example.org","password":"K7QM-3ZPA","platform":"android","os_version":"14","hardware_id":"abc"}`))
	f.Add(byte(1), []byte(`{"csr":"-----BEGIN CERTIFICATE REQUEST-----\n"}`))
	f.Add(byte(2), []byte(`{"device_id":"d","info":{"model":"<script>","attributes":{"k":"v"}},"software":[{"name":"x","version":"1"}]}`))
	f.Add(byte(3), []byte(`{"device_id":"d","version":"0","items":[{"id":"i","status":"applied"}]}`))
	f.Add(byte(2), []byte(`{"device_id":"d","software":null}`))
	f.Add(byte(2), []byte(`{"device_id":"d","config_version":"0","push":{"provider":"fcm","token":"t"}}`))
	f.Add(byte(4), []byte(`{"device_id":"d","result":{"command_id":"c","status":"acknowledged","data":{"a":[1,2,{"b":null}]}}}`))
	f.Add(byte(4), []byte(`{"device_id":"d","result":{"command_id":"c","status":"error","message":"\u0000<script>"}}`))
	f.Add(byte(5), []byte(`{"device_id":"d","timeout_seconds":55}`))
	f.Fuzz(func(t *testing.T, kind byte, body []byte) {
		var v any
		switch kind % 6 {
		case 0:
			v = &ActivateRequest{}
		case 1:
			v = &EnrollRequest{}
		case 2:
			v = &CheckinRequest{}
		case 3:
			v = &AckRequest{}
		case 4:
			v = &CommandsRequest{}
		default:
			v = &WaitRequest{}
		}
		if err := httpx.Unmarshal(body, v); err != nil {
			return
		}
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("decoded value does not encode: %v", err)
		}
		again := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := httpx.Unmarshal(out, again); err != nil {
			t.Fatalf("re-decoding %s: %v", out, err)
		}
		out2, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != string(out2) {
			t.Fatalf("round trip changed the value:\n%s\n%s", out, out2)
		}
	})
}
