package syncml

import (
	"bytes"
	"encoding/xml"
)

// Encode writes m as the XML Windows expects: the SyncML element in the
// SYNCML:SYNCML1.2 namespace, Meta children in syncml:metinf, elements in
// the order of OMA-TS-DM_RepPro's DTD.
func Encode(m *Message) []byte {
	var b bytes.Buffer
	b.Grow(1024)
	b.WriteString(`<SyncML xmlns="` + NamespaceSyncML + `"><SyncHdr>`)
	h := &m.Header
	leaf(&b, "VerDTD", h.VerDTD)
	leaf(&b, "VerProto", h.VerProto)
	leaf(&b, "SessionID", h.SessionID)
	leaf(&b, "MsgID", h.MsgID)
	if h.Target != "" {
		b.WriteString("<Target>")
		leaf(&b, "LocURI", h.Target)
		b.WriteString("</Target>")
	}
	if h.Source != "" || h.SourceName != "" {
		b.WriteString("<Source>")
		leaf(&b, "LocURI", h.Source)
		leaf(&b, "LocName", h.SourceName)
		b.WriteString("</Source>")
	}
	if h.Cred != nil {
		b.WriteString("<Cred>")
		meta(&b, h.Cred.Meta)
		always(&b, "Data", h.Cred.Data)
		b.WriteString("</Cred>")
	}
	meta(&b, h.Meta)
	b.WriteString("</SyncHdr><SyncBody>")
	EncodeCommands(&b, m.Body.Commands)
	if m.Body.Final {
		b.WriteString("<Final/>")
	}
	b.WriteString("</SyncBody></SyncML>")
	return b.Bytes()
}

// EncodeCommands writes commands in order.
func EncodeCommands(b *bytes.Buffer, cmds []Command) {
	for i := range cmds {
		command(b, &cmds[i])
	}
}

func command(b *bytes.Buffer, c *Command) {
	b.WriteByte('<')
	b.WriteString(c.Name)
	b.WriteByte('>')
	always(b, "CmdID", c.CmdID)
	leaf(b, "MsgRef", c.MsgRef)
	leaf(b, "CmdRef", c.CmdRef)
	leaf(b, "Cmd", c.Cmd)
	leaf(b, "TargetRef", c.TargetRef)
	leaf(b, "SourceRef", c.SourceRef)
	if c.NoResp {
		b.WriteString("<NoResp/>")
	}
	leaf(b, "Correlator", c.Correlator)
	meta(b, c.Meta)
	leaf(b, "Data", c.Data)
	for i := range c.Items {
		item(b, &c.Items[i])
	}
	EncodeCommands(b, c.Commands)
	b.WriteString("</")
	b.WriteString(c.Name)
	b.WriteByte('>')
}

func item(b *bytes.Buffer, it *Item) {
	b.WriteString("<Item>")
	if it.Target != "" {
		b.WriteString("<Target>")
		leaf(b, "LocURI", it.Target)
		b.WriteString("</Target>")
	}
	if it.Source != "" {
		b.WriteString("<Source>")
		leaf(b, "LocURI", it.Source)
		b.WriteString("</Source>")
	}
	meta(b, it.Meta)
	leaf(b, "Data", it.Data)
	b.WriteString("</Item>")
}

func meta(b *bytes.Buffer, m *Meta) {
	if m == nil {
		return
	}
	b.WriteString("<Meta>")
	if m.Format != "" {
		b.WriteString(`<Format xmlns="` + NamespaceMetInf + `">`)
		escape(b, m.Format)
		b.WriteString("</Format>")
	}
	if m.Type != "" {
		b.WriteString(`<Type xmlns="` + NamespaceMetInf + `">`)
		escape(b, m.Type)
		b.WriteString("</Type>")
	}
	if m.MaxMsgSize != "" {
		b.WriteString(`<MaxMsgSize xmlns="` + NamespaceMetInf + `">`)
		escape(b, m.MaxMsgSize)
		b.WriteString("</MaxMsgSize>")
	}
	b.WriteString("</Meta>")
}

// leaf writes <name>v</name>, nothing when v is empty.
func leaf(b *bytes.Buffer, name, v string) {
	if v == "" {
		return
	}
	always(b, name, v)
}

func always(b *bytes.Buffer, name, v string) {
	b.WriteByte('<')
	b.WriteString(name)
	b.WriteByte('>')
	escape(b, v)
	b.WriteString("</")
	b.WriteString(name)
	b.WriteByte('>')
}

func escape(b *bytes.Buffer, s string) {
	// Most values (CmdIDs, codes, LocURIs) are plain printable ASCII, which
	// EscapeText writes unchanged: write them without its copy to []byte.
	if plain(s) {
		b.WriteString(s)
		return
	}
	// EscapeText also escapes \n and \r as character references, so values
	// survive XML's end-of-line normalisation.
	_ = xml.EscapeText(b, []byte(s))
}

// plain reports whether s is printable ASCII without a character that
// EscapeText escapes.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '&', c == '<', c == '>', c == '"', c == '\'':
			return false
		}
	}
	return true
}
