// Package directorytest runs a real OpenLDAP server (slapd) for tests: a
// fresh mdb database in a temporary directory on a free loopback port,
// loaded with a small company tree, with helpers to change the tree and to
// stop the server.
package directorytest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/custos-uem/custos/directory"
)

// Paths of the Debian packages slapd and ldap-utils.
const (
	SlapdPath  = "/usr/sbin/slapd"
	SchemaDir  = "/etc/ldap/schema"
	ModulePath = "/usr/lib/ldap"
	installMsg = "install slapd ldap-utils (apt-get install -y slapd ldap-utils) or run .ci/run"
)

// The test tree.
const (
	BaseDN          = "dc=example,dc=com"
	AdminDN         = "cn=admin," + BaseDN
	AdminPassword   = "admin-secret"
	PeopleDN        = "ou=people," + BaseDN
	GroupsDN        = "ou=groups," + BaseDN
	ServiceDN       = "cn=custos,ou=services," + BaseDN
	ServicePassword = "service-secret"
	// Password is every test person's password.
	Password = "correct horse battery staple"
)

// Person is a user entry of the test tree.
type Person struct {
	UID, CN, Mail string
}

// People are the users StartSlapd loads under PeopleDN.
var People = []Person{
	{"ada", "Ada Lovelace", "ada@example.com"},
	{"grace", "Grace Hopper", "grace@example.com"},
	{"alan", "Alan Turing", "alan@example.com"},
	{"linus", "Linus Torvalds", "linus@example.com"},
	{"ken", "Ken Thompson", "ken@example.com"},
}

// Groups are the groupOfNames entries StartSlapd loads under GroupsDN, by
// name: their members are people (by uid) or, prefixed "group:", groups.
// staff contains engineering, so ada and grace are in staff through it.
var Groups = map[string][]string{
	"engineering": {"ada", "grace"},
	"staff":       {"group:engineering", "alan"},
	"ops":         {"linus"},
}

// Server is a running slapd.
type Server struct {
	URL string
	// CA verifies the server's certificate for StartTLS.
	CA   *x509.CertPool
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncBuffer
	once sync.Once
}

// syncBuffer is slapd's output, written by exec's copying goroutine and
// read by a failing test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// UserDN is the DN of the person with uid.
func UserDN(uid string) string { return "uid=" + ldap.EscapeDN(uid) + "," + PeopleDN }

// GroupDN is the DN of the group named cn.
func GroupDN(cn string) string { return "cn=" + ldap.EscapeDN(cn) + "," + GroupsDN }

// SSHA returns the {SSHA} userPassword value of password: SHA-1 over the
// password and a salt, then the salt, base64 (the scheme slappasswd
// writes by default).
func SSHA(password string) string {
	salt := make([]byte, 8)
	rand.Read(salt)
	h := sha1.Sum(append([]byte(password), salt...))
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h[:], salt...))
}

// StartSlapd starts slapd for the test and loads the test tree; the
// server is stopped when the test ends.
func StartSlapd(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(SlapdPath); err != nil {
		t.Fatal(installMsg)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	ca, certFile, keyFile := writeCert(t, dir)
	conf := fmt.Sprintf(`include %[1]s/core.schema
include %[1]s/cosine.schema
include %[1]s/inetorgperson.schema
include %[1]s/nis.schema
pidfile %[2]s/slapd.pid
argsfile %[2]s/slapd.args
modulepath %[3]s
moduleload back_mdb
TLSCertificateFile %[4]s
TLSCertificateKeyFile %[5]s
database mdb
maxsize 67108864
suffix "%[6]s"
rootdn "%[7]s"
rootpw %[8]s
directory %[9]s
index objectClass eq
index uid,mail,cn eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by dn.exact="%[10]s" read by self read by * none
`, SchemaDir, dir, ModulePath, certFile, keyFile, BaseDN, AdminDN, AdminPassword, data, ServiceDN)
	confFile := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	s := &Server{URL: "ldap://" + addr, CA: ca, done: make(chan struct{}), log: new(syncBuffer)}
	// -d 0 keeps slapd in the foreground (a child we can kill), logging
	// nothing but startup errors; its own process group lets Stop kill
	// anything it forks.
	s.cmd = exec.Command(SlapdPath, "-d", "0", "-h", s.URL+"/", "-f", confFile)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start slapd: %v", err)
	}
	go func() {
		s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.Stop(t) })
	s.waitReady(t, addr)
	s.load(t)
	return s
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func (s *Server) waitReady(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			t.Fatalf("slapd exited at start:\n%s", s.log.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("slapd does not listen on %s after 15s:\n%s", addr, s.log.String())
}

// Stop kills slapd and waits for it: the directory is then down, for
// tests of an unreachable directory. Stopping twice is fine.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.once.Do(func() {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	})
}

// Config returns a directory.Config for the server with the OpenLDAP
// preset, binding as the service account.
func (s *Server) Config() directory.Config {
	return directory.Config{
		Preset: directory.PresetOpenLDAP, URL: s.URL, BindDN: ServiceDN, BindPassword: ServicePassword,
		BaseDN: PeopleDN, GroupBaseDN: GroupsDN, RootCAs: s.CA, DialTimeout: 2 * time.Second, Timeout: 5 * time.Second,
	}
}

// admin binds as the root DN.
func (s *Server) admin(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatalf("dial slapd: %v", err)
	}
	if err := c.Bind(AdminDN, AdminPassword); err != nil {
		c.Close()
		t.Fatalf("bind as admin: %v", err)
	}
	return c
}

// Add adds an entry as the root DN.
func (s *Server) Add(t testing.TB, dn string, attrs map[string][]string) {
	t.Helper()
	c := s.admin(t)
	defer c.Close()
	req := ldap.NewAddRequest(dn, nil)
	for k, v := range attrs {
		req.Attribute(k, v)
	}
	if err := c.Add(req); err != nil {
		t.Fatalf("add %s: %v", dn, err)
	}
}

// Modify replaces the attributes of an entry.
func (s *Server) Modify(t testing.TB, dn string, replace map[string][]string) {
	t.Helper()
	c := s.admin(t)
	defer c.Close()
	req := ldap.NewModifyRequest(dn, nil)
	for k, v := range replace {
		req.Replace(k, v)
	}
	if err := c.Modify(req); err != nil {
		t.Fatalf("modify %s: %v", dn, err)
	}
}

// Rename gives an entry a new RDN (e.g. "uid=ada.king"), dropping the old
// RDN value: the entry, and its entryUUID, stay.
func (s *Server) Rename(t testing.TB, dn, newRDN string) {
	t.Helper()
	c := s.admin(t)
	defer c.Close()
	if err := c.ModifyDN(ldap.NewModifyDNRequest(dn, newRDN, true, "")); err != nil {
		t.Fatalf("rename %s to %s: %v", dn, newRDN, err)
	}
}

// Delete removes an entry.
func (s *Server) Delete(t testing.TB, dn string) {
	t.Helper()
	c := s.admin(t)
	defer c.Close()
	if err := c.Del(ldap.NewDelRequest(dn, nil)); err != nil {
		t.Fatalf("delete %s: %v", dn, err)
	}
}

// AddPerson adds an inetOrgPerson with Password under PeopleDN.
func (s *Server) AddPerson(t testing.TB, p Person) {
	t.Helper()
	s.Add(t, UserDN(p.UID), map[string][]string{
		"objectClass": {"inetOrgPerson"}, "uid": {p.UID}, "cn": {p.CN}, "sn": {p.CN},
		"mail": {p.Mail}, "userPassword": {SSHA(Password)},
	})
}

// AddGroup adds a groupOfNames under GroupsDN; members as in Groups.
func (s *Server) AddGroup(t testing.TB, name string, members ...string) {
	t.Helper()
	s.Add(t, GroupDN(name), map[string][]string{"objectClass": {"groupOfNames"}, "cn": {name}, "member": memberDNs(members)})
}

func memberDNs(members []string) []string {
	dns := make([]string, len(members))
	for i, m := range members {
		if g, ok := cutPrefix(m, "group:"); ok {
			dns[i] = GroupDN(g)
		} else {
			dns[i] = UserDN(m)
		}
	}
	return dns
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}

func (s *Server) load(t testing.TB) {
	t.Helper()
	s.Add(t, BaseDN, map[string][]string{"objectClass": {"dcObject", "organization"}, "dc": {"example"}, "o": {"Example"}})
	for _, ou := range []string{"people", "groups", "services"} {
		s.Add(t, "ou="+ou+","+BaseDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {ou}})
	}
	s.Add(t, ServiceDN, map[string][]string{"objectClass": {"organizationalRole", "simpleSecurityObject"},
		"cn": {"custos"}, "userPassword": {SSHA(ServicePassword)}})
	for _, p := range People {
		s.AddPerson(t, p)
	}
	// Groups before the groups that contain them: slapd does not check
	// member values, but the tree then reads naturally.
	for _, name := range []string{"engineering", "ops", "staff"} {
		s.AddGroup(t, name, Groups[name]...)
	}
}

// writeCert writes a self-signed P-256 certificate for 127.0.0.1 and
// localhost, for StartTLS, and returns a pool that trusts it.
func writeCert(t testing.TB, dir string) (*x509.CertPool, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "slapd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		t.Fatal(err)
	}
	return pool, certFile, keyFile
}
