package syncml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustDecode(t *testing.T, b []byte) *Message {
	t.Helper()
	m, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return m
}

// roundTrip checks Decode(Encode(m)) == m.
func roundTrip(t *testing.T, m *Message) {
	t.Helper()
	enc := Encode(m)
	back, err := Decode(enc)
	if err != nil {
		t.Fatalf("Decode(Encode(m)): %v\n%s", err, enc)
	}
	if !reflect.DeepEqual(m, back) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v\n%s", back, m, enc)
	}
}

// TestPublishedExamples replays the messages of Microsoft's documents
// (testdata/README.md) and checks what the adapter reads from them.
func TestPublishedExamples(t *testing.T) {
	t.Run("ok/package-1-client-initiated", func(t *testing.T) {
		m := mustDecode(t, mustRead(t, "pkg1-client-initiated.xml"))
		h := m.Header
		if h.VerDTD != "1.2" || h.VerProto != "DM/1.2" || h.SessionID != "1" || h.MsgID != "1" ||
			h.Source != "IMEI:001004FF1234567" || h.Target != "https://www.contoso.com/mgmt-server" || h.Meta == nil || h.Meta.MaxMsgSize != "65535" {
			t.Fatalf("header %+v", h)
		}
		c := m.Body.Commands
		if len(c) != 3 || c[0].Name != CmdAlert || c[0].Data != AlertClientInitiated || c[1].Data != AlertClientEvent ||
			c[1].Items[0].Meta.Type != AlertTypeLoginStatus || c[2].Name != CmdReplace || len(c[2].Items) != 5 || !m.Body.Final {
			t.Fatalf("body %+v", m.Body)
		}
		if it := c[2].Items[1]; it.Source != "./DevInfo/Man" || it.Data != "Contoso" {
			t.Fatalf("DevInfo item %+v", it)
		}
		roundTrip(t, m)
	})
	t.Run("ok/package-2-server-commands", func(t *testing.T) {
		m := mustDecode(t, mustRead(t, "pkg2-server-commands.xml"))
		c := m.Body.Commands
		if len(c) != 7 || c[0].Cmd != "SyncHdr" || c[0].CmdRef != "0" || c[4].Name != CmdGet || c[5].Items[0].Meta.Format != "int" ||
			c[6].Name != CmdExec || c[6].Items[0].Target != "./Vendor/MSFT/RemoteLock/Lock" {
			t.Fatalf("body %+v", c)
		}
		roundTrip(t, m)
	})
	t.Run("ok/package-3-status-and-results", func(t *testing.T) {
		m := mustDecode(t, mustRead(t, "pkg3-device-status-results.xml"))
		c := m.Body.Commands
		if len(c) != 5 || c[3].Data != StatusAccepted || c[4].Name != CmdResults || c[4].CmdRef != "5" || c[4].Items[0].Data != "10.0.19045.3570" {
			t.Fatalf("body %+v", c)
		}
		roundTrip(t, m)
	})
	t.Run("ok/unenroll-1226", func(t *testing.T) {
		m := mustDecode(t, mustRead(t, "unenroll-1226.xml"))
		a := m.Body.Commands[1]
		if a.Data != AlertGeneric || a.Items[0].Meta.Type != AlertTypeUserUnenroll || a.Items[0].Meta.Format != "int" || a.Items[0].Data != "1" {
			t.Fatalf("alert %+v", a)
		}
		roundTrip(t, m)
	})
}

func TestEncodeNamespaces(t *testing.T) {
	m := &Message{Header: Header{VerDTD: VerDTD, VerProto: VerProto, SessionID: "1", MsgID: "1"},
		Body: Body{Commands: []Command{{Name: CmdReplace, CmdID: "2", Items: []Item{{Target: "./a", Meta: &Meta{Format: "int"}, Data: "1"}}}}, Final: true}}
	enc := string(Encode(m))
	for _, want := range []string{`<SyncML xmlns="SYNCML:SYNCML1.2">`, `<Format xmlns="syncml:metinf">int</Format>`, `<Final/></SyncBody></SyncML>`} {
		if !strings.Contains(enc, want) {
			t.Fatalf("%s\nlacks %s", enc, want)
		}
	}
}

// TestRefused: what an attacker sends is refused with the named error,
// wherever in the message the limit is crossed.
func TestRefused(t *testing.T) {
	pkg1 := string(mustRead(t, "pkg1-client-initiated.xml"))
	nest := func(n int) string {
		return `<SyncML><SyncHdr/><SyncBody>` + strings.Repeat("<Atomic>", n) + strings.Repeat("</Atomic>", n) + `</SyncBody></SyncML>`
	}
	for _, tc := range []struct {
		name string
		in   string
		want error
	}{
		{"fail/xml-entity-expansion", `<?xml version="1.0"?><!DOCTYPE SyncML [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><SyncML><SyncHdr/><SyncBody><Alert><CmdID>1</CmdID><Data>&b;</Data></Alert></SyncBody></SyncML>`, ErrDTD},
		{"fail/external-entity", `<!DOCTYPE SyncML SYSTEM "file:///etc/passwd"><SyncML/>`, ErrDTD},
		{"fail/undeclared-entity", `<SyncML><SyncHdr/><SyncBody><Alert><Data>&xxe;</Data></Alert></SyncBody></SyncML>`, ErrMalformed},
		{"fail/xml-deep-nesting", `<SyncML><SyncHdr/><SyncBody>` + strings.Repeat("<Item>", 100000) + `</SyncBody></SyncML>`, ErrTooDeep},
		{"fail/atomic-nesting", nest(MaxAtomicDepth + 1), ErrTooDeep},
		{"fail/oversized-body", pkg1 + strings.Repeat(" ", MaxBody), ErrTooLarge},
		{"fail/too-many-commands", `<SyncML><SyncHdr/><SyncBody>` + strings.Repeat("<Get><CmdID>1</CmdID></Get>", MaxCommands+1) + `</SyncBody></SyncML>`, ErrTooMany},
		{"fail/too-many-elements", `<SyncML><SyncHdr/><SyncBody><Get>` + strings.Repeat("<NoResp/>", MaxElements) + `</Get></SyncBody></SyncML>`, ErrTooMany},
		{"fail/mismatched-tags", `<SyncML><SyncHdr></SyncBody></SyncML>`, ErrMalformed},
		{"fail/two-roots", `<SyncML><SyncHdr/><SyncBody/></SyncML><SyncML/>`, ErrMalformed},
		{"fail/wrong-root", `<Envelope><SyncHdr/><SyncBody/></Envelope>`, ErrMalformed},
		{"fail/no-header", `<SyncML><SyncBody/></SyncML>`, ErrMalformed},
		{"fail/unknown-command", `<SyncML><SyncHdr/><SyncBody><Launch/></SyncBody></SyncML>`, ErrMalformed},
		{"fail/status-inside-atomic", `<SyncML><SyncHdr/><SyncBody><Atomic><Status/></Atomic></SyncBody></SyncML>`, ErrMalformed},
		{"fail/processing-instruction", `<SyncML><?php x?><SyncHdr/><SyncBody/></SyncML>`, ErrMalformed},
		{"fail/truncated", pkg1[:len(pkg1)/2], ErrMalformed},
		// Decoding stops at the unknown command; the limits still read the
		// rest of the message, and the limit is the reason given.
		{"fail/dtd-after-malformed-command", `<SyncML><SyncHdr/><SyncBody><Launch/></SyncBody></SyncML><!DOCTYPE x>`, ErrDTD},
		{"fail/too-many-elements-after-malformed-command", `<SyncML><SyncHdr/><SyncBody><Launch/><Get>` + strings.Repeat("<NoResp/>", MaxElements) + `</Get></SyncBody></SyncML>`, ErrTooMany},
		{"fail/text-after-root", `<SyncML><SyncHdr/><SyncBody/></SyncML>x`, ErrMalformed},
		{"fail/empty", ``, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode: %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("ok/xml-declaration-and-nesting-within-limits", func(t *testing.T) {
		if _, err := Decode([]byte(`<?xml version="1.0" encoding="utf-8"?>` + nest(MaxAtomicDepth))); err != nil {
			t.Fatal(err)
		}
	})
}

// TestEscapePlain: the fast path of escape writes what EscapeText writes.
func TestEscapePlain(t *testing.T) {
	for c := range 256 {
		s := "a" + string(rune(c)) + "b"
		var got, want bytes.Buffer
		escape(&got, s)
		_ = xml.EscapeText(&want, []byte(s))
		if got.String() != want.String() {
			t.Fatalf("escape(%q) = %q, want %q", s, got.String(), want.String())
		}
	}
}

func TestDecodeCommands(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"fail/empty", ``},
		{"fail/final", `<Get><CmdID>1</CmdID></Get><Final/>`},
		{"fail/entity", `<!DOCTYPE x [<!ENTITY a "b">]><Get/>`},
		{"fail/not-a-command", `<Item/>`},
		{"fail/close-the-wrapper", `</SyncBody><SyncBody><Get/>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeCommands([]byte(tc.in)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	t.Run("ok/two-commands", func(t *testing.T) {
		cmds, err := DecodeCommands([]byte(`<Replace><CmdID>9</CmdID><Item><Target><LocURI>./a</LocURI></Target><Data>x</Data></Item></Replace><Exec><CmdID>3</CmdID><Item><Target><LocURI>./b</LocURI></Target></Item></Exec>`))
		if err != nil || len(cmds) != 2 || cmds[1].Items[0].Target != "./b" {
			t.Fatalf("%+v, %v", cmds, err)
		}
	})
}

// TestInlineXMLData: a Data value sent as inline markup (Format xml) is
// kept as its text.
func TestInlineXMLData(t *testing.T) {
	in := `<SyncML><SyncHdr/><SyncBody><Results><CmdID>1</CmdID><Item><Source><LocURI>./x</LocURI></Source><Data><a b="&amp;">t&lt;</a></Data></Item></Results></SyncBody></SyncML>`
	m := mustDecode(t, []byte(in))
	if got := m.Body.Commands[0].Items[0].Data; got != `<a b="&amp;">t&lt;</a>` {
		t.Fatalf("Data = %q", got)
	}
	roundTrip(t, m)
}

// genText returns XML-representable text, sometimes with markup
// characters and new lines.
func genText(r *rand.Rand, trim bool) string {
	const alphabet = "abcXYZ019 ./:-_<>&\"'\n\té€"
	rs := []rune(alphabet)
	n := r.IntN(12)
	var sb strings.Builder
	for range n {
		sb.WriteRune(rs[r.IntN(len(rs))])
	}
	if trim {
		return strings.TrimSpace(sb.String())
	}
	return sb.String()
}

func genMeta(r *rand.Rand) *Meta {
	if r.IntN(2) == 0 {
		return nil
	}
	return &Meta{Format: genText(r, true), Type: genText(r, true), MaxMsgSize: genText(r, true)}
}

func genCommand(r *rand.Rand, depth int) Command {
	names := []string{CmdAlert, CmdStatus, CmdResults, CmdGet, CmdReplace, CmdAdd, CmdDelete, CmdExec, CmdAtomic, CmdSequence}
	if depth > 0 {
		names = []string{CmdGet, CmdReplace, CmdAdd, CmdDelete, CmdExec, CmdAtomic, CmdSequence}
	}
	if depth >= MaxAtomicDepth-1 {
		names = names[:len(names)-2]
	}
	c := Command{Name: names[r.IntN(len(names))], CmdID: genText(r, true), MsgRef: genText(r, true), CmdRef: genText(r, true),
		Cmd: genText(r, true), TargetRef: genText(r, true), SourceRef: genText(r, true), NoResp: r.IntN(4) == 0,
		Correlator: genText(r, true), Meta: genMeta(r), Data: genText(r, true)}
	for range r.IntN(3) {
		c.Items = append(c.Items, Item{Target: genText(r, true), Source: genText(r, true), Meta: genMeta(r), Data: genText(r, false)})
	}
	if IsContainer(c.Name) {
		for range r.IntN(3) {
			c.Commands = append(c.Commands, genCommand(r, depth+1))
		}
	}
	return c
}

func genMessage(r *rand.Rand) *Message {
	m := &Message{Header: Header{VerDTD: genText(r, true), VerProto: genText(r, true), SessionID: genText(r, true), MsgID: genText(r, true),
		Target: genText(r, true), Source: genText(r, true), SourceName: genText(r, true), Meta: genMeta(r)}}
	if m.Header.Source == "" {
		m.Header.SourceName = "" // a Source without LocURI and LocName is not written
	}
	if r.IntN(3) == 0 {
		m.Header.Cred = &Cred{Meta: genMeta(r), Data: genText(r, true)}
	}
	for range r.IntN(6) {
		m.Body.Commands = append(m.Body.Commands, genCommand(r, 0))
	}
	m.Body.Final = r.IntN(2) == 0
	return m
}

// TestRoundTripGenerated: Decode(Encode(m)) == m for generated messages.
func TestRoundTripGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		roundTrip(t, genMessage(r))
	}
}

// FuzzDecode: no panic on any input, and what decodes is a fixed point of
// Encode/Decode.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"pkg1-client-initiated.xml", "pkg2-server-commands.xml", "pkg3-device-status-results.xml", "unenroll-1226.xml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<SyncML><SyncHdr/><SyncBody><Atomic><Sequence><Replace/></Sequence></Atomic></SyncBody></SyncML>`))
	f.Add([]byte(`<!DOCTYPE a [<!ENTITY x "y">]><SyncML/>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		enc := Encode(m)
		back, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, enc)
		}
		if !bytes.Equal(Encode(back), enc) {
			t.Fatalf("not a fixed point:\n%s\n%s", enc, Encode(back))
		}
	})
}

// FuzzRoundTrip: generated messages from a fuzzed seed round-trip.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		roundTrip(t, genMessage(rand.New(rand.NewPCG(a, b))))
	})
}

func BenchmarkDecodePackage1(b *testing.B) {
	in, _ := os.ReadFile(filepath.Join("testdata", "pkg1-client-initiated.xml"))
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := Decode(in); err != nil {
			b.Fatal(err)
		}
	}
}
