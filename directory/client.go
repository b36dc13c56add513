package directory

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/custos-uem/custos/errs"
)

// Errors with stable codes. The messages are safe for the person logging
// in: none says whether the login exists (RFC 4513 §6.3.1 on disclosure).
var (
	ErrInvalidCredentials = errs.E(errs.Unauthenticated, "directory_invalid_credentials", "the login or password is wrong")
	ErrAmbiguousLogin     = errs.E(errs.Unauthenticated, "directory_ambiguous_login", "the login matches several directory accounts; ask your administrator")
)

// Causes behind ErrInvalidCredentials, for the log and for tests; the
// client sees the same code and message for each, so that the answer does
// not tell a guesser which logins exist.
var (
	ErrEmptyPassword = errors.New("directory: empty password refused before any bind (RFC 4513 §5.1.2: it would bind unauthenticated)")
	ErrUnknownUser   = errors.New("directory: no directory account matches the login")
	ErrWrongPassword = errors.New("directory: the directory refused the password (resultCode 49)")
)

// Entry is a user account read from the directory.
type Entry struct {
	DN string
	// ID is the entry's stable unique ID (entryUUID, objectGUID) in text:
	// it survives renames and moves, unlike the DN.
	ID          string
	Login       string
	Email       string
	DisplayName string
}

// GroupEntry is a group read from the directory.
type GroupEntry struct {
	DN          string
	ID          string
	Name        string
	Description string
	// Members are the DNs in the member attribute: users and groups.
	Members []string
}

// Client talks to one directory. It is safe for concurrent use: every
// call has its own connection.
type Client struct {
	cfg  Config
	host string // host:port of the URL, for messages
}

// New validates cfg, fills in the preset's defaults and returns a Client.
// It does not connect: the directory may be down while Custos starts.
func New(cfg Config) (*Client, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(c.URL)
	return &Client{cfg: c, host: u.Scheme + "://" + u.Host}, nil
}

// Config returns the configuration with the defaults filled in.
func (c *Client) Config() Config { return c.cfg }

func (c *Client) tlsConfig() *tls.Config {
	u, _ := url.Parse(c.cfg.URL)
	return &tls.Config{ServerName: u.Hostname(), RootCAs: c.cfg.RootCAs, MinVersion: tls.VersionTLS12}
}

// unavailable is the error of a directory that cannot be reached or used.
func (c *Client) unavailable(code, msg string, cause error) error {
	return errs.Wrap(errs.Unavailable, code, msg, cause)
}

// classify turns an error of the LDAP conversation into a Custos error:
// network failures and timeouts, TLS failures and busy servers make the
// directory unavailable; other result codes are reported as errors of the
// directory. ctx's end wins over the error it caused (a closed socket).
func (c *Client) classify(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("directory: %s: %w", op, ctx.Err())
	}
	// go-ldap reports a failed StartTLS handshake as text only ("TLS
	// handshake failed (...)"), hence the string test.
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &certErr), strings.Contains(err.Error(), "TLS handshake"):
		return c.unavailable("directory_tls_failed", fmt.Sprintf("the TLS connection to the company directory at %s failed: check its certificate and the configured CA", c.host), fmt.Errorf("%s: %w", op, err))
	case ldap.IsErrorAnyOf(err, ldap.ErrorNetwork, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable, ldap.LDAPResultTimeLimitExceeded,
		ldap.LDAPResultServerDown, ldap.LDAPResultTimeout, ldap.LDAPResultConnectError), isNetErr(err):
		return c.unavailable("directory_unavailable", fmt.Sprintf("the company directory at %s does not answer", c.host), fmt.Errorf("%s: %w", op, err))
	}
	return c.unavailable("directory_error", fmt.Sprintf("the company directory at %s refused a request (%s)", c.host, op), fmt.Errorf("%s: %w", op, err))
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// dial connects, upgrades with StartTLS if configured and binds as the
// service account. The connection is closed when ctx ends, which ends any
// request blocked on it: go-ldap's requests take no context.
func (c *Client) dial(ctx context.Context) (*ldap.Conn, func(), error) {
	d := &net.Dialer{Timeout: c.cfg.DialTimeout}
	if dl, ok := ctx.Deadline(); ok {
		d.Deadline = dl
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("directory: connect: %w", err)
	}
	conn, err := ldap.DialURL(c.cfg.URL, ldap.DialWithDialer(d), ldap.DialWithTLSConfig(c.tlsConfig()))
	if err != nil {
		return nil, nil, c.classify(ctx, "connect", err)
	}
	conn.SetTimeout(c.cfg.Timeout)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	done := func() {
		stop()
		conn.Close()
	}
	if c.cfg.StartTLS {
		if err := conn.StartTLS(c.tlsConfig()); err != nil {
			done()
			return nil, nil, c.classify(ctx, "StartTLS", err)
		}
	}
	if err := conn.Bind(c.cfg.BindDN, c.cfg.BindPassword); err != nil {
		done()
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return nil, nil, c.unavailable("directory_bind_failed",
				fmt.Sprintf("the company directory at %s refused the service account: check the bind DN and password", c.host), err)
		}
		return nil, nil, c.classify(ctx, "bind as the service account", err)
	}
	return conn, done, nil
}

// Check connects and binds as the service account, to test the settings.
func (c *Client) Check(ctx context.Context) error {
	_, done, err := c.dial(ctx)
	if err != nil {
		return err
	}
	done()
	return nil
}

func (c *Client) userAttrs() []string {
	return []string{c.cfg.IDAttr, c.cfg.LoginAttr, c.cfg.EmailAttr, c.cfg.DisplayNameAttr}
}

func (c *Client) timeLimit() int {
	return max(1, int(c.cfg.Timeout/time.Second))
}

// loginFilter selects the user whose login or email is login. The login
// is escaped with ldap.EscapeFilter (RFC 4515 §3: `*`, `(`, `)`, `\`, NUL
// and non-ASCII bytes become \XX), so whatever it holds is one assertion
// value and never changes the filter's structure: "*" is not a wildcard,
// "admin)(|(uid=*" does not open an OR.
func (c *Client) loginFilter(login string) string {
	v := ldap.EscapeFilter(login)
	return fmt.Sprintf("(&%s(|(%s=%s)(%s=%s)))", c.cfg.UserFilter, c.cfg.LoginAttr, v, c.cfg.EmailAttr, v)
}

// Authenticate checks login and password against the directory: it finds
// the one user entry whose login (or email) is login, then binds as that
// entry's DN with the password (RFC 4513 §5.1.3, the "search then bind"
// of every LDAP login). The refusals are ErrInvalidCredentials, whose
// cause says why (ErrEmptyPassword, ErrUnknownUser, ErrWrongPassword);
// ErrAmbiguousLogin; or an Unavailable error when the directory cannot be
// used.
func (c *Client) Authenticate(ctx context.Context, login, password string) (*Entry, error) {
	refuse := func(cause error) error {
		return errs.Wrap(ErrInvalidCredentials.Kind, ErrInvalidCredentials.Code, ErrInvalidCredentials.Message, cause)
	}
	// Refused before connecting: an empty password would make the bind
	// an unauthenticated one, which servers answer with success (RFC 4513
	// §5.1.2), and the check would pass for anyone.
	if password == "" {
		return nil, refuse(ErrEmptyPassword)
	}
	if login == "" || len(login) > MaxLogin || !utf8.ValidString(login) {
		return nil, refuse(ErrUnknownUser)
	}
	conn, done, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	// SizeLimit 2: one entry is the answer, a second makes it ambiguous;
	// more would only be read and thrown away.
	req := ldap.NewSearchRequest(c.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, c.timeLimit(), false,
		c.loginFilter(login), c.userAttrs(), nil)
	res, err := conn.Search(req)
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return nil, c.classify(ctx, "search the user", err)
	}
	if res == nil || len(res.Entries) == 0 {
		return nil, refuse(ErrUnknownUser)
	}
	if len(res.Entries) > 1 || err != nil {
		return nil, errs.Wrap(ErrAmbiguousLogin.Kind, ErrAmbiguousLogin.Code, ErrAmbiguousLogin.Message,
			fmt.Errorf("directory: login %q matches %s and more", login, res.Entries[0].DN))
	}
	e := c.entry(res.Entries[0])
	if err := conn.Bind(e.DN, password); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return nil, refuse(fmt.Errorf("%w: %v", ErrWrongPassword, err))
		}
		return nil, c.classify(ctx, "bind as the user", err)
	}
	return e, nil
}

func (c *Client) entry(le *ldap.Entry) *Entry {
	return &Entry{
		DN:          le.DN,
		ID:          idText(c.cfg.IDAttr, le.GetEqualFoldRawAttributeValue(c.cfg.IDAttr)),
		Login:       le.GetEqualFoldAttributeValue(c.cfg.LoginAttr),
		Email:       le.GetEqualFoldAttributeValue(c.cfg.EmailAttr),
		DisplayName: le.GetEqualFoldAttributeValue(c.cfg.DisplayNameAttr),
	}
}

// idText renders a unique ID as text. objectGUID is 16 raw bytes, the
// first three fields little-endian (MS-DTYP §2.3.4.2); it is written in
// the usual GUID form so that it reads as AD's tools show it. entryUUID is
// text already (RFC 4530). Anything else that is not printable text is
// hex-encoded, so the stored ID is always text.
func idText(attr string, raw []byte) string {
	if len(raw) == 16 && strings.EqualFold(attr, "objectGUID") {
		return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(raw[0:4]),
			binary.LittleEndian.Uint16(raw[4:6]), binary.LittleEndian.Uint16(raw[6:8]), raw[8:10], raw[10:16])
	}
	s := string(raw)
	if !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return hex.EncodeToString(raw)
	}
	return s
}

// pages runs a subtree search under base with the RFC 2696 paged-results
// control and hands each page to fn as it arrives. It walks the pages
// itself (rather than ldap.SearchWithPaging, which gathers them all
// first) so that ctx is checked between pages and the caller sees the
// page boundaries. A server that ignores the control (it is not marked
// critical) answers in one page, within its own size limit.
func (c *Client) pages(ctx context.Context, conn *ldap.Conn, base, filter string, attrs []string, fn func([]*ldap.Entry) error) error {
	paging := ldap.NewControlPaging(uint32(c.cfg.PageSize))
	req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, c.timeLimit(), false,
		filter, attrs, []ldap.Control{paging})
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := conn.Search(req)
		if err != nil {
			return err
		}
		if err := fn(res.Entries); err != nil {
			return err
		}
		ctl, ok := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if !ok || len(ctl.Cookie) == 0 { // an empty cookie ends the search (RFC 2696 §3)
			return nil
		}
		paging.SetCookie(ctl.Cookie)
	}
}

// UserPages hands every user entry under BaseDN to fn, one RFC 2696 page
// (at most PageSize entries) per call.
func (c *Client) UserPages(ctx context.Context, fn func([]*Entry) error) error {
	conn, done, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	err = c.pages(ctx, conn, c.cfg.BaseDN, c.cfg.UserFilter, c.userAttrs(), func(les []*ldap.Entry) error {
		out := make([]*Entry, len(les))
		for i, le := range les {
			out[i] = c.entry(le)
		}
		return fn(out)
	})
	return c.passThrough(ctx, "search users", err)
}

// passThrough classifies LDAP errors and leaves the callback's own alone.
func (c *Client) passThrough(ctx context.Context, op string, err error) error {
	var le *ldap.Error
	if err == nil || !errors.As(err, &le) && !isNetErr(err) {
		return err
	}
	return c.classify(ctx, op, err)
}

// Users returns every user entry under BaseDN.
func (c *Client) Users(ctx context.Context) ([]*Entry, error) {
	var all []*Entry
	err := c.UserPages(ctx, func(es []*Entry) error {
		all = append(all, es...)
		return nil
	})
	return all, err
}

// Groups returns every group entry under GroupBaseDN, with its members'
// DNs.
func (c *Client) Groups(ctx context.Context) ([]*GroupEntry, error) {
	conn, done, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	var all []*GroupEntry
	attrs := []string{c.cfg.IDAttr, c.cfg.GroupNameAttr, "description", c.cfg.GroupMemberAttr}
	err = c.pages(ctx, conn, c.cfg.GroupBaseDN, c.cfg.GroupFilter, attrs, func(les []*ldap.Entry) error {
		for _, le := range les {
			all = append(all, &GroupEntry{
				DN:          le.DN,
				ID:          idText(c.cfg.IDAttr, le.GetEqualFoldRawAttributeValue(c.cfg.IDAttr)),
				Name:        le.GetEqualFoldAttributeValue(c.cfg.GroupNameAttr),
				Description: le.GetEqualFoldAttributeValue("description"),
				Members:     le.GetEqualFoldAttributeValues(c.cfg.GroupMemberAttr),
			})
		}
		return nil
	})
	return all, c.passThrough(ctx, "search groups", err)
}

// canonicalDN returns a comparable form of dn: attribute types and values
// lower-cased, spaces around separators dropped (RFC 4514 §2), so that a
// member value and an entry's DN written differently still match. DNs
// that do not parse are lower-cased as they are.
func canonicalDN(dn string) string {
	d, err := ldap.ParseDN(dn)
	if err != nil {
		return strings.ToLower(dn)
	}
	rdns := make([]string, len(d.RDNs))
	for i, r := range d.RDNs {
		avs := make([]string, len(r.Attributes))
		for j, a := range r.Attributes {
			avs[j] = strings.ToLower(a.Type) + "=" + strings.ToLower(a.Value)
		}
		rdns[i] = strings.Join(avs, "+")
	}
	return strings.Join(rdns, ",")
}
