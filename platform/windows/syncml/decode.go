package syncml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Decode parses one SyncML message. Every token is checked against the
// wire limits (DTD/entities, depth, element count, matching tags) as it is
// read, before the decoder acts on it; a message that crosses a limit
// anywhere is refused for that limit, as if it had been checked whole
// before decoding.
func Decode(b []byte) (*Message, error) {
	if len(b) > MaxBody {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(b), MaxBody)
	}
	d := newDecoder(b)
	m, err := d.message()
	if err = d.finish(err); err != nil {
		return nil, err
	}
	return m, nil
}

func (d *decoder) message() (*Message, error) {
	start, err := d.root()
	if err != nil {
		return nil, err
	}
	if start.Name.Local != "SyncML" {
		return nil, fmt.Errorf("%w: root element %q, want SyncML", ErrMalformed, start.Name.Local)
	}
	m := &Message{}
	var sawHdr, sawBody bool
	err = d.children(start, func(el xml.StartElement) error {
		switch el.Name.Local {
		case "SyncHdr":
			if sawHdr {
				return fmt.Errorf("%w: two SyncHdr", ErrMalformed)
			}
			sawHdr = true
			return d.header(el, &m.Header)
		case "SyncBody":
			if sawBody {
				return fmt.Errorf("%w: two SyncBody", ErrMalformed)
			}
			sawBody = true
			return d.body(el, &m.Body)
		}
		return d.skip()
	})
	if err != nil {
		return nil, err
	}
	if !sawHdr || !sawBody {
		return nil, fmt.Errorf("%w: SyncHdr and SyncBody are required", ErrMalformed)
	}
	if n := Count(m.Body.Commands); n > MaxCommands {
		return nil, fmt.Errorf("%w: %d commands, at most %d", ErrTooMany, n, MaxCommands)
	}
	return m, nil
}

// DecodeCommands parses a fragment of SyncBody commands (an
// administrator's raw command) with the limits of a whole message; the
// CmdIDs in it are kept but the sender renumbers them.
func DecodeCommands(b []byte) ([]Command, error) {
	if len(b) > MaxBody {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	wrapped := make([]byte, 0, len(b)+24)
	wrapped = append(wrapped, "<SyncBody>"...)
	wrapped = append(wrapped, b...)
	wrapped = append(wrapped, "</SyncBody>"...)
	d := newDecoder(wrapped)
	cmds, err := d.fragment()
	if err = d.finish(err); err != nil {
		return nil, err
	}
	return cmds, nil
}

func (d *decoder) fragment() ([]Command, error) {
	start, err := d.root()
	if err != nil {
		return nil, err
	}
	var body Body
	if err := d.body(start, &body); err != nil {
		return nil, err
	}
	if body.Final {
		return nil, fmt.Errorf("%w: Final in a command fragment", ErrMalformed)
	}
	if n := Count(body.Commands); n == 0 || n > MaxCommands {
		return nil, fmt.Errorf("%w: %d commands, want 1 to %d", ErrTooMany, n, MaxCommands)
	}
	return body.Commands, nil
}

// decoder builds the model from raw tokens, each checked against the
// limits by token before the decoder sees it: one pass over the input.
type decoder struct {
	d *xml.Decoder
	// The limits pass: the open elements, how many elements and root
	// elements were read, and its first refusal (sticky).
	stack           []xml.Name
	elements, roots int
	refused         error
}

func newDecoder(b []byte) *decoder {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	return &decoder{d: d, stack: make([]xml.Name, 0, MaxDepth)}
}

// token returns the next raw token once it passed the limits: it refuses
// DTDs (a DOCTYPE is how entity expansion attacks start; SyncML over HTTP
// carries none), processing instructions other than the XML declaration,
// nesting deeper than MaxDepth, more than MaxElements elements, mismatched
// tags and anything after the root element; io.EOF only at the end of a
// complete document. RawToken allocates per token only, never per depth,
// so a nesting bomb costs one pass over at most MaxBody bytes.
func (d *decoder) token() (xml.Token, error) {
	if d.refused != nil {
		return nil, d.refused
	}
	tok, err := d.limits()
	if err != nil && err != io.EOF {
		d.refused = err
	}
	return tok, err
}

// limits reads one raw token and checks it (token's checks).
func (d *decoder) limits() (xml.Token, error) {
	tok, err := d.d.RawToken()
	if err == io.EOF {
		if len(d.stack) != 0 || d.roots != 1 {
			return nil, fmt.Errorf("%w: unterminated message", ErrMalformed)
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch t := tok.(type) {
	case xml.StartElement:
		if len(d.stack) == 0 {
			d.roots++
			if d.roots > 1 {
				return nil, fmt.Errorf("%w: more than one root element", ErrMalformed)
			}
		}
		d.elements++
		if d.elements > MaxElements {
			return nil, fmt.Errorf("%w: more than %d elements", ErrTooMany, MaxElements)
		}
		if len(d.stack) >= MaxDepth {
			return nil, fmt.Errorf("%w: deeper than %d", ErrTooDeep, MaxDepth)
		}
		d.stack = append(d.stack, t.Name)
	case xml.EndElement:
		if len(d.stack) == 0 || d.stack[len(d.stack)-1] != t.Name {
			return nil, fmt.Errorf("%w: unexpected end element %s", ErrMalformed, qname(t.Name))
		}
		d.stack = d.stack[:len(d.stack)-1]
	case xml.Directive:
		return nil, ErrDTD
	case xml.ProcInst:
		if t.Target != "xml" || d.elements > 0 {
			return nil, fmt.Errorf("%w: processing instruction %q", ErrMalformed, t.Target)
		}
	case xml.CharData:
		if len(d.stack) == 0 && len(bytes.TrimSpace(t)) > 0 {
			return nil, fmt.Errorf("%w: text outside the root element", ErrMalformed)
		}
	}
	return tok, nil
}

// next is token for the decoder inside the root element, where the end of
// the input is an error.
func (d *decoder) next() (xml.Token, error) {
	tok, err := d.token()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: unexpected end of the message", ErrMalformed)
	}
	return tok, err
}

// finish reads the rest of the input through the limits once decoding
// ended with err: what follows the root element must be white space, and a
// limit crossed after the point where decoding failed is still the reason
// the message is refused (the limits pass speaks first, as if it had run
// over the whole message before decoding).
func (d *decoder) finish(err error) error {
	for d.refused == nil {
		if _, terr := d.token(); terr == io.EOF {
			break
		}
	}
	if d.refused != nil {
		return d.refused
	}
	return err
}

func qname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

func (d *decoder) root() (xml.StartElement, error) {
	for {
		tok, err := d.next()
		if err != nil {
			return xml.StartElement{}, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se, nil
		}
	}
}

// children calls f for each child element of start until its end; f must
// consume the child entirely. Text between children is ignored.
func (d *decoder) children(start xml.StartElement, f func(xml.StartElement) error) error {
	for {
		tok, err := d.next()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if err := f(t); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		}
	}
}

// skip consumes the rest of the current element.
func (d *decoder) skip() error {
	depth := 1
	for depth > 0 {
		tok, err := d.next()
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
	return nil
}

// text returns the character data of the current element; child elements
// are an error (leaf elements only).
func (d *decoder) text() (string, error) {
	var sb strings.Builder
	for {
		tok, err := d.next()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.CharData:
			sb.Write(t)
		case xml.StartElement:
			return "", fmt.Errorf("%w: element %s inside a text element", ErrMalformed, t.Name.Local)
		case xml.EndElement:
			return sb.String(), nil
		}
	}
}

// trimmed is text with surrounding white space removed (indented
// documents put new lines around values like CmdID).
func (d *decoder) trimmed() (string, error) {
	s, err := d.text()
	return strings.TrimSpace(s), err
}

// locURI reads a Target or Source element: its LocURI (and LocName).
func (d *decoder) locURI(start xml.StartElement) (uri, name string, err error) {
	err = d.children(start, func(el xml.StartElement) error {
		var err error
		switch el.Name.Local {
		case "LocURI":
			uri, err = d.trimmed()
		case "LocName":
			name, err = d.trimmed()
		default:
			err = d.skip()
		}
		return err
	})
	return uri, name, err
}

func (d *decoder) meta(start xml.StartElement) (*Meta, error) {
	m := &Meta{}
	err := d.children(start, func(el xml.StartElement) error {
		var err error
		switch el.Name.Local {
		case "Format":
			m.Format, err = d.trimmed()
		case "Type":
			m.Type, err = d.trimmed()
		case "MaxMsgSize":
			m.MaxMsgSize, err = d.trimmed()
		default:
			err = d.skip() // NextNonce, MaxObjSize, Size …: not used by Windows management
		}
		return err
	})
	return m, err
}

func (d *decoder) header(start xml.StartElement, h *Header) error {
	return d.children(start, func(el xml.StartElement) error {
		var err error
		switch el.Name.Local {
		case "VerDTD":
			h.VerDTD, err = d.trimmed()
		case "VerProto":
			h.VerProto, err = d.trimmed()
		case "SessionID":
			h.SessionID, err = d.trimmed()
		case "MsgID":
			h.MsgID, err = d.trimmed()
		case "Target":
			h.Target, _, err = d.locURI(el)
		case "Source":
			h.Source, h.SourceName, err = d.locURI(el)
		case "Meta":
			h.Meta, err = d.meta(el)
		case "Cred":
			c := &Cred{}
			err = d.children(el, func(el xml.StartElement) error {
				var err error
				switch el.Name.Local {
				case "Meta":
					c.Meta, err = d.meta(el)
				case "Data":
					c.Data, err = d.text()
				default:
					err = d.skip()
				}
				return err
			})
			h.Cred = c
		default:
			err = d.skip() // RespURI, NoResp: not used
		}
		return err
	})
}

func (d *decoder) body(start xml.StartElement, b *Body) error {
	return d.children(start, func(el xml.StartElement) error {
		if el.Name.Local == "Final" {
			b.Final = true
			return d.skip()
		}
		if !IsCommand(el.Name.Local) {
			return fmt.Errorf("%w: unknown command %q", ErrMalformed, el.Name.Local)
		}
		c, err := d.command(el, 0)
		if err != nil {
			return err
		}
		b.Commands = append(b.Commands, c)
		if len(b.Commands) > MaxCommands {
			return fmt.Errorf("%w: more than %d commands", ErrTooMany, MaxCommands)
		}
		return nil
	})
}

func (d *decoder) command(start xml.StartElement, nesting int) (Command, error) {
	c := Command{Name: start.Name.Local}
	if IsContainer(c.Name) && nesting >= MaxAtomicDepth {
		return c, fmt.Errorf("%w: %s nested deeper than %d", ErrTooDeep, c.Name, MaxAtomicDepth)
	}
	err := d.children(start, func(el xml.StartElement) error {
		var err error
		switch name := el.Name.Local; {
		case name == "CmdID":
			c.CmdID, err = d.trimmed()
		case name == "MsgRef":
			c.MsgRef, err = d.trimmed()
		case name == "CmdRef":
			c.CmdRef, err = d.trimmed()
		case name == "Cmd":
			c.Cmd, err = d.trimmed()
		case name == "TargetRef":
			c.TargetRef, err = d.trimmed()
		case name == "SourceRef":
			c.SourceRef, err = d.trimmed()
		case name == "Correlator":
			c.Correlator, err = d.trimmed()
		case name == "NoResp":
			c.NoResp = true
			err = d.skip()
		case name == "Meta":
			c.Meta, err = d.meta(el)
		case name == "Data":
			c.Data, err = d.trimmed()
		case name == "Item":
			if len(c.Items) >= MaxItems {
				return fmt.Errorf("%w: more than %d items", ErrTooMany, MaxItems)
			}
			var it Item
			it, err = d.item(el)
			c.Items = append(c.Items, it)
		case IsCommand(name):
			if !IsContainer(c.Name) || name == CmdStatus || name == CmdResults || name == CmdAlert {
				return fmt.Errorf("%w: %s inside %s", ErrMalformed, name, c.Name)
			}
			var inner Command
			inner, err = d.command(el, nesting+1)
			c.Commands = append(c.Commands, inner)
		default:
			err = d.skip() // Chal, Cred inside a command: not used by Windows management
		}
		return err
	})
	return c, err
}

func (d *decoder) item(start xml.StartElement) (Item, error) {
	var it Item
	err := d.children(start, func(el xml.StartElement) error {
		var err error
		switch el.Name.Local {
		case "Target":
			it.Target, _, err = d.locURI(el)
		case "Source":
			it.Source, _, err = d.locURI(el)
		case "Meta":
			it.Meta, err = d.meta(el)
		case "Data":
			it.Data, err = d.itemData()
		default:
			err = d.skip()
		}
		return err
	})
	return it, err
}

// itemData reads an Item's Data. Windows sends XML values (a WLAN profile,
// a VPN ProfileXML) escaped as text, but some nodes answer with the XML
// inline (Format xml): then the inner markup is kept as text, re-encoded,
// so that nothing of the value is lost.
func (d *decoder) itemData() (string, error) {
	var sb strings.Builder
	depth := 0
	for {
		tok, err := d.next()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if depth == 0 {
				sb.Write(t)
			} else {
				_ = xml.EscapeText(&sb, t)
			}
		case xml.StartElement:
			depth++
			sb.WriteByte('<')
			sb.WriteString(qname(t.Name))
			for _, a := range t.Attr {
				sb.WriteByte(' ')
				sb.WriteString(qname(a.Name))
				sb.WriteString(`="`)
				_ = xml.EscapeText(&sb, []byte(a.Value))
				sb.WriteByte('"')
			}
			sb.WriteByte('>')
		case xml.EndElement:
			if depth == 0 {
				return sb.String(), nil
			}
			depth--
			sb.WriteString("</")
			sb.WriteString(qname(t.Name))
			sb.WriteByte('>')
		}
	}
}

// IsLimit reports whether err is a refusal for size, depth, count or a
// DTD (as opposed to plain malformed XML).
func IsLimit(err error) bool {
	return errors.Is(err, ErrTooLarge) || errors.Is(err, ErrTooDeep) || errors.Is(err, ErrTooMany) || errors.Is(err, ErrDTD)
}
