// Package tlsutil makes the TLS material a homeserver needs without any
// external tool: a leaf certificate minted at start-up from a CA handed over
// as PEM files (the Complement harness copies its CA into the container and
// expects the server to serve a certificate for its own name signed by it),
// a self-signed certificate when no CA is configured, the pool of roots that
// outbound federation trusts, and a throwaway CA for tests.
//
// Every function returns an error on malformed input; none panics.
package tlsutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"
)

const (
	// backdate covers clock skew between the minting server and its peers:
	// a certificate that is valid "from now" is rejected by a peer whose
	// clock runs a few seconds behind.
	backdate = time.Hour
	// leafLifetime is long enough that a test deployment or a long-running
	// server without a configured certificate never sees its leaf expire;
	// the leaf is minted again at every start anyway.
	leafLifetime = 365 * 24 * time.Hour
)

// MintFromCA loads a CA certificate and private key (PEM; the key may be
// PKCS#1 RSA, PKCS#8 or SEC 1 EC) and returns a fresh leaf certificate for
// names, signed by the CA, with its own new ECDSA P-256 key. Names are DNS
// names or IP addresses; a Matrix server name with a port ("hs1:8448",
// "[::1]:8448") is accepted and the port dropped, since certificates do not
// carry ports. The leaf is valid from an hour ago to a year from now and
// usable for both server and client authentication, as federation uses it in
// both directions.
func MintFromCA(caCertPEM, caKeyPEM []byte, names []string) (tls.Certificate, error) {
	caCert, err := parseCertificate(caCertPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse CA certificate: %w", err)
	}
	caKey, err := parsePrivateKey(caKeyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse CA key: %w", err)
	}
	if !publicKeysEqual(caCert.PublicKey, caKey.Public()) {
		return tls.Certificate{}, errors.New("CA key does not match CA certificate")
	}
	// Peers would reject every handshake; say why here rather than there.
	if now := time.Now(); now.Before(caCert.NotBefore) || now.After(caCert.NotAfter) {
		return tls.Certificate{}, fmt.Errorf("CA certificate is not valid now (valid %s to %s)",
			caCert.NotBefore.Format(time.RFC3339), caCert.NotAfter.Format(time.RFC3339))
	}
	cert, err := mintLeaf(names, caCert, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("mint certificate for %v from CA %q: %w", names, caCert.Subject.CommonName, err)
	}
	return cert, nil
}

// MintFromCAFiles is MintFromCA with the CA certificate and key read from
// certPath and keyPath.
func MintFromCAFiles(certPath, keyPath string, names []string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("read CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("read CA key: %w", err)
	}
	cert, err := MintFromCA(certPEM, keyPEM, names)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("CA %s: %w", certPath, err)
	}
	return cert, nil
}

// SelfSigned returns a certificate for names signed by its own new ECDSA
// P-256 key, for servers that have no CA configured. Peers trust it only if
// told to; names are handled as in MintFromCA.
func SelfSigned(names []string) (tls.Certificate, error) {
	cert, err := mintLeaf(names, nil, nil)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("self-sign certificate for %v: %w", names, err)
	}
	return cert, nil
}

// CertPool returns the system roots plus every certificate in the PEM files
// extraCAFiles. Outbound federation uses it to trust a test CA (Complement's)
// next to the public ones. A system without a root store (a scratch image
// without SSL_CERT_FILE) yields only the extra roots. An extra file that is
// missing or holds no certificate is an error, because silently trusting
// less than configured makes every federation request fail far from the
// cause.
func CertPool(extraCAFiles ...string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, path := range extraCAFiles {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate found", path)
		}
	}
	return pool, nil
}

// NewTestCA generates a CA for tests: a self-signed CA certificate and its
// 2048-bit RSA key as PKCS#1 PEM ("RSA PRIVATE KEY"), the form the
// Complement harness hands to servers. It is exported because tests of other
// packages (federation on loopback, the container image) need one.
func NewTestCA() (certPEM, keyPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("generate test CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Axon test CA", Organization: []string{"Axon tests"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(leafLifetime + 24*time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create test CA certificate: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return certPEM, keyPEM, nil
}

// mintLeaf creates a leaf for names with a new P-256 key. A nil parent makes
// it self-signed.
func mintLeaf(names []string, parent *x509.Certificate, parentKey crypto.Signer) (tls.Certificate, error) {
	dnsNames, ips, err := splitNames(names)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// Verifiers use the SANs; the common name only helps a human reading
		// the certificate.
		Subject:               pkix.Name{CommonName: hostOnly(names[0])},
		DNSNames:              dnsNames,
		IPAddresses:           ips,
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(leafLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse created certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// splitNames sorts names into DNS names and IP addresses for the SAN
// extension.
func splitNames(names []string) (dnsNames []string, ips []net.IP, err error) {
	if len(names) == 0 {
		return nil, nil, errors.New("no names given")
	}
	for _, n := range names {
		h := hostOnly(n)
		if h == "" {
			return nil, nil, fmt.Errorf("empty name in %q", names)
		}
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
			continue
		}
		dnsNames = append(dnsNames, h)
	}
	return dnsNames, ips, nil
}

// hostOnly strips a port and IPv6 brackets from a server name: "hs1:8448"
// gives "hs1", "[::1]:8448" and "[::1]" give "::1", and a bare IPv6 literal
// is left alone.
func hostOnly(name string) string {
	name = strings.TrimSpace(name)
	if h, _, err := net.SplitHostPort(name); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
}

// parseCertificate returns the first certificate in data.
func parseCertificate(data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM CERTIFICATE block found")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		return cert, nil
	}
}

// parsePrivateKey returns the first private key in data. Blocks of other
// types are skipped, so that `openssl ecparam -genkey` output (an "EC
// PARAMETERS" block before the key) loads too.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key block found")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s holds a %T, which cannot sign", block.Type, key)
		}
		return signer, nil
	}
}

// publicKeysEqual reports whether two public keys are the same key; every
// key type in crypto/* implements Equal.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// newSerial returns a random 128-bit serial number, so that certificates
// minted at every start never repeat a serial under the same CA.
func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return serial, nil
}
