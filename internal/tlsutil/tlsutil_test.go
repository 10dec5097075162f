package tlsutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCA is a CA certificate and key in PEM.
type testCA struct{ cert, key []byte }

// newSharedCA makes one CA for the tests that do not care about its key
// type: RSA key generation would dominate the package's test time otherwise.
var newSharedCA = sync.OnceValues(func() (testCA, error) {
	cert, key, err := NewTestCA()
	return testCA{cert: cert, key: key}, err
})

func sharedCA(t *testing.T) testCA {
	t.Helper()
	ca, err := newSharedCA()
	if err != nil {
		t.Fatalf("NewTestCA = %v", err)
	}
	return ca
}

func TestNewTestCA(t *testing.T) {
	ca := sharedCA(t)
	certBlock, _ := pem.Decode(ca.cert)
	keyBlock, _ := pem.Decode(ca.key)
	if certBlock == nil || certBlock.Type != "CERTIFICATE" {
		t.Fatalf("certificate PEM = %q, want a CERTIFICATE block", ca.cert)
	}
	// Complement hands servers PKCS#1; tests must exercise that form.
	if keyBlock == nil || keyBlock.Type != "RSA PRIVATE KEY" {
		t.Fatalf("key PEM type = %v, want RSA PRIVATE KEY", keyBlock)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("IsCA %v, BasicConstraintsValid %v, KeyUsage %v: not a CA", cert.IsCA, cert.BasicConstraintsValid, cert.KeyUsage)
	}
	key, err := x509.ParsePKCS1PrivateKey(keyBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		t.Error("key does not match certificate")
	}
}

func TestMintFromCAVerifies(t *testing.T) {
	ca := sharedCA(t)
	tests := []struct {
		name      string
		names     []string
		wantDNS   []string
		wantIPs   []string
		wantCN    string
		hostnames []string // each must pass Verify as DNSName
	}{
		{name: "server name", names: []string{"hs1"}, wantDNS: []string{"hs1"}, wantCN: "hs1", hostnames: []string{"hs1"}},
		{name: "server name with port", names: []string{"hs1:8448"}, wantDNS: []string{"hs1"}, wantCN: "hs1", hostnames: []string{"hs1"}},
		{name: "IPv4", names: []string{"127.0.0.1"}, wantIPs: []string{"127.0.0.1"}, wantCN: "127.0.0.1", hostnames: []string{"127.0.0.1"}},
		{name: "IPv6 bare", names: []string{"::1"}, wantIPs: []string{"::1"}, wantCN: "::1", hostnames: []string{"::1"}},
		{name: "IPv6 with port", names: []string{"[::1]:8448"}, wantIPs: []string{"::1"}, wantCN: "::1", hostnames: []string{"::1"}},
		{
			name:      "mixed",
			names:     []string{"hs1", "localhost", "127.0.0.1", "::1", "*.hs1.test"},
			wantDNS:   []string{"hs1", "localhost", "*.hs1.test"},
			wantIPs:   []string{"127.0.0.1", "::1"},
			wantCN:    "hs1",
			hostnames: []string{"hs1", "localhost", "127.0.0.1", "::1", "a.hs1.test"},
		},
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.cert) {
		t.Fatal("test CA certificate does not parse")
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := MintFromCA(ca.cert, ca.key, tc.names)
			if err != nil {
				t.Fatalf("MintFromCA(%q) = %v", tc.names, err)
			}
			leaf := checkLeaf(t, cert)
			if leaf.Subject.CommonName != tc.wantCN {
				t.Errorf("CommonName = %q, want %q", leaf.Subject.CommonName, tc.wantCN)
			}
			if got := strings.Join(leaf.DNSNames, ","); got != strings.Join(tc.wantDNS, ",") {
				t.Errorf("DNSNames = %q, want %q", leaf.DNSNames, tc.wantDNS)
			}
			var ips []string
			for _, ip := range leaf.IPAddresses {
				ips = append(ips, ip.String())
			}
			if got := strings.Join(ips, ","); got != strings.Join(tc.wantIPs, ",") {
				t.Errorf("IPAddresses = %q, want %q", ips, tc.wantIPs)
			}
			for _, h := range tc.hostnames {
				for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
					_, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}})
					if err != nil {
						t.Errorf("Verify(%q, usage %v) = %v", h, usage, err)
					}
				}
			}
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.test", Roots: roots}); err == nil {
				t.Error(`Verify("other.test") succeeded, want a hostname error`)
			}
		})
	}
}

// checkLeaf checks what every minted certificate must have and returns its
// parsed leaf.
func checkLeaf(t *testing.T, cert tls.Certificate) *x509.Certificate {
	t.Helper()
	if len(cert.Certificate) != 1 {
		t.Fatalf("chain length = %d, want 1", len(cert.Certificate))
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatalf("parse leaf: %v", err)
	}
	if cert.Leaf == nil || !cert.Leaf.Equal(leaf) {
		t.Error("tls.Certificate.Leaf is not the parsed first certificate")
	}
	key, ok := cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Fatalf("private key = %T, want a P-256 *ecdsa.PrivateKey", cert.PrivateKey)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		t.Error("private key does not match the certificate")
	}
	if leaf.IsCA {
		t.Error("leaf IsCA = true")
	}
	now := time.Now()
	if !leaf.NotBefore.Before(now.Add(-59*time.Minute)) || leaf.NotBefore.Before(now.Add(-61*time.Minute)) {
		t.Errorf("NotBefore = %v, want about an hour before %v", leaf.NotBefore, now)
	}
	if !leaf.NotAfter.After(now.Add(364*24*time.Hour)) || leaf.NotAfter.After(now.Add(366*24*time.Hour)) {
		t.Errorf("NotAfter = %v, want about a year after %v", leaf.NotAfter, now)
	}
	return leaf
}

func TestMintFromCAKeyFormats(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		key    crypto.Signer
		keyPEM []byte
	}{
		{name: "RSA PKCS#1", key: rsaKey, keyPEM: pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey))},
		{name: "RSA PKCS#8", key: rsaKey, keyPEM: pkcs8PEM(t, rsaKey)},
		{name: "EC SEC 1", key: ecKey, keyPEM: pemBlock("EC PRIVATE KEY", ecDER)},
		{
			// openssl ecparam -genkey writes the curve parameters first.
			name:   "EC SEC 1 after EC PARAMETERS",
			key:    ecKey,
			keyPEM: append(pemBlock("EC PARAMETERS", []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22}), pemBlock("EC PRIVATE KEY", ecDER)...),
		},
		{name: "EC PKCS#8", key: ecKey, keyPEM: pkcs8PEM(t, ecKey)},
		{name: "Ed25519 PKCS#8", key: edKey, keyPEM: pkcs8PEM(t, edKey)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			caPEM := caCertPEM(t, tc.key, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
			cert, err := MintFromCA(caPEM, tc.keyPEM, []string{"hs1"})
			if err != nil {
				t.Fatalf("MintFromCA = %v", err)
			}
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(caPEM)
			if _, err := checkLeaf(t, cert).Verify(x509.VerifyOptions{DNSName: "hs1", Roots: roots}); err != nil {
				t.Errorf("Verify = %v", err)
			}
		})
	}
}

func TestMintFromCARejectsBadInput(t *testing.T) {
	ca := sharedCA(t)
	otherCert, otherKey, err := NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	caKey := parseTestCAKey(t, ca)
	keyBlock, _ := pem.Decode(ca.key)
	tests := []struct {
		name     string
		cert     []byte
		key      []byte
		names    []string
		errorHas string
	}{
		{name: "empty certificate", key: ca.key, names: []string{"hs1"}, errorHas: "no PEM CERTIFICATE"},
		{name: "garbage certificate", cert: []byte("not pem at all"), key: ca.key, names: []string{"hs1"}, errorHas: "no PEM CERTIFICATE"},
		{name: "corrupt certificate DER", cert: pemBlock("CERTIFICATE", []byte{0x30, 0x03, 0x02, 0x01}), key: ca.key, names: []string{"hs1"}, errorHas: "parse certificate"},
		{name: "truncated certificate PEM", cert: ca.cert[:len(ca.cert)/2], key: ca.key, names: []string{"hs1"}, errorHas: "no PEM CERTIFICATE"},
		{name: "empty key", cert: ca.cert, names: []string{"hs1"}, errorHas: "no PEM private key"},
		{name: "certificate as key", cert: ca.cert, key: ca.cert, names: []string{"hs1"}, errorHas: "no PEM private key"},
		{name: "corrupt PKCS#1", cert: ca.cert, key: pemBlock("RSA PRIVATE KEY", keyBlock.Bytes[:40]), names: []string{"hs1"}, errorHas: "parse RSA PRIVATE KEY"},
		{name: "corrupt PKCS#8", cert: ca.cert, key: pemBlock("PRIVATE KEY", []byte("junk")), names: []string{"hs1"}, errorHas: "parse PRIVATE KEY"},
		{name: "corrupt EC", cert: ca.cert, key: pemBlock("EC PRIVATE KEY", []byte("junk")), names: []string{"hs1"}, errorHas: "parse EC PRIVATE KEY"},
		{name: "key of another CA", cert: ca.cert, key: otherKey, names: []string{"hs1"}, errorHas: "does not match"},
		{name: "certificate of another CA", cert: otherCert, key: ca.key, names: []string{"hs1"}, errorHas: "does not match"},
		{name: "expired CA", cert: caCertPEM(t, caKey, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)), key: ca.key, names: []string{"hs1"}, errorHas: "not valid now"},
		{name: "CA not yet valid", cert: caCertPEM(t, caKey, time.Now().Add(24*time.Hour), time.Now().Add(48*time.Hour)), key: ca.key, names: []string{"hs1"}, errorHas: "not valid now"},
		{name: "no names", cert: ca.cert, key: ca.key, errorHas: "no names"},
		{name: "empty name", cert: ca.cert, key: ca.key, names: []string{"hs1", ""}, errorHas: "empty name"},
		{name: "brackets only", cert: ca.cert, key: ca.key, names: []string{"[]"}, errorHas: "empty name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := MintFromCA(tc.cert, tc.key, tc.names)
			if err == nil || !strings.Contains(err.Error(), tc.errorHas) {
				t.Fatalf("MintFromCA = %v, want an error containing %q", err, tc.errorHas)
			}
		})
	}
}

func TestMintFromCAFiles(t *testing.T) {
	ca := sharedCA(t)
	dir := t.TempDir()
	certPath := filepath.Join(dir, "ca.crt")
	keyPath := filepath.Join(dir, "ca.key")
	writeFile(t, certPath, ca.cert)
	writeFile(t, keyPath, ca.key)

	cert, err := MintFromCAFiles(certPath, keyPath, []string{"hs1"})
	if err != nil {
		t.Fatalf("MintFromCAFiles = %v", err)
	}
	checkLeaf(t, cert)

	missing := filepath.Join(dir, "missing")
	for _, paths := range [][2]string{{missing, keyPath}, {certPath, missing}} {
		_, err := MintFromCAFiles(paths[0], paths[1], []string{"hs1"})
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("MintFromCAFiles(%q, %q) = %v, want os.ErrNotExist", paths[0], paths[1], err)
		}
	}
	// The file name must appear in the error, since that is what an
	// operator has to fix.
	_, err = MintFromCAFiles(keyPath, keyPath, []string{"hs1"})
	if err == nil || !strings.Contains(err.Error(), keyPath) {
		t.Errorf("MintFromCAFiles(key as certificate) = %v, want an error naming %s", err, keyPath)
	}
}

func TestMintFromCAFreshKeyAndSerial(t *testing.T) {
	ca := sharedCA(t)
	a, err := MintFromCA(ca.cert, ca.key, []string{"hs1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := MintFromCA(ca.cert, ca.key, []string{"hs1"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Leaf.SerialNumber.Cmp(b.Leaf.SerialNumber) == 0 {
		t.Error("two mints share a serial number")
	}
	if a.PrivateKey.(*ecdsa.PrivateKey).Equal(b.PrivateKey) {
		t.Error("two mints share a private key")
	}
}

func TestSelfSigned(t *testing.T) {
	cert, err := SelfSigned([]string{"hs1", "127.0.0.1"})
	if err != nil {
		t.Fatalf("SelfSigned = %v", err)
	}
	leaf := checkLeaf(t, cert)
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, h := range []string{"hs1", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: roots}); err != nil {
			t.Errorf("Verify(%q) against itself = %v", h, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "hs1", Roots: x509.NewCertPool()}); err == nil {
		t.Error("self-signed certificate verified against an empty pool")
	}
	if _, err := SelfSigned(nil); err == nil {
		t.Error("SelfSigned(nil) succeeded, want an error")
	}
}

func TestCertPool(t *testing.T) {
	ca := sharedCA(t)
	dir := t.TempDir()
	caPath := filepath.Join(dir, "ca.crt")
	writeFile(t, caPath, ca.cert)
	notPEM := filepath.Join(dir, "not.pem")
	writeFile(t, notPEM, []byte("hello"))

	cert, err := MintFromCA(ca.cert, ca.key, []string{"hs1"})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := CertPool(caPath)
	if err != nil {
		t.Fatalf("CertPool(%q) = %v", caPath, err)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "hs1", Roots: pool}); err != nil {
		t.Errorf("Verify with CertPool(%q) = %v", caPath, err)
	}
	if _, err := CertPool(); err != nil {
		t.Errorf("CertPool() = %v", err)
	}
	if _, err := CertPool(caPath, filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CertPool(missing) = %v, want os.ErrNotExist", err)
	}
	if _, err := CertPool(notPEM); err == nil {
		t.Error("CertPool(not PEM) succeeded, want an error")
	}
}

// TestHandshake runs the way the server uses the package: federation served
// with a minted certificate and dialled with CertPool trusting the CA file.
func TestHandshake(t *testing.T) {
	ca := sharedCA(t)
	caPath := filepath.Join(t.TempDir(), "ca.crt")
	writeFile(t, caPath, ca.cert)
	cert, err := MintFromCA(ca.cert, ca.key, []string{"hs1"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Reading drives the server side of the handshake.
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	pool, err := CertPool(caPath)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		serverName string
		wantErr    bool
	}{
		{serverName: "hs1"},
		{serverName: "hs2", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.serverName, func(t *testing.T) {
			d := tls.Dialer{NetDialer: &net.Dialer{}, Config: &tls.Config{RootCAs: pool, ServerName: tc.serverName}}
			c, err := d.DialContext(t.Context(), "tcp", ln.Addr().String())
			if (err != nil) != tc.wantErr {
				t.Fatalf("dial with ServerName %q = %v, want error %v", tc.serverName, err, tc.wantErr)
			}
			if c != nil {
				c.Close()
			}
		})
	}
}

// FuzzParse checks that no CA file content and no server name makes the
// input side of MintFromCA panic. It stops short of signing: under the
// fuzzer's coverage instrumentation an RSA signature takes seconds, and the
// signing path is the standard library's, covered by the tests above.
func FuzzParse(f *testing.F) {
	certPEM, keyPEM, err := NewTestCA()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(certPEM, "hs1")
	f.Add(keyPEM, "hs1:8448")
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), "[::1]")
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n"), "")
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----\n"), "1.2.3.4:5")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		if cert, err := parseCertificate(data); (err == nil) != (cert != nil) {
			t.Fatalf("parseCertificate = %v, %v", cert, err)
		}
		if key, err := parsePrivateKey(data); (err == nil) != (key != nil) {
			t.Fatalf("parsePrivateKey = %v, %v", key, err)
		}
		dns, ips, err := splitNames([]string{name})
		if err == nil && len(dns)+len(ips) != 1 {
			t.Fatalf("splitNames(%q) = %q, %v", name, dns, ips)
		}
	})
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkcs8PEM(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("PRIVATE KEY", der)
}

// caCertPEM makes a self-signed CA certificate for key, valid from
// notBefore to notAfter.
func caCertPEM(t *testing.T, key crypto.Signer, notBefore, notAfter time.Time) []byte {
	t.Helper()
	serial, err := newSerial()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pemBlock("CERTIFICATE", der)
}

func parseTestCAKey(t *testing.T, ca testCA) crypto.Signer {
	t.Helper()
	key, err := parsePrivateKey(ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
