package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/custos-uem/custos/core"
)

// Limits of the admin client.
const (
	adminTimeout     = 60 * time.Second
	maxAdminResponse = 64 << 20 // the largest answer read (a device with a big inventory)
)

// adminVerb is one "custos admin <resource> <verb>".
type adminVerb struct {
	resource, name string
	args           string // positional arguments, for the usage line
	summary        string
	run            func(x *adminCmd, args []string) error
}

func adminVerbs() []adminVerb {
	return []adminVerb{
		{"users", "list", "[--after ID] [--limit N]", "list users", usersList},
		{"users", "get", "ID|LOGIN", "show a user", usersGet},
		{"users", "add", "--email E [--username U] [--name N] [--profile PROFILE-ID]", "create a local user", usersAdd},
		{"users", "update", "ID|LOGIN [--email E] [--username U] [--name N] [--profile PROFILE-ID|'']", "change a user (--profile '' unassigns)", usersUpdate},
		{"users", "delete", "ID|LOGIN", "remove the user's devices, then the user", usersDelete},
		{"users", "password", "ID|LOGIN [--password P] [--expires 720h]", "set or generate an activation password (shown once)", usersPassword},
		{"users", "passwords", "ID|LOGIN", "list the user's activation passwords (metadata only)", usersPasswords},
		{"users", "revoke-passwords", "ID|LOGIN", "revoke the user's unused activation passwords", usersRevokePasswords},
		{"users", "effective-profile", "ID|LOGIN", "show the activation profile that applies to the user", usersEffectiveProfile},
		{"groups", "list", "[--after ID] [--limit N]", "list groups", groupsList},
		{"groups", "get", "ID", "show a group", groupsGet},
		{"groups", "add", "--name N [--description D] [--profile PROFILE-ID]", "create a group", groupsAdd},
		{"groups", "update", "ID [--name N] [--description D] [--profile PROFILE-ID|'']", "change a group (--profile '' unassigns)", groupsUpdate},
		{"groups", "delete", "ID", "delete a group (its members stay)", groupsDelete},
		{"groups", "members", "ID", "list the users of a group", groupsMembers},
		{"groups", "add-member", "ID USER-ID|LOGIN", "add a user to a group", groupsAddMember},
		{"groups", "remove-member", "ID USER-ID|LOGIN", "remove a user from a group", groupsRemoveMember},
		{"profiles", "list", "", "list activation profiles", profilesList},
		{"profiles", "get", "ID", "show an activation profile", profilesGet},
		{"profiles", "add", "--name N --type PLATFORM=TYPE... [--description D] [--rank N] [--max-devices N]", "create an activation profile", profilesAdd},
		{"profiles", "update", "ID [--name N] [--type PLATFORM=TYPE...] [--description D] [--rank N] [--max-devices N]", "change an activation profile (--type replaces all types)", profilesUpdate},
		{"profiles", "delete", "ID", "delete an activation profile", profilesDelete},
		{"profiles", "types", "", "list activation types and their platforms", profilesTypes},
		{"devices", "list", "[--user ID|LOGIN] [--state S] [--after ID] [--limit N]", "list devices with their user", devicesList},
		{"devices", "get", "ID", "show a device with its inventory", devicesGet},
		{"devices", "remove", "ID", "remove a device (its certificate is revoked)", devicesRemove},
		{"tokens", "list", "", "list API tokens", tokensList},
		{"tokens", "add", "--name N [--expires 720h]", "create an API token (shown once)", tokensAdd},
		{"tokens", "revoke", "ID", "revoke an API token", tokensRevoke},
		{"audit", "list", "[--actor ID] [--action A] [--object ID] [--since TIME] [--before ID] [--limit N]", "show the audit trail, newest first", auditList},
	}
}

func adminUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: custos admin [flags] <resource> <verb> [arguments] [--json]")
	fmt.Fprintln(w, "\nDrives the administrator REST API. Flags (each also CUSTOS_<FLAG>):")
	fs.PrintDefaults()
	fmt.Fprintln(w, "\nverbs:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, v := range adminVerbs() {
		fmt.Fprintf(tw, "  %s %s %s\t%s\n", v.resource, v.name, v.args, v.summary)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nOutput is a table; --json prints the API's JSON answer.")
}

// runAdmin is "custos admin".
func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin", stderr)
	var server, token, tokenFile, caFile, dataDir string
	var asJSON bool
	fs.StringVar(&server, "server", "https://"+core.DefaultListen, "URL of the Core")
	fs.StringVar(&token, "token", "", "API token (prefer --token-file or CUSTOS_TOKEN: arguments are visible to other local users)")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the API token (default <data>/admin-token)")
	fs.StringVar(&caFile, "ca", "", "PEM CA certificate that signs the server's certificate (default <data>/ca.pem when it exists, else the system roots)")
	fs.StringVar(&dataDir, "data", core.DefaultDataDir, "data directory of a local Core (for the default token file and CA)")
	fs.BoolVar(&asJSON, "json", false, "print the JSON answer instead of a table")
	fs.Usage = func() { adminUsage(stderr, fs) }
	if err := parse(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		adminUsage(stderr, fs)
		return errUsage
	}
	if len(rest) < 2 {
		fmt.Fprintf(stderr, "custos admin: %s: missing verb\n\n", rest[0])
		adminUsage(stderr, fs)
		return errUsage
	}
	var verb *adminVerb
	for _, v := range adminVerbs() {
		if v.resource == rest[0] && v.name == rest[1] {
			verb = &v
			break
		}
	}
	if verb == nil {
		fmt.Fprintf(stderr, "custos admin: unknown command %q\n\n", rest[0]+" "+rest[1])
		adminUsage(stderr, fs)
		return errUsage
	}
	x := &adminCmd{ctx: ctx, verb: verb, stdout: stdout, stderr: stderr, json: asJSON}
	if x.help(rest[2:]) {
		return errHelp
	}
	cl, err := newAdminClient(server, token, tokenFile, caFile, dataDir)
	if err != nil {
		return err
	}
	x.cl = cl
	return verb.run(x, rest[2:])
}

// adminCmd is one invocation of a verb.
type adminCmd struct {
	ctx    context.Context
	verb   *adminVerb
	cl     *adminClient
	stdout io.Writer
	stderr io.Writer
	json   bool
	fs     *flag.FlagSet
}

// help reports whether the verb's arguments ask for help (and gives it).
func (x *adminCmd) help(args []string) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" || a == "-help" {
			fmt.Fprintf(x.stderr, "usage: custos admin %s %s %s\n\n%s\n", x.verb.resource, x.verb.name, x.verb.args, x.verb.summary)
			return true
		}
	}
	return false
}

// flags returns the verb's flag set (with --json).
func (x *adminCmd) flags() *flag.FlagSet {
	x.fs = newFlagSet("admin "+x.verb.resource+" "+x.verb.name, x.stderr)
	x.fs.BoolVar(&x.json, "json", x.json, "print the JSON answer")
	x.fs.Usage = func() {
		fmt.Fprintf(x.stderr, "usage: custos admin %s %s %s\n", x.verb.resource, x.verb.name, x.verb.args)
		x.fs.PrintDefaults()
	}
	return x.fs
}

// parse parses the verb's flags (which may come before, between or after
// its positional arguments; verb flags are not read from the environment)
// and returns exactly n positional arguments.
func (x *adminCmd) parse(args []string, n int) ([]string, error) {
	if x.fs == nil {
		x.flags()
	}
	var pos []string
	for {
		if err := x.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, errUsage
		}
		rest := x.fs.Args()
		if i := len(args) - len(rest); i > 0 && args[i-1] == "--" {
			pos = append(pos, rest...) // everything after "--" is positional
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) != n {
		x.fs.Usage()
		return nil, errUsage
	}
	return pos, nil
}

// set reports whether the named flag was given.
func (x *adminCmd) set(name string) bool {
	found := false
	x.fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}

// adminClient calls the API.
type adminClient struct {
	base  *url.URL
	token string
	hc    *http.Client
}

func newAdminClient(server, token, tokenFile, caFile, dataDir string) (*adminClient, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want an http:// or https:// URL", server)
	}
	if token == "" {
		if tokenFile == "" {
			tokenFile = filepath.Join(dataDir, "admin-token")
		}
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("no API token: pass --token-file, --token or CUSTOS_TOKEN (%w)", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" || strings.ContainsAny(token, "\r\n") {
		return nil, errors.New("the API token is empty or malformed")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if u.Scheme == "https" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		explicit := caFile != ""
		if !explicit {
			caFile = filepath.Join(dataDir, "ca.pem")
		}
		pemBytes, err := os.ReadFile(caFile)
		switch {
		case err == nil:
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pemBytes) {
				return nil, fmt.Errorf("--ca %s: no PEM certificate in it", caFile)
			}
			cfg.RootCAs = pool
		case explicit || !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("--ca: %w", err)
		}
		tr.TLSClientConfig = cfg
	}
	return &adminClient{base: u, token: token, hc: &http.Client{
		Transport: tr,
		Timeout:   adminTimeout,
		// The API never redirects; following one could carry the token
		// somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// apiError is an error answer of the API.
type apiError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
	Fields    map[string]string
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s (HTTP %d", clean(e.Code), clean(e.Message), e.Status)
	if e.RequestID != "" {
		fmt.Fprintf(&b, ", request ID %s", clean(e.RequestID))
	}
	b.WriteString(")")
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %s: %s", clean(k), clean(e.Fields[k]))
	}
	return b.String()
}

// call sends a request to /api/v1 + path and returns the raw answer of a
// successful one.
func (c *adminClient) call(ctx context.Context, method, path string, q url.Values, in any) ([]byte, error) {
	// path is already escaped (seg): join it to the base as text.
	u := *c.base
	u.RawQuery, u.Fragment = "", ""
	target := strings.TrimSuffix(u.String(), "/") + "/api/v1" + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxAdminResponse))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if res.StatusCode >= 300 {
		var eb struct {
			Error struct {
				Code      string            `json:"code"`
				Message   string            `json:"message"`
				RequestID string            `json:"request_id"`
				Fields    map[string]string `json:"fields"`
			} `json:"error"`
		}
		e := &apiError{Status: res.StatusCode, RequestID: res.Header.Get("X-Request-Id")}
		if json.Unmarshal(raw, &eb) == nil && eb.Error.Code != "" {
			e.Code, e.Message, e.Fields = eb.Error.Code, eb.Error.Message, eb.Error.Fields
			if eb.Error.RequestID != "" {
				e.RequestID = eb.Error.RequestID
			}
		} else {
			e.Code, e.Message = "http_"+strconv.Itoa(res.StatusCode), http.StatusText(res.StatusCode)
		}
		return nil, e
	}
	return raw, nil
}

// do calls the API and decodes an object answer (nil for 204).
func (x *adminCmd) do(method, path string, q url.Values, in any) (map[string]any, []byte, error) {
	raw, err := x.cl.call(x.ctx, method, path, q, in)
	if err != nil || len(bytes.TrimSpace(raw)) == 0 {
		return nil, raw, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, raw, fmt.Errorf("the server's answer is not JSON: %w", err)
	}
	return m, raw, nil
}

// printJSON prints a raw answer indented.
func (x *adminCmd) printJSON(raw []byte) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := x.stdout.Write(b.Bytes())
	return err
}

// column of a table: a header and how to get a cell from an item.
type column struct {
	head string
	get  func(map[string]any) string
}

func col(head, key string) column {
	return column{head, func(m map[string]any) string { return cell(m[key]) }}
}

// cell renders a JSON value for a table: no control characters (a
// device-chosen name must not drive the administrator's terminal).
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return clean(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	default:
		b, _ := json.Marshal(x)
		return clean(string(b))
	}
}

// clean quotes a string that holds anything but printable characters.
func clean(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.QuoteToGraphic(s)
	}
	return s
}

// list prints a listing answer.
func (x *adminCmd) list(path string, q url.Values, cols []column, nextFlag string) error {
	m, raw, err := x.do("GET", path, q, nil)
	if err != nil {
		return err
	}
	if x.json {
		return x.printJSON(raw)
	}
	items, _ := m["items"].([]any)
	tw := tabwriter.NewWriter(x.stdout, 0, 0, 2, ' ', 0)
	heads := make([]string, len(cols))
	for i, c := range cols {
		heads[i] = c.head
	}
	fmt.Fprintln(tw, strings.Join(heads, "\t"))
	for _, it := range items {
		obj, _ := it.(map[string]any)
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = c.get(obj)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next, _ := m["next"].(string); next != "" && nextFlag != "" {
		fmt.Fprintf(x.stderr, "more: repeat with --%s %s\n", nextFlag, clean(next))
	}
	return nil
}

// show prints an object as FIELD VALUE lines, the fields of order first.
func (x *adminCmd) show(m map[string]any, raw []byte, order ...string) error {
	if x.json {
		return x.printJSON(raw)
	}
	tw := tabwriter.NewWriter(x.stdout, 0, 0, 2, ' ', 0)
	done := map[string]bool{}
	for _, k := range order {
		if v, ok := m[k]; ok {
			fmt.Fprintf(tw, "%s:\t%s\n", k, cell(v))
			done[k] = true
		}
	}
	var rest []string
	for k := range m {
		if !done[k] {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		fmt.Fprintf(tw, "%s:\t%s\n", clean(k), cell(m[k]))
	}
	return tw.Flush()
}

// get fetches and shows an object.
func (x *adminCmd) get(path string, order ...string) error {
	m, raw, err := x.do("GET", path, nil, nil)
	if err != nil {
		return err
	}
	return x.show(m, raw, order...)
}

// done reports a change without an answer body.
func (x *adminCmd) done(format string, a ...any) error {
	if x.json {
		return nil
	}
	_, err := fmt.Fprintf(x.stdout, format+"\n", a...)
	return err
}

var idLike = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// userID resolves a user ID or login (email or username) to an ID.
func (x *adminCmd) userID(arg string) (string, error) {
	if idLike.MatchString(arg) {
		return arg, nil
	}
	m, _, err := x.do("GET", "/users", url.Values{"login": {arg}}, nil)
	if err != nil {
		return "", err
	}
	items, _ := m["items"].([]any)
	if len(items) != 1 {
		return "", fmt.Errorf("no user has the login %s", clean(arg))
	}
	id, _ := items[0].(map[string]any)["id"].(string)
	return id, nil
}

func seg(id string) string { return "/" + url.PathEscape(id) }

func pageQuery(fs *flag.FlagSet) (after *string, limit *int) {
	return fs.String("after", "", "start after this ID (the next of the previous page)"), fs.Int("limit", 0, "items per page (1-500)")
}

func addPage(q url.Values, after string, limit int) url.Values {
	if after != "" {
		q.Set("after", after)
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}

var userCols = []column{col("ID", "id"), col("EMAIL", "email"), col("USERNAME", "username"), col("NAME", "display_name"), col("PROFILE", "activation_profile_id"), col("CREATED", "created_at")}

var userOrder = []string{"id", "email", "username", "display_name", "source", "activation_profile_id", "created_at", "updated_at"}

func usersList(x *adminCmd, args []string) error {
	after, limit := pageQuery(x.flags())
	if _, err := x.parse(args, 0); err != nil {
		return err
	}
	return x.list("/users", addPage(url.Values{}, *after, *limit), userCols, "after")
}

func usersGet(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	id, err := x.userID(pos[0])
	if err != nil {
		return err
	}
	return x.get("/users"+seg(id), userOrder...)
}

// userFlags registers the flags of users add/update.
func userFlags(fs *flag.FlagSet) (email, username, name, profile *string) {
	return fs.String("email", "", "email address"), fs.String("username", "", "username (a-z 0-9 . _ -)"),
		fs.String("name", "", "display name"), fs.String("profile", "", "activation profile ID to assign")
}

func usersAdd(x *adminCmd, args []string) error {
	email, username, name, profile := userFlags(x.flags())
	if _, err := x.parse(args, 0); err != nil {
		return err
	}
	if *email == "" {
		x.fs.Usage()
		return errUsage
	}
	in := map[string]any{"email": *email}
	for k, v := range map[string]string{"username": *username, "display_name": *name, "activation_profile_id": *profile} {
		if v != "" {
			in[k] = v
		}
	}
	m, raw, err := x.do("POST", "/users", nil, in)
	if err != nil {
		return err
	}
	return x.show(m, raw, userOrder...)
}

func usersUpdate(x *adminCmd, args []string) error {
	email, username, name, profile := userFlags(x.flags())
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	in := map[string]any{}
	for flagName, f := range map[string]struct {
		key string
		v   *string
	}{"email": {"email", email}, "username": {"username", username}, "name": {"display_name", name}, "profile": {"activation_profile_id", profile}} {
		if x.set(flagName) {
			in[f.key] = *f.v
		}
	}
	if len(in) == 0 {
		return errors.New("nothing to change: pass --email, --username, --name or --profile")
	}
	id, err := x.userID(pos[0])
	if err != nil {
		return err
	}
	m, raw, err := x.do("PATCH", "/users"+seg(id), nil, in)
	if err != nil {
		return err
	}
	return x.show(m, raw, userOrder...)
}

func usersDelete(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	id, err := x.userID(pos[0])
	if err != nil {
		return err
	}
	if _, _, err := x.do("DELETE", "/users"+seg(id), nil, nil); err != nil {
		return err
	}
	return x.done("deleted user %s", id)
}

func usersPassword(x *adminCmd, args []string) error {
	fs := x.flags()
	password := fs.String("password", "", "the activation password (default: generate one)")
	expires := fs.String("expires", "", "validity as a Go duration, e.g. 720h (default 720h)")
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	id, err := x.userID(pos[0])
	if err != nil {
		return err
	}
	in := map[string]any{}
	if *password != "" {
		in["password"] = *password
	}
	if *expires != "" {
		in["expires_in"] = *expires
	}
	m, raw, err := x.do("POST", "/users"+seg(id)+"/activation-passwords", nil, in)
	if err != nil {
		return err
	}
	if x.json {
		return x.printJSON(raw)
	}
	_, err = fmt.Fprintf(x.stdout, "activation password: %s\nexpires:             %s\nIt is shown only this once.\n", cell(m["password"]), cell(m["expires_at"]))
	return err
}

func usersPasswords(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	id, err := x.userID(pos[0])
	if err != nil {
		return err
	}
	return x.list("/users"+seg(id)+"/activation-passwords", nil, []column{
		col("ID", "id"), col("CREATED", "created_at"), col("EXPIRES", "expires_at"), col("USED", "used_at"),
		col("DEVICE", "device_id"), col("REVOKED", "revoked_at"), col("CREATED BY", "created_by"),
	}, "")
}

func usersRevokePasswords(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	id, err := x.userID(pos[0])
	if err != nil {
		return err
	}
	m, raw, err := x.do("DELETE", "/users"+seg(id)+"/activation-passwords", nil, nil)
	if err != nil {
		return err
	}
	if x.json {
		return x.printJSON(raw)
	}
	return x.done("revoked %s activation password(s)", cell(m["revoked"]))
}

func usersEffectiveProfile(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	id, err := x.userID(pos[0])
	if err != nil {
		return err
	}
	m, raw, err := x.do("GET", "/users"+seg(id)+"/effective-profile", nil, nil)
	if err != nil {
		return err
	}
	if x.json {
		return x.printJSON(raw)
	}
	p, _ := m["profile"].(map[string]any)
	if p == nil {
		p = map[string]any{}
	}
	p["source"] = m["source"]
	return x.show(p, nil, append([]string{"source"}, profileOrder...)...)
}

var groupCols = []column{col("ID", "id"), col("NAME", "name"), col("PROFILE", "activation_profile_id"), col("DESCRIPTION", "description")}

var groupOrder = []string{"id", "name", "description", "activation_profile_id", "created_at", "updated_at"}

func groupsList(x *adminCmd, args []string) error {
	after, limit := pageQuery(x.flags())
	if _, err := x.parse(args, 0); err != nil {
		return err
	}
	return x.list("/groups", addPage(url.Values{}, *after, *limit), groupCols, "after")
}

func groupsGet(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	return x.get("/groups"+seg(pos[0]), groupOrder...)
}

func groupFlags(fs *flag.FlagSet) (name, desc, profile *string) {
	return fs.String("name", "", "group name"), fs.String("description", "", "description"), fs.String("profile", "", "activation profile ID to assign")
}

func groupsAdd(x *adminCmd, args []string) error {
	name, desc, profile := groupFlags(x.flags())
	if _, err := x.parse(args, 0); err != nil {
		return err
	}
	if *name == "" {
		x.fs.Usage()
		return errUsage
	}
	in := map[string]any{"name": *name, "description": *desc}
	if *profile != "" {
		in["activation_profile_id"] = *profile
	}
	m, raw, err := x.do("POST", "/groups", nil, in)
	if err != nil {
		return err
	}
	return x.show(m, raw, groupOrder...)
}

func groupsUpdate(x *adminCmd, args []string) error {
	name, desc, profile := groupFlags(x.flags())
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	in := map[string]any{}
	if x.set("name") {
		in["name"] = *name
	}
	if x.set("description") {
		in["description"] = *desc
	}
	if x.set("profile") {
		in["activation_profile_id"] = *profile
	}
	if len(in) == 0 {
		return errors.New("nothing to change: pass --name, --description or --profile")
	}
	m, raw, err := x.do("PATCH", "/groups"+seg(pos[0]), nil, in)
	if err != nil {
		return err
	}
	return x.show(m, raw, groupOrder...)
}

func groupsDelete(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	if _, _, err := x.do("DELETE", "/groups"+seg(pos[0]), nil, nil); err != nil {
		return err
	}
	return x.done("deleted group %s", clean(pos[0]))
}

func groupsMembers(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	return x.list("/groups"+seg(pos[0])+"/members", nil, userCols, "")
}

func groupsAddMember(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 2)
	if err != nil {
		return err
	}
	uid, err := x.userID(pos[1])
	if err != nil {
		return err
	}
	if _, _, err := x.do("POST", "/groups"+seg(pos[0])+"/members", nil, map[string]any{"user_id": uid}); err != nil {
		return err
	}
	return x.done("added user %s to group %s", uid, clean(pos[0]))
}

func groupsRemoveMember(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 2)
	if err != nil {
		return err
	}
	uid, err := x.userID(pos[1])
	if err != nil {
		return err
	}
	if _, _, err := x.do("DELETE", "/groups"+seg(pos[0])+"/members"+seg(uid), nil, nil); err != nil {
		return err
	}
	return x.done("removed user %s from group %s", uid, clean(pos[0]))
}

var profileOrder = []string{"id", "name", "description", "rank", "max_devices", "types", "created_at", "updated_at"}

// typesCell renders a profile's platform → type map, sorted.
func typesCell(m map[string]any) string {
	t, _ := m["types"].(map[string]any)
	var parts []string
	for k, v := range t {
		parts = append(parts, clean(k)+"="+cell(v))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func profilesList(x *adminCmd, args []string) error {
	if _, err := x.parse(args, 0); err != nil {
		return err
	}
	return x.list("/activation-profiles", nil, []column{
		col("ID", "id"), col("NAME", "name"), col("RANK", "rank"), col("MAX DEVICES", "max_devices"), {"TYPES", typesCell},
	}, "")
}

func profilesGet(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	return x.get("/activation-profiles"+seg(pos[0]), profileOrder...)
}

// typeList collects repeated --type PLATFORM=TYPE flags.
type typeList map[string]string

func (t typeList) String() string { return "" }

func (t typeList) Set(v string) error {
	p, ty, ok := strings.Cut(v, "=")
	if !ok || p == "" || ty == "" {
		return errors.New("want PLATFORM=TYPE, e.g. android=work_space_only")
	}
	t[p] = ty
	return nil
}

func profileFlags(fs *flag.FlagSet) (name, desc *string, rank, maxDevices *int, types typeList) {
	types = typeList{}
	fs.Var(types, "type", "PLATFORM=TYPE, repeatable (see 'profiles types')")
	return fs.String("name", "", "profile name"), fs.String("description", "", "description"),
		fs.Int("rank", 0, "rank: the lowest wins among a user's groups (default 100)"),
		fs.Int("max-devices", 0, "devices per user (default 10)"), types
}

func profileBody(x *adminCmd, name, desc *string, rank, maxDevices *int, types typeList) map[string]any {
	in := map[string]any{}
	if x.set("name") {
		in["name"] = *name
	}
	if x.set("description") {
		in["description"] = *desc
	}
	if x.set("rank") {
		in["rank"] = *rank
	}
	if x.set("max-devices") {
		in["max_devices"] = *maxDevices
	}
	if x.set("type") {
		in["types"] = map[string]string(types)
	}
	return in
}

func profilesAdd(x *adminCmd, args []string) error {
	name, desc, rank, maxDevices, types := profileFlags(x.flags())
	if _, err := x.parse(args, 0); err != nil {
		return err
	}
	if *name == "" || len(types) == 0 {
		x.fs.Usage()
		return errUsage
	}
	m, raw, err := x.do("POST", "/activation-profiles", nil, profileBody(x, name, desc, rank, maxDevices, types))
	if err != nil {
		return err
	}
	return x.show(m, raw, profileOrder...)
}

func profilesUpdate(x *adminCmd, args []string) error {
	name, desc, rank, maxDevices, types := profileFlags(x.flags())
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	in := profileBody(x, name, desc, rank, maxDevices, types)
	if len(in) == 0 {
		return errors.New("nothing to change: pass --name, --description, --rank, --max-devices or --type")
	}
	m, raw, err := x.do("PATCH", "/activation-profiles"+seg(pos[0]), nil, in)
	if err != nil {
		return err
	}
	return x.show(m, raw, profileOrder...)
}

func profilesDelete(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	if _, _, err := x.do("DELETE", "/activation-profiles"+seg(pos[0]), nil, nil); err != nil {
		return err
	}
	return x.done("deleted activation profile %s", clean(pos[0]))
}

func profilesTypes(x *adminCmd, args []string) error {
	if _, err := x.parse(args, 0); err != nil {
		return err
	}
	return x.list("/activation-types", nil, []column{
		col("TYPE", "type"), col("LABEL", "label"),
		{"PLATFORMS", func(m map[string]any) string {
			ps, _ := m["platforms"].([]any)
			var s []string
			for _, p := range ps {
				s = append(s, cell(p))
			}
			return strings.Join(s, ",")
		}},
	}, "")
}

var deviceOrder = []string{"id", "name", "state", "user_id", "user_email", "platform", "os_version", "model", "hardware_id", "activation_type", "activation_profile_id", "cert_serial", "config_version", "created_at", "enrolled_at", "activated_at", "last_seen_at", "removed_at"}

func devicesList(x *adminCmd, args []string) error {
	fs := x.flags()
	after, limit := pageQuery(fs)
	userArg := fs.String("user", "", "only this user's devices (ID or login)")
	state := fs.String("state", "", "only devices in this state: activating, enrolled, active, removed")
	if _, err := x.parse(args, 0); err != nil {
		return err
	}
	q := addPage(url.Values{}, *after, *limit)
	if *userArg != "" {
		id, err := x.userID(*userArg)
		if err != nil {
			return err
		}
		q.Set("user", id)
	}
	if *state != "" {
		q.Set("state", *state)
	}
	return x.list("/devices", q, []column{
		col("ID", "id"), col("USER", "user_email"), col("PLATFORM", "platform"), col("STATE", "state"),
		col("NAME", "name"), col("MODEL", "model"), col("OS", "os_version"), col("LAST SEEN", "last_seen_at"),
	}, "after")
}

func devicesGet(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	m, raw, err := x.do("GET", "/devices"+seg(pos[0]), nil, nil)
	if err != nil {
		return err
	}
	if x.json {
		return x.printJSON(raw)
	}
	inv, _ := m["inventory"].(map[string]any)
	delete(m, "inventory")
	if err := x.show(m, nil, deviceOrder...); err != nil {
		return err
	}
	if inv == nil {
		_, err := fmt.Fprintln(x.stdout, "\ninventory: none reported yet")
		return err
	}
	fmt.Fprintf(x.stdout, "\ninventory reported at %s:\n", cell(inv["reported_at"]))
	if info, _ := inv["info"].(map[string]any); len(info) > 0 {
		if err := x.show(info, nil, "hostname", "manufacturer", "model", "serial_number", "os_name", "os_version", "kernel", "arch"); err != nil {
			return err
		}
	}
	apps, _ := inv["software"].([]any)
	fmt.Fprintf(x.stdout, "\nsoftware (%d):\n", len(apps))
	tw := tabwriter.NewWriter(x.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tID")
	for _, a := range apps {
		am, _ := a.(map[string]any)
		fmt.Fprintf(tw, "%s\t%s\t%s\n", cell(am["name"]), cell(am["version"]), cell(am["id"]))
	}
	return tw.Flush()
}

func devicesRemove(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	if _, _, err := x.do("DELETE", "/devices"+seg(pos[0]), nil, nil); err != nil {
		return err
	}
	return x.done("removed device %s; its certificate is revoked", clean(pos[0]))
}

func tokensList(x *adminCmd, args []string) error {
	if _, err := x.parse(args, 0); err != nil {
		return err
	}
	return x.list("/tokens", nil, []column{
		col("ID", "id"), col("NAME", "name"), col("ADMIN", "admin_id"), col("CREATED", "created_at"),
		col("EXPIRES", "expires_at"), col("LAST USED", "last_used_at"), col("REVOKED", "revoked_at"),
	}, "")
}

func tokensAdd(x *adminCmd, args []string) error {
	fs := x.flags()
	name := fs.String("name", "", "a name that says where the token is used")
	expires := fs.String("expires", "", "validity as a Go duration, e.g. 720h (default: no expiry)")
	if _, err := x.parse(args, 0); err != nil {
		return err
	}
	if *name == "" {
		x.fs.Usage()
		return errUsage
	}
	in := map[string]any{"name": *name}
	if *expires != "" {
		in["expires_in"] = *expires
	}
	m, raw, err := x.do("POST", "/tokens", nil, in)
	if err != nil {
		return err
	}
	if x.json {
		return x.printJSON(raw)
	}
	exp := cell(m["expires_at"])
	if exp == "" {
		exp = "never"
	}
	_, err = fmt.Fprintf(x.stdout, "token:   %s\nid:      %s\nexpires: %s\nIt is shown only this once.\n", cell(m["token"]), cell(m["id"]), exp)
	return err
}

func tokensRevoke(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	if _, _, err := x.do("DELETE", "/tokens"+seg(pos[0]), nil, nil); err != nil {
		return err
	}
	return x.done("revoked token %s", clean(pos[0]))
}

func auditList(x *adminCmd, args []string) error {
	fs := x.flags()
	actor := fs.String("actor", "", "only entries by this administrator ID")
	action := fs.String("action", "", "only this action, e.g. user.create")
	object := fs.String("object", "", "only entries about this object ID")
	since := fs.String("since", "", "only entries at or after this RFC 3339 time")
	before := fs.String("before", "", "entries older than this entry ID (the next of the previous page)")
	limit := fs.Int("limit", 0, "entries per page (1-500)")
	if _, err := x.parse(args, 0); err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"actor": *actor, "action": *action, "object": *object, "since": *since, "before": *before} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *limit != 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	return x.list("/audit", q, []column{
		col("ID", "id"), col("AT", "at"),
		{"ACTOR", func(m map[string]any) string {
			if d, _ := m["detail"].(map[string]any); d != nil && d["admin"] != nil {
				return cell(d["admin"])
			}
			return cell(m["actor"])
		}},
		col("IP", "actor_ip"), col("ACTION", "action"), col("OBJECT", "object_id"), col("OUTCOME", "outcome"),
		{"ERROR", func(m map[string]any) string {
			d, _ := m["detail"].(map[string]any)
			return cell(d["error"])
		}},
		col("REQUEST", "request_id"),
	}, "before")
}
