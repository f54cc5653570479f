package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// testPKI is a throwaway certificate authority, a server certificate for 127.0.0.1 and a
// client certificate, all signed by it, written as PEM files in a temporary directory.
type testPKI struct {
	dir                             string
	ca, serverCert, serverKey       string
	clientCert, clientKey, combined string // combined: the client's certificate and key in one file
	other                           string // a CA that signed neither
	serverTLS                       *tls.Config
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	write := func(name string, blocks ...*pem.Block) string {
		t.Helper()
		path := filepath.Join(p.dir, name)
		var b strings.Builder
		for _, bl := range blocks {
			b.Write(pem.EncodeToMemory(bl))
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	newKey := func() (*ecdsa.PrivateKey, *pem.Block) {
		t.Helper()
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return k, &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	serial := int64(1)
	sign := func(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) (*x509.Certificate, *pem.Block) {
		t.Helper()
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c, &pem.Block{Type: "CERTIFICATE", Bytes: der}
	}
	newCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, *pem.Block) {
		k, _ := newKey()
		c, b := sign(&x509.Certificate{Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, nil, &k.PublicKey, k)
		return c, k, b
	}
	caCert, caKey, caPEM := newCA("zasync test CA")
	_, _, otherPEM := newCA("another CA")
	p.ca, p.other = write("ca.pem", caPEM), write("other.pem", otherPEM)

	sk, skPEM := newKey()
	_, sPEM := sign(&x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames: []string{"localhost"}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		caCert, &sk.PublicKey, caKey)
	p.serverCert, p.serverKey = write("server.pem", sPEM), write("server.key", skPEM)

	ck, ckPEM := newKey()
	_, cPEM := sign(&x509.Certificate{Subject: pkix.Name{CommonName: "zasync client"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, caCert, &ck.PublicKey, caKey)
	p.clientCert, p.clientKey, p.combined = write("client.pem", cPEM), write("client.key", ckPEM), write("client-both.pem", cPEM, ckPEM)

	server, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	p.serverTLS = &tls.Config{Certificates: []tls.Certificate{server}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: pool, MinVersion: tls.VersionTLS12}
	return p
}

// startTLSRedisServer starts redis-server with TLS only, requiring client certificates of
// pki's CA, and returns its address; it skips when redis-server is missing or was built
// without TLS.
func startTLSRedisServer(t *testing.T, pki *testPKI) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("no redis-server in PATH")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", pki.serverCert, "--tls-key-file", pki.serverKey, "--tls-ca-cert-file", pki.ca,
		"--tls-auth-clients", "yes", "--save", "", "--appendonly", "no", "--dir", pki.dir)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case <-exited:
			if strings.Contains(log.String(), "tls") || strings.Contains(log.String(), "TLS") {
				t.Skipf("redis-server has no TLS: %s", log.String())
			}
			t.Fatalf("redis-server exited: %s", log.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not listen on %s within 30s: %s", addr, log.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// TestTLSFlags: --tls-ca trusts a private CA, --tls-cert and --tls-key present a client
// certificate, SSL_CERT_FILE trusts a CA too, and misuse is one clear line; on a TLS
// miniredis and, when it is installed with TLS, a real redis-server.
func TestTLSFlags(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		m, err := miniredis.RunTLS(pki.serverTLS)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		checkTLSFlags(t, pki, m.Addr())
	})
	t.Run("redis-server", func(t *testing.T) {
		t.Parallel()
		checkTLSFlags(t, pki, startTLSRedisServer(t, pki))
	})
}

func checkTLSFlags(t *testing.T, pki *testPKI, addr string) {
	url := "rediss://" + addr + "/0"
	prefix := testName("zasynctest-tls-")
	clientFlags := []string{"--tls-cert", pki.clientCert, "--tls-key", pki.clientKey}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"CA and client certificate", nil, append([]string{"--tls-ca", pki.ca}, clientFlags...), 0, "0\n"},
		{"certificate and key in one file", nil, []string{"--tls-ca", pki.ca, "--tls-cert", pki.combined}, 0, "0\n"},
		{"SSL_CERT_FILE", []string{"SSL_CERT_FILE=" + pki.ca}, clientFlags, 0, "0\n"},
		{"the system's roots", []string{"SSL_CERT_FILE=" + pki.other, "SSL_CERT_DIR=" + pki.dir + "/none"}, clientFlags, 1, "certificate signed by unknown authority"},
		{"another CA", nil, append([]string{"--tls-ca", pki.other}, clientFlags...), 1, "certificate signed by unknown authority"},
		{"no client certificate", nil, []string{"--tls-ca", pki.ca}, 1, "cannot reach Redis"},
		{"key without certificate", nil, []string{"--tls-ca", pki.ca, "--tls-key", pki.clientKey}, 2, "--tls-key needs --tls-cert"},
		{"missing CA file", nil, []string{"--tls-ca", pki.dir + "/nope.pem"}, 2, "--tls-ca: open "},
		{"CA file without PEM", nil, []string{"--tls-ca", pki.clientKey}, 2, "no PEM certificate"},
		{"key of another certificate", nil, []string{"--tls-ca", pki.ca, "--tls-cert", pki.clientCert, "--tls-key", pki.serverKey}, 2, "private key does not match"},
	} {
		args := append([]string{"count", "pending", "--redis", url, "--prefix", prefix}, tc.args...)
		out, errOut, code := zasync(t, tc.env, args...)
		got := out
		if tc.code != 0 {
			got = errOut
		}
		if code != tc.code || !strings.Contains(got, tc.want) || (tc.code != 0 && strings.Count(errOut, "\n") != 1) {
			t.Errorf("%s: zasync %q: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.name, args, code, out, errOut, tc.code, tc.want)
		}
	}
	// TLS flags with a URL without TLS, or without a URL.
	for _, args := range [][]string{
		{"count", "pending", "--redis", "redis://" + addr, "--tls-ca", pki.ca},
		{"serve", "--tls-cert", pki.combined},
	} {
		out, errOut, code := zasync(t, nil, args...)
		if code != 2 || !strings.Contains(errOut, "need a rediss:// URL") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("zasync %q: exit %d, stdout %q, stderr %q; want exit 2 and %q", args, code, out, errOut, "need a rediss:// URL")
		}
	}
	// serve and put --wait over TLS.
	tlsArgs := append([]string{"--redis", url, "--prefix", prefix, "--tls-ca", pki.ca}, clientFlags...)
	p := startServe(t, append([]string{"--builtin", "--poll-interval", "200ms"}, tlsArgs...)...)
	out, errOut, code := zasync(t, nil, append([]string{"put", "sum", "1", "2", "--wait", "--timeout", "1m"}, tlsArgs...)...)
	if code != 0 || out != "3\n" {
		t.Errorf("put sum 1 2 --wait over TLS: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	p.stop()
}
