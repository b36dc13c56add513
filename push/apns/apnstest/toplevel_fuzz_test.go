package apnstest

import (
	"encoding/json"
	"testing"
)

// FuzzTopLevel checks the fake's payload scanner against encoding/json.
func FuzzTopLevel(f *testing.F) {
	for _, s := range []string{`{"mdm":"x"}`, `{"aps":{"alert":"}"}}`, `{"a":[1,{"b":"\""}],"mdm":"m\"q"}`, `{}`, `[]`, `{"mdm":1}`, ` { "aps" : { } , "x" : true } `, `{"aps":"s"}`, `{"mdm":1,"mdm":"x"}`, `{"aps":{},"aps":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		magic, hasMDM, hasAPS, ok := topLevel(body)
		var ref map[string]json.RawMessage
		if json.Unmarshal(body, &ref) != nil {
			if ok {
				t.Fatalf("accepted %q", body)
			}
			return
		}
		wantOK := true
		var wantMagic string
		raw, wantMDM := ref["mdm"]
		if wantMDM && json.Unmarshal(raw, &wantMagic) != nil {
			wantOK = false
		}
		rawAPS, wantAPS := ref["aps"]
		if wantAPS && rawAPS[0] != '{' {
			wantOK = false
		}
		if !wantOK {
			if ok {
				t.Fatalf("accepted %q", body)
			}
			return
		}
		if !ok || hasMDM != wantMDM || hasAPS != wantAPS || magic != wantMagic {
			t.Fatalf("%q: got %q %v %v %v", body, magic, hasMDM, hasAPS, ok)
		}
	})
}
