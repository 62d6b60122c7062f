// Package link is Canopy's control link: a mutually authenticated TLS 1.3
// connection between two nodes that carries wire envelopes as frames. Each side
// proves its Ed25519 key in the handshake, and the dialler checks that the key
// belongs to the node ID it meant to reach.
package link

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/canopy-p2p/canopy/identity"
)

// ALPN is the protocol name both sides must agree on.
const ALPN = "canopy/1"

// certificate makes a self-signed certificate for the node's key. Nothing in it
// but the key matters: peers identify each other by the node ID derived from it.
func certificate(id *identity.Identity) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id.ID.String()},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(20 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, id.Public, id.Private)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("link: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: id.Private}, nil
}

// peerKey extracts and checks the peer's Ed25519 key from its certificate chain.
// The TLS 1.3 handshake has already proved that the peer holds the private key
// (CertificateVerify); this checks the certificate is well formed and self-signed.
func peerKey(rawCerts [][]byte) (ed25519.PublicKey, error) {
	if len(rawCerts) != 1 {
		return nil, fmt.Errorf("%w: want 1 certificate, got %d", ErrAuth, len(rawCerts))
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAuth, err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: key is %T, not Ed25519", ErrAuth, cert.PublicKey)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return nil, fmt.Errorf("%w: certificate is not self-signed by its key: %v", ErrAuth, err)
	}
	return pub, nil
}

// verifier returns a VerifyPeerCertificate function; with a non-zero want it
// also requires the peer's node ID to equal want.
func verifier(want identity.NodeID) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		pub, err := peerKey(raw)
		if err != nil {
			return err
		}
		if got := identity.IDFromPublicKey(pub); !want.IsZero() && got != want {
			return fmt.Errorf("%w: peer is %s, expected %s", ErrWrongPeer, got.Short(), want.Short())
		}
		return nil
	}
}

// Credentials holds a node's TLS certificate; make one per node and share it
// between its listener and dialers.
type Credentials struct {
	id   *identity.Identity
	cert tls.Certificate
}

// NewCredentials makes the certificate for id.
func NewCredentials(id *identity.Identity) (*Credentials, error) {
	c, err := certificate(id)
	if err != nil {
		return nil, err
	}
	return &Credentials{id: id, cert: c}, nil
}

// ID returns the node's identity.
func (c *Credentials) ID() *identity.Identity { return c.id }

// ServerConfig is the TLS configuration for accepting links: any peer may
// connect, but it must present a valid Ed25519 self-signed certificate.
func (c *Credentials) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{c.cert},
		ClientAuth:            tls.RequireAnyClientCert,
		VerifyPeerCertificate: verifier(identity.NodeID{}),
		NextProtos:            []string{ALPN},
	}
}

// ClientConfig is the TLS configuration for dialling the node want (zero: any
// node, as when dialling a seed address whose ID is not known yet).
func (c *Credentials) ClientConfig(want identity.NodeID) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.cert},
		// Standard chain verification does not apply to self-signed node keys;
		// verifier does the check that matters: key → node ID.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: verifier(want),
		NextProtos:            []string{ALPN},
	}
}

// PeerID returns the authenticated node ID of a completed TLS connection.
func PeerID(cs tls.ConnectionState) (identity.NodeID, error) {
	if len(cs.PeerCertificates) == 0 {
		return identity.NodeID{}, fmt.Errorf("%w: no peer certificate", ErrAuth)
	}
	pub, ok := cs.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
	if !ok {
		return identity.NodeID{}, fmt.Errorf("%w: peer key is not Ed25519", ErrAuth)
	}
	return identity.IDFromPublicKey(pub), nil
}

var (
	// ErrAuth is returned when a peer's certificate is unacceptable.
	ErrAuth = errors.New("link: peer authentication failed")
	// ErrWrongPeer is returned when the peer is not the node that was expected.
	ErrWrongPeer = errors.New("link: unexpected peer")
	// ErrQueueFull is returned by Send when the link's send queue is full.
	ErrQueueFull = errors.New("link: send queue full")
	// ErrClosed is returned on a closed link.
	ErrClosed = errors.New("link: closed")
)
