// Package testkeys makes the keys and certificates tests need: fresh ones
// each time, as PEM the way operators write them to Vault.
package testkeys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// RSA is a fresh RSA key of bits as PKCS #8 PEM, with the key.
func RSA(t testing.TB, bits int) (string, *rsa.PrivateKey) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return pkcs8(t, k), k
}

// EC is a fresh EC key on curve as SEC 1 PEM ("EC PRIVATE KEY"), with the key.
func EC(t testing.TB, curve elliptic.Curve) (string, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})), k
}

// ECPKCS8 is a fresh P-256 key as PKCS #8 PEM, with the key.
func ECPKCS8(t testing.TB) (string, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pkcs8(t, k), k
}

func pkcs8(t testing.TB, k crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// ClientCert is a self-signed TLS client certificate and its key, as PEM.
func ClientCert(t testing.TB) (certPEM, keyPEM string) {
	t.Helper()
	keyPEM, k := ECPKCS8(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "test client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	return selfSigned(t, tmpl, k), keyPEM
}

// UnrelatedCA is a fresh self-signed CA certificate that signed nothing.
func UnrelatedCA(t testing.TB) string {
	t.Helper()
	_, k := ECPKCS8(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "unrelated test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	return selfSigned(t, tmpl, k)
}

func selfSigned(t testing.TB, tmpl *x509.Certificate, k *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
