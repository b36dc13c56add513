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
		{"users", "list", "[--after ID] [--limit N]", "list users", userRes.list},
		{"users", "get", "ID|LOGIN", "show a user", userRes.get},
		{"users", "add", "--email E [--username U] [--name N] [--profile PROFILE-ID]", "create a local user", usersAdd},
		{"users", "update", "ID|LOGIN [--email E] [--username U] [--name N] [--profile PROFILE-ID|'']", "change a user (--profile '' unassigns)", userRes.update},
		{"users", "delete", "ID|LOGIN", "remove the user's devices, then the user", userRes.delete},
		{"users", "password", "ID|LOGIN [--password P] [--expires 720h]", "set or generate an activation password (shown once)", usersPassword},
		{"users", "passwords", "ID|LOGIN", "list the user's activation passwords (metadata only)", usersPasswords},
		{"users", "revoke-passwords", "ID|LOGIN", "revoke the user's unused activation passwords", usersRevokePasswords},
		{"users", "effective-profile", "ID|LOGIN", "show the activation profile that applies to the user", usersEffectiveProfile},
		{"groups", "list", "[--after ID] [--limit N]", "list groups", groupRes.list},
		{"groups", "get", "ID", "show a group", groupRes.get},
		{"groups", "add", "--name N [--description D] [--profile PROFILE-ID]", "create a group", groupsAdd},
		{"groups", "update", "ID [--name N] [--description D] [--profile PROFILE-ID|'']", "change a group (--profile '' unassigns)", groupRes.update},
		{"groups", "delete", "ID", "delete a group (its members stay)", groupRes.delete},
		{"groups", "members", "ID", "list the users of a group", groupsMembers},
		{"groups", "add-member", "ID USER-ID|LOGIN", "add a user to a group", groupsAddMember},
		{"groups", "remove-member", "ID USER-ID|LOGIN", "remove a user from a group", groupsRemoveMember},
		{"groups", "subgroups", "ID", "list the direct subgroups of a group", groupsSubgroups},
		{"groups", "add-subgroup", "ID CHILD-ID", "nest a group: its members get what the group has", groupsAddSubgroup},
		{"groups", "remove-subgroup", "ID CHILD-ID", "take a subgroup out of a group", groupsRemoveSubgroup},
		{"profiles", "list", "", "list activation profiles", profileRes.list},
		{"profiles", "get", "ID", "show an activation profile", profileRes.get},
		{"profiles", "add", "--name N --type PLATFORM=TYPE... [--description D] [--rank N] [--max-devices N]", "create an activation profile", profilesAdd},
		{"profiles", "update", "ID [--name N] [--type PLATFORM=TYPE...] [--description D] [--rank N] [--max-devices N]", "change an activation profile (--type replaces all types)", profileRes.update},
		{"profiles", "delete", "ID", "delete an activation profile", profileRes.delete},
		{"profiles", "types", "", "list activation types and their platforms", profilesTypes},
		{"devices", "list", "[--user ID|LOGIN] [--state S] [--after ID] [--limit N]", "list devices with their user", devicesList},
		{"devices", "get", "ID", "show a device with its inventory", devicesGet},
		{"devices", "remove", "ID", "remove a device (its certificate is revoked)", deviceRes.delete},
		{"devices", "command", "ID TYPE [--priority N] [--payload JSON|@FILE] [--expires 24h]", "queue a command (lock, restart, message, …) for a device", devicesCommand},
		{"devices", "commands", "ID [--history] [--after ID] [--limit N]", "list a device's queued commands (--history: the completed ones)", devicesCommands},
		{"devices", "configuration", "ID", "show a device's effective configuration and what it applied", devicesConfiguration},
		{"devices", "compliance", "ID", "show a device's compliance state", devicesCompliance},
		{"commands", "get", "ID", "show a command and its result", commandRes.get},
		{"commands", "cancel", "ID", "cancel an open command", commandsCancel},
		{"commands", "send", "--devices ID,ID...|@FILE TYPE [--priority N] [--payload JSON|@FILE] [--expires 24h]", "queue one command for many devices, all or none", commandsSend},
		{"policies", "list", "[--kind K] [--after ID] [--limit N]", "list IT policies and profiles", policiesList},
		{"policies", "get", "ID", "show a policy (secrets read ***)", policyRes.get},
		{"policies", "add", "--kind K --name N --settings JSON|@FILE [--description D] [--rank N] [--platforms P,P]", "create a policy", policiesAdd},
		{"policies", "update", "ID [--name N] [--description D] [--rank N] [--platforms P,P] [--settings JSON|@FILE]", "change a policy", policyRes.update},
		{"policies", "delete", "ID", "delete a policy and its assignments", policyRes.delete},
		{"policies", "assign", "ID user|group TARGET-ID|LOGIN", "assign a policy to a user or a group", policiesAssign},
		{"policies", "unassign", "ID user|group TARGET-ID|LOGIN", "remove an assignment", policiesUnassign},
		{"policies", "assignments", "ID", "list who a policy is assigned to", policiesAssignments},
		{"admins", "list", "", "list administrators and their scopes", adminRes.list},
		{"admins", "add", "--username U [--name N] [--role ROLE] [--scope GROUP-ID,...]", "create an administrator with a role (default security_admin), optionally limited to some groups' devices, with a first token (shown once)", adminsAdd},
		{"roles", "list", "", "list roles: the built-in ones, then the custom ones", roleRes.list},
		{"roles", "get", "ID", "show a role and its permissions", roleRes.get},
		{"roles", "add", "--name N --permissions P,P [--description D]", "create a custom role (see roles permissions)", rolesAdd},
		{"roles", "delete", "ID", "delete a custom role no administrator holds", roleRes.delete},
		{"roles", "permissions", "", "list the permission names roles are made of", rolesPermissions},
		{"tokens", "list", "", "list API tokens", tokenRes.list},
		{"tokens", "add", "--name N [--expires 720h]", "create an API token (shown once)", tokensAdd},
		{"tokens", "revoke", "ID", "revoke an API token", tokenRes.delete},
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
		return nil, x.usage()
	}
	return pos, nil
}

// usage prints the verb's usage and returns errUsage.
func (x *adminCmd) usage() error {
	x.fs.Usage()
	return errUsage
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

// print calls the API and prints its answer: the JSON with --json, else
// what text makes of the decoded object.
func (x *adminCmd) print(method, path string, q url.Values, in any, text func(m map[string]any) error) error {
	m, raw, err := x.do(method, path, q, in)
	if err != nil {
		return err
	}
	if x.json {
		return x.printJSON(raw)
	}
	return text(m)
}

// list prints a listing answer.
func (x *adminCmd) list(path string, q url.Values, cols []column, nextFlag string) error {
	return x.print("GET", path, q, nil, func(m map[string]any) error {
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
	})
}

// show prints an object as FIELD VALUE lines, the fields of order first.
func (x *adminCmd) show(m map[string]any, order ...string) error {
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

// done reports a change without an answer body.
func (x *adminCmd) done(format string, a ...any) error {
	if x.json {
		return nil
	}
	_, err := fmt.Fprintf(x.stdout, format+"\n", a...)
	return err
}

// change sends a request whose answer is not shown and reports it with
// done.
func (x *adminCmd) change(method, path string, in any, format string, a ...any) error {
	if _, _, err := x.do(method, path, nil, in); err != nil {
		return err
	}
	return x.done(format, a...)
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

// field is a flag of a verb and the key of the JSON body it sets.
type field struct {
	flag, key, usage string
	define           func(fs *flag.FlagSet, name, usage string) // registers the flag
}

func stringFlag(fs *flag.FlagSet, name, usage string) { fs.String(name, "", usage) }
func intFlag(fs *flag.FlagSet, name, usage string)    { fs.Int(name, 0, usage) }
func typesFlag(fs *flag.FlagSet, name, usage string)  { fs.Var(typeList{}, name, usage) }

// defineFlags registers the verb's flags (with --json) and those of fields.
func (x *adminCmd) defineFlags(fields []field) {
	fs := x.flags()
	for _, f := range fields {
		f.define(fs, f.flag, f.usage)
	}
}

// str returns the value of the named flag as text ("" for none).
func (x *adminCmd) str(name string) string { return x.fs.Lookup(name).Value.String() }

// addArgs registers the flags of fields, parses the arguments of a verb
// without positional ones and checks that the required flags are not empty.
func (x *adminCmd) addArgs(fields []field, args []string, required ...string) error {
	x.defineFlags(fields)
	if _, err := x.parse(args, 0); err != nil {
		return err
	}
	for _, name := range required {
		if x.str(name) == "" {
			return x.usage()
		}
	}
	return nil
}

// given is the JSON body of the fields whose flags were given.
func (x *adminCmd) given(fields []field) map[string]any {
	in := map[string]any{}
	for _, f := range fields {
		if x.set(f.flag) {
			in[f.key] = x.fs.Lookup(f.flag).Value.(flag.Getter).Get()
		}
	}
	return in
}

// nonEmpty is the JSON body of the (text) fields whose flags are not empty.
func (x *adminCmd) nonEmpty(fields []field) map[string]any {
	in := map[string]any{}
	for _, f := range fields {
		if v := x.str(f.flag); v != "" {
			in[f.key] = v
		}
	}
	return in
}

// adminResource is a collection of the API and what its shared verbs
// (list, get, update, delete) need to know of it.
type adminResource struct {
	path    string   // of the collection, e.g. "/users"
	deleted string   // what delete says, a format of the ID
	paged   bool     // list takes --after and --limit
	cols    []column // of list
	order   []string // the fields that get, add and update show first
	fields  []field  // the flags of add and update
	// resolve, when set, turns an ID argument into an ID (a user's login).
	resolve func(x *adminCmd, arg string) (string, error)
}

// at is the path of the object id.
func (r *adminResource) at(id string) string { return r.path + seg(id) }

// id resolves an ID argument.
func (r *adminResource) id(x *adminCmd, arg string) (string, error) {
	if r.resolve == nil {
		return arg, nil
	}
	return r.resolve(x, arg)
}

// idArg parses the arguments of a verb on one object and returns its ID.
func (x *adminCmd) idArg(r *adminResource, args []string) (string, error) {
	pos, err := x.parse(args, 1)
	if err != nil {
		return "", err
	}
	return r.id(x, pos[0])
}

// send sends in to path and shows the object answered.
func (r *adminResource) send(x *adminCmd, method, path string, in any) error {
	return x.print(method, path, nil, in, func(m map[string]any) error { return x.show(m, r.order...) })
}

// list is "<resource> list".
func (r *adminResource) list(x *adminCmd, args []string) error { return r.listBy(x, args, nil) }

// listBy lists r; filter, when set, adds the verb's own flags (registered
// before) to the query.
func (r *adminResource) listBy(x *adminCmd, args []string, filter func(q url.Values) error) error {
	fs := x.fs
	if fs == nil {
		fs = x.flags()
	}
	var after *string
	var limit *int
	if r.paged {
		after, limit = pageQuery(fs)
	}
	if _, err := x.parse(args, 0); err != nil {
		return err
	}
	q, next := url.Values{}, ""
	if r.paged {
		q, next = addPage(q, *after, *limit), "after"
	}
	if filter != nil {
		if err := filter(q); err != nil {
			return err
		}
	}
	return x.list(r.path, q, r.cols, next)
}

// get is "<resource> get ID".
func (r *adminResource) get(x *adminCmd, args []string) error {
	id, err := x.idArg(r, args)
	if err != nil {
		return err
	}
	return r.send(x, "GET", r.at(id), nil)
}

// update is "<resource> update ID": a PATCH of the fields given.
func (r *adminResource) update(x *adminCmd, args []string) error {
	x.defineFlags(r.fields)
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	in := x.given(r.fields)
	if len(in) == 0 {
		names := make([]string, len(r.fields))
		for i, f := range r.fields {
			names[i] = "--" + f.flag
		}
		last := len(names) - 1
		return errors.New("nothing to change: pass " + strings.Join(names[:last], ", ") + " or " + names[last])
	}
	id, err := r.id(x, pos[0])
	if err != nil {
		return err
	}
	return r.send(x, "PATCH", r.at(id), in)
}

// delete is "<resource> delete ID" (or remove, revoke).
func (r *adminResource) delete(x *adminCmd, args []string) error {
	id, err := x.idArg(r, args)
	if err != nil {
		return err
	}
	shown := id // as resolved
	if r.resolve == nil {
		shown = clean(id) // as typed
	}
	return x.change("DELETE", r.at(id), nil, r.deleted, shown)
}

var userRes = &adminResource{
	path: "/users", deleted: "deleted user %s", paged: true,
	cols:  []column{col("ID", "id"), col("EMAIL", "email"), col("USERNAME", "username"), col("NAME", "display_name"), col("PROFILE", "activation_profile_id"), col("CREATED", "created_at")},
	order: []string{"id", "email", "username", "display_name", "source", "activation_profile_id", "created_at", "updated_at"},
	fields: []field{
		{"email", "email", "email address", stringFlag},
		{"username", "username", "username (a-z 0-9 . _ -)", stringFlag},
		{"name", "display_name", "display name", stringFlag},
		{"profile", "activation_profile_id", "activation profile ID to assign", stringFlag},
	},
	resolve: (*adminCmd).userID,
}

func usersAdd(x *adminCmd, args []string) error {
	if err := x.addArgs(userRes.fields, args, "email"); err != nil {
		return err
	}
	return userRes.send(x, "POST", userRes.path, x.nonEmpty(userRes.fields))
}

var passwordFields = []field{
	{"password", "password", "the activation password (default: generate one)", stringFlag},
	{"expires", "expires_in", "validity as a Go duration, e.g. 720h (default 720h)", stringFlag},
}

func usersPassword(x *adminCmd, args []string) error {
	x.defineFlags(passwordFields)
	id, err := x.idArg(userRes, args)
	if err != nil {
		return err
	}
	return x.print("POST", userRes.at(id)+"/activation-passwords", nil, x.nonEmpty(passwordFields), func(m map[string]any) error {
		_, err := fmt.Fprintf(x.stdout, "activation password: %s\nexpires:             %s\nIt is shown only this once.\n", cell(m["password"]), cell(m["expires_at"]))
		return err
	})
}

func usersPasswords(x *adminCmd, args []string) error {
	id, err := x.idArg(userRes, args)
	if err != nil {
		return err
	}
	return x.list(userRes.at(id)+"/activation-passwords", nil, []column{
		col("ID", "id"), col("CREATED", "created_at"), col("EXPIRES", "expires_at"), col("USED", "used_at"),
		col("DEVICE", "device_id"), col("REVOKED", "revoked_at"), col("CREATED BY", "created_by"),
	}, "")
}

func usersRevokePasswords(x *adminCmd, args []string) error {
	id, err := x.idArg(userRes, args)
	if err != nil {
		return err
	}
	return x.print("DELETE", userRes.at(id)+"/activation-passwords", nil, nil, func(m map[string]any) error {
		return x.done("revoked %s activation password(s)", cell(m["revoked"]))
	})
}

func usersEffectiveProfile(x *adminCmd, args []string) error {
	id, err := x.idArg(userRes, args)
	if err != nil {
		return err
	}
	return x.print("GET", userRes.at(id)+"/effective-profile", nil, nil, func(m map[string]any) error {
		p, _ := m["profile"].(map[string]any)
		if p == nil {
			p = map[string]any{}
		}
		p["source"] = m["source"]
		return x.show(p, append([]string{"source"}, profileRes.order...)...)
	})
}

var groupRes = &adminResource{
	path: "/groups", deleted: "deleted group %s", paged: true,
	cols:  []column{col("ID", "id"), col("NAME", "name"), col("PROFILE", "activation_profile_id"), col("DESCRIPTION", "description")},
	order: []string{"id", "name", "description", "activation_profile_id", "created_at", "updated_at"},
	fields: []field{
		{"name", "name", "group name", stringFlag},
		{"description", "description", "description", stringFlag},
		{"profile", "activation_profile_id", "activation profile ID to assign", stringFlag},
	},
}

func groupsAdd(x *adminCmd, args []string) error {
	if err := x.addArgs(groupRes.fields, args, "name"); err != nil {
		return err
	}
	in := map[string]any{"name": x.str("name"), "description": x.str("description")}
	if p := x.str("profile"); p != "" {
		in["activation_profile_id"] = p
	}
	return groupRes.send(x, "POST", groupRes.path, in)
}

func groupsMembers(x *adminCmd, args []string) error {
	id, err := x.idArg(groupRes, args)
	if err != nil {
		return err
	}
	return x.list(groupRes.at(id)+"/members", nil, userRes.cols, "")
}

// member parses the "ID USER-ID|LOGIN" of a groups verb.
func (x *adminCmd) member(args []string) (group, user string, err error) {
	pos, err := x.parse(args, 2)
	if err != nil {
		return "", "", err
	}
	user, err = x.userID(pos[1])
	return pos[0], user, err
}

func groupsAddMember(x *adminCmd, args []string) error {
	gid, uid, err := x.member(args)
	if err != nil {
		return err
	}
	return x.change("POST", groupRes.at(gid)+"/members", map[string]any{"user_id": uid}, "added user %s to group %s", uid, clean(gid))
}

func groupsRemoveMember(x *adminCmd, args []string) error {
	gid, uid, err := x.member(args)
	if err != nil {
		return err
	}
	return x.change("DELETE", groupRes.at(gid)+"/members"+seg(uid), nil, "removed user %s from group %s", uid, clean(gid))
}

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

// typeList collects repeated --type PLATFORM=TYPE flags.
type typeList map[string]string

// String is the types given, sorted ("" for none).
func (t typeList) String() string {
	var parts []string
	for p, ty := range t {
		parts = append(parts, p+"="+ty)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func (t typeList) Get() any { return map[string]string(t) }

func (t typeList) Set(v string) error {
	p, ty, ok := strings.Cut(v, "=")
	if !ok || p == "" || ty == "" {
		return errors.New("want PLATFORM=TYPE, e.g. android=work_space_only")
	}
	t[p] = ty
	return nil
}

var profileRes = &adminResource{
	path: "/activation-profiles", deleted: "deleted activation profile %s",
	cols:  []column{col("ID", "id"), col("NAME", "name"), col("RANK", "rank"), col("MAX DEVICES", "max_devices"), {"TYPES", typesCell}},
	order: []string{"id", "name", "description", "rank", "max_devices", "types", "created_at", "updated_at"},
	fields: []field{
		{"name", "name", "profile name", stringFlag},
		{"description", "description", "description", stringFlag},
		{"rank", "rank", "rank: the lowest wins among a user's groups (default 100)", intFlag},
		{"max-devices", "max_devices", "devices per user (default 10)", intFlag},
		{"type", "types", "PLATFORM=TYPE, repeatable (see 'profiles types')", typesFlag},
	},
}

func profilesAdd(x *adminCmd, args []string) error {
	if err := x.addArgs(profileRes.fields, args, "name", "type"); err != nil {
		return err
	}
	return profileRes.send(x, "POST", profileRes.path, x.given(profileRes.fields))
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

var deviceRes = &adminResource{
	path: "/devices", deleted: "removed device %s; its certificate is revoked", paged: true,
	cols: []column{
		col("ID", "id"), col("USER", "user_email"), col("PLATFORM", "platform"), col("STATE", "state"),
		col("NAME", "name"), col("MODEL", "model"), col("OS", "os_version"), col("LAST SEEN", "last_seen_at"),
	},
	order: []string{"id", "name", "state", "user_id", "user_email", "platform", "os_version", "model", "hardware_id", "activation_type", "activation_profile_id", "cert_serial", "config_version", "created_at", "enrolled_at", "activated_at", "last_seen_at", "removed_at"},
}

func devicesList(x *adminCmd, args []string) error {
	fs := x.flags()
	userArg := fs.String("user", "", "only this user's devices (ID or login)")
	state := fs.String("state", "", "only devices in this state: activating, enrolled, active, removed")
	return deviceRes.listBy(x, args, func(q url.Values) error {
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
		return nil
	})
}

func devicesGet(x *adminCmd, args []string) error {
	id, err := x.idArg(deviceRes, args)
	if err != nil {
		return err
	}
	return x.print("GET", deviceRes.at(id), nil, nil, x.showDevice)
}

// showDevice prints a device and its inventory.
func (x *adminCmd) showDevice(m map[string]any) error {
	inv, _ := m["inventory"].(map[string]any)
	delete(m, "inventory")
	if err := x.show(m, deviceRes.order...); err != nil {
		return err
	}
	if inv == nil {
		_, err := fmt.Fprintln(x.stdout, "\ninventory: none reported yet")
		return err
	}
	fmt.Fprintf(x.stdout, "\ninventory reported at %s:\n", cell(inv["reported_at"]))
	if info, _ := inv["info"].(map[string]any); len(info) > 0 {
		if err := x.show(info, "hostname", "manufacturer", "model", "serial_number", "os_name", "os_version", "kernel", "arch"); err != nil {
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

var tokenRes = &adminResource{
	path: "/tokens", deleted: "revoked token %s",
	cols: []column{
		col("ID", "id"), col("NAME", "name"), col("ADMIN", "admin_id"), col("CREATED", "created_at"),
		col("EXPIRES", "expires_at"), col("LAST USED", "last_used_at"), col("REVOKED", "revoked_at"),
	},
	fields: []field{
		{"name", "name", "a name that says where the token is used", stringFlag},
		{"expires", "expires_in", "validity as a Go duration, e.g. 720h (default: no expiry)", stringFlag},
	},
}

func tokensAdd(x *adminCmd, args []string) error {
	if err := x.addArgs(tokenRes.fields, args, "name"); err != nil {
		return err
	}
	return x.print("POST", tokenRes.path, nil, x.nonEmpty(tokenRes.fields), func(m map[string]any) error {
		exp := cell(m["expires_at"])
		if exp == "" {
			exp = "never"
		}
		_, err := fmt.Fprintf(x.stdout, "token:   %s\nid:      %s\nexpires: %s\nIt is shown only this once.\n", cell(m["token"]), cell(m["id"]), exp)
		return err
	})
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

func groupsSubgroups(x *adminCmd, args []string) error {
	id, err := x.idArg(groupRes, args)
	if err != nil {
		return err
	}
	return x.list(groupRes.at(id)+"/subgroups", nil, groupRes.cols, "")
}

func groupsAddSubgroup(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 2)
	if err != nil {
		return err
	}
	return x.change("POST", groupRes.at(pos[0])+"/subgroups", map[string]any{"group_id": pos[1]}, "group %s is now a subgroup of %s", clean(pos[1]), clean(pos[0]))
}

func groupsRemoveSubgroup(x *adminCmd, args []string) error {
	pos, err := x.parse(args, 2)
	if err != nil {
		return err
	}
	return x.change("DELETE", groupRes.at(pos[0])+"/subgroups"+seg(pos[1]), nil, "group %s is no longer a subgroup of %s", clean(pos[1]), clean(pos[0]))
}

// jsonValue is a flag holding JSON given inline or, as @FILE, in a file.
type jsonValue struct{ raw json.RawMessage }

func (j *jsonValue) String() string {
	if j == nil {
		return ""
	}
	return string(j.raw)
}

func (j *jsonValue) Get() any { return j.raw }

func (j *jsonValue) Set(v string) error {
	b, err := readArg(v)
	if err != nil {
		return err
	}
	if !json.Valid(b) {
		return errors.New("not valid JSON")
	}
	j.raw = json.RawMessage(bytes.TrimSpace(b))
	return nil
}

// readArg returns v, or the contents of the file v names as @FILE.
func readArg(v string) ([]byte, error) {
	if name, ok := strings.CutPrefix(v, "@"); ok {
		return os.ReadFile(name)
	}
	return []byte(v), nil
}

// listValue is a flag holding a comma-separated list.
type listValue []string

func (l *listValue) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *listValue) Get() any { return []string(*l) }

func (l *listValue) Set(v string) error {
	*l = splitList(v)
	return nil
}

// splitList splits a comma- (or, in a file, line-) separated list,
// dropping empty entries.
func splitList(v string) []string {
	out := []string{}
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' || r == ' ' || r == '\t' }) {
		out = append(out, f)
	}
	return out
}

func jsonFlag(fs *flag.FlagSet, name, usage string) { fs.Var(&jsonValue{}, name, usage) }
func listFlag(fs *flag.FlagSet, name, usage string) { fs.Var(&listValue{}, name, usage) }

var commandCols = []column{
	col("ID", "id"), col("TYPE", "type"), col("PRIORITY", "priority"), col("STATUS", "status"), col("CREATED", "created_at"),
	col("EXPIRES", "expires_at"), col("DELIVERIES", "deliveries"), col("COMPLETED", "completed_at"), col("MESSAGE", "message"),
}

var commandRes = &adminResource{
	path:  "/commands",
	order: []string{"id", "device_id", "type", "priority", "status", "payload", "created_by", "created_at", "expires_at", "deliveries", "sent_at", "completed_at", "message", "result"},
	fields: []field{
		{"priority", "priority", "0 to 100, higher first (default by type)", intFlag},
		{"payload", "payload", "the type's parameters as JSON, or @FILE", jsonFlag},
		{"expires", "expires_in", "lifetime as a Go duration, e.g. 24h (default 168h)", stringFlag},
	},
}

// commandBody is the body of a command from the verb's flags and type.
func (x *adminCmd) commandBody(typ string) map[string]any {
	in := x.given(commandRes.fields)
	if in["expires_in"] == "" {
		delete(in, "expires_in")
	}
	in["type"] = typ
	return in
}

func devicesCommand(x *adminCmd, args []string) error {
	x.defineFlags(commandRes.fields)
	pos, err := x.parse(args, 2)
	if err != nil {
		return err
	}
	m, raw, err := x.do("POST", deviceRes.at(pos[0])+"/commands", nil, x.commandBody(pos[1]))
	if err != nil {
		return err
	}
	if m == nil {
		return x.done("a %s command is already pending for device %s", clean(pos[1]), clean(pos[0]))
	}
	if x.json {
		return x.printJSON(raw)
	}
	return x.show(m, commandRes.order...)
}

func devicesCommands(x *adminCmd, args []string) error {
	fs := x.flags()
	history := fs.Bool("history", false, "list the completed commands instead of the queue")
	after, limit := pageQuery(fs)
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	q := url.Values{"status": {"open"}}
	if *history {
		q.Set("status", "final")
	}
	return x.list(deviceRes.at(pos[0])+"/commands", addPage(q, *after, *limit), commandCols, "after")
}

func devicesConfiguration(x *adminCmd, args []string) error {
	id, err := x.idArg(deviceRes, args)
	if err != nil {
		return err
	}
	return x.print("GET", deviceRes.at(id)+"/configuration", nil, nil, func(m map[string]any) error {
		items, _ := m["items"].([]any)
		delete(m, "items")
		if err := x.show(m, "device_id", "version", "device_version", "up_to_date", "reported_version"); err != nil {
			return err
		}
		fmt.Fprintf(x.stdout, "\nitems (%d):\n", len(items))
		tw := tabwriter.NewWriter(x.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tNAME\tREVISION\tVIA\tSTATUS\tERROR")
		for _, it := range items {
			im, _ := it.(map[string]any)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(im["id"]), cell(im["kind"]), cell(im["name"]), cell(im["revision"]), cell(im["via"]), cell(im["status"]), cell(im["error"]))
		}
		return tw.Flush()
	})
}

func devicesCompliance(x *adminCmd, args []string) error {
	id, err := x.idArg(deviceRes, args)
	if err != nil {
		return err
	}
	return x.print("GET", deviceRes.at(id)+"/compliance", nil, nil, func(m map[string]any) error {
		return x.show(m, "device_id", "status", "violations", "since", "step", "untrusted", "quarantined", "profile_id", "updated_at")
	})
}

func commandsCancel(x *adminCmd, args []string) error {
	id, err := x.idArg(commandRes, args)
	if err != nil {
		return err
	}
	return commandRes.send(x, "POST", commandRes.at(id)+"/cancel", nil)
}

func commandsSend(x *adminCmd, args []string) error {
	x.defineFlags(commandRes.fields)
	devices := x.fs.String("devices", "", "device IDs, comma-separated, or @FILE with one per line")
	pos, err := x.parse(args, 1)
	if err != nil {
		return err
	}
	if *devices == "" {
		return x.usage()
	}
	b, err := readArg(*devices)
	if err != nil {
		return err
	}
	in := x.commandBody(pos[0])
	in["device_ids"] = splitList(string(b))
	return x.print("POST", commandRes.path, nil, in, func(m map[string]any) error {
		return x.done("queued %s %s command(s)", cell(m["count"]), clean(pos[0]))
	})
}

var policyRes = &adminResource{
	path: "/policies", deleted: "deleted policy %s", paged: true,
	cols:  []column{col("ID", "id"), col("KIND", "kind"), col("NAME", "name"), col("RANK", "rank"), col("REVISION", "revision"), col("PLATFORMS", "platforms")},
	order: []string{"id", "kind", "name", "description", "rank", "platforms", "revision", "settings", "created_at", "updated_at"},
	fields: []field{
		{"name", "name", "policy name", stringFlag},
		{"description", "description", "description", stringFlag},
		{"rank", "rank", "rank: the lowest wins among a user's groups (default 100)", intFlag},
		{"platforms", "platforms", "only these platforms, comma-separated (default: all)", listFlag},
		{"settings", "settings", "the kind's settings as JSON, or @FILE", jsonFlag},
	},
}

func policiesList(x *adminCmd, args []string) error {
	kind := x.flags().String("kind", "", "only policies of this kind")
	return policyRes.listBy(x, args, func(q url.Values) error {
		if *kind != "" {
			q.Set("kind", *kind)
		}
		return nil
	})
}

func policiesAdd(x *adminCmd, args []string) error {
	fields := append([]field{{"kind", "kind", "it_policy, wifi, vpn, email, connectivity, certificate, app_config, software_release or compliance", stringFlag}}, policyRes.fields...)
	if err := x.addArgs(fields, args, "kind", "name", "settings"); err != nil {
		return err
	}
	return policyRes.send(x, "POST", policyRes.path, x.given(fields))
}

// target parses "ID user|group TARGET" and resolves a user's login.
func (x *adminCmd) target(args []string) (policyID, kind, target string, err error) {
	pos, err := x.parse(args, 3)
	if err != nil {
		return "", "", "", err
	}
	policyID, kind, target = pos[0], pos[1], pos[2]
	switch kind {
	case "user":
		target, err = x.userID(target)
	case "group":
	default:
		return "", "", "", x.usage()
	}
	return policyID, kind, target, err
}

func policiesAssign(x *adminCmd, args []string) error {
	pid, kind, target, err := x.target(args)
	if err != nil {
		return err
	}
	return x.change("POST", policyRes.at(pid)+"/assignments", map[string]any{"target_kind": kind, "target_id": target}, "assigned policy %s to %s %s", clean(pid), kind, clean(target))
}

func policiesUnassign(x *adminCmd, args []string) error {
	pid, kind, target, err := x.target(args)
	if err != nil {
		return err
	}
	return x.change("DELETE", policyRes.at(pid)+"/assignments"+seg(kind)+seg(target), nil, "unassigned policy %s from %s %s", clean(pid), kind, clean(target))
}

func policiesAssignments(x *adminCmd, args []string) error {
	id, err := x.idArg(policyRes, args)
	if err != nil {
		return err
	}
	return x.list(policyRes.at(id)+"/assignments", nil, []column{col("KIND", "target_kind"), col("TARGET", "target_id"), col("SINCE", "created_at")}, "")
}

var adminRes = &adminResource{
	path: "/admins",
	cols: []column{col("ID", "id"), col("USERNAME", "username"), col("NAME", "display_name"), col("ROLE", "role"),
		{"SCOPE", func(m map[string]any) string {
			gs, _ := m["scope_groups"].([]any)
			if len(gs) == 0 {
				return "all devices"
			}
			s := make([]string, len(gs))
			for i, g := range gs {
				s[i] = cell(g)
			}
			return strings.Join(s, ",")
		}}, col("CREATED", "created_at")},
	fields: []field{
		{"username", "username", "username (a-z 0-9 . _ -)", stringFlag},
		{"name", "display_name", "display name", stringFlag},
		{"role", "role", "role ID, see roles list (default security_admin)", stringFlag},
		{"scope", "scope_groups", "limit to the devices of these groups' users, comma-separated group IDs (default: all devices)", listFlag},
	},
}

var roleRes = &adminResource{
	path: "/roles", deleted: "deleted role %s",
	cols: []column{col("ID", "id"), col("NAME", "name"), col("BUILT-IN", "built_in"),
		{"PERMISSIONS", func(m map[string]any) string {
			ps, _ := m["permissions"].([]any)
			s := make([]string, len(ps))
			for i, p := range ps {
				s[i] = cell(p)
			}
			return strings.Join(s, ",")
		}}},
	order: []string{"id", "name", "description", "built_in", "permissions", "created_at", "updated_at"},
	fields: []field{
		{"name", "name", "role name", stringFlag},
		{"description", "description", "description", stringFlag},
		{"permissions", "permissions", "comma-separated permission names (see roles permissions)", listFlag},
	},
}

func rolesAdd(x *adminCmd, args []string) error {
	if err := x.addArgs(roleRes.fields, args, "name"); err != nil {
		return err
	}
	in := x.given(roleRes.fields)
	if _, ok := in["permissions"]; !ok {
		in["permissions"] = []string{}
	}
	return roleRes.send(x, "POST", roleRes.path, in)
}

func rolesPermissions(x *adminCmd, args []string) error {
	if _, err := x.parse(args, 0); err != nil {
		return err
	}
	return x.list("/permissions", nil, []column{col("PERMISSION", "name"), col("ALLOWS", "description")}, "")
}

func adminsAdd(x *adminCmd, args []string) error {
	if err := x.addArgs(adminRes.fields, args, "username"); err != nil {
		return err
	}
	return x.print("POST", adminRes.path, nil, x.given(adminRes.fields), func(m map[string]any) error {
		tok, _ := m["token"].(map[string]any)
		scope := adminRes.cols[4].get(m)
		_, err := fmt.Fprintf(x.stdout, "administrator: %s\nid:            %s\nrole:          %s\nscope:         %s\ntoken:         %s\nThe token is shown only this once.\n", cell(m["username"]), cell(m["id"]), cell(m["role"]), scope, cell(tok["token"]))
		return err
	})
}
