package main

import (
	"crypto/tls"
	"fmt"
	"net/http"

	"github.com/axon-hs/axon/federationapi"
	"github.com/axon-hs/axon/internal/ops"
	"github.com/axon-hs/axon/internal/setup"
	"github.com/axon-hs/axon/internal/tlsutil"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/signing"
)

// serveFederation adds the federation routes to mux and, when a TLS address
// is configured, serves mux over TLS there with a certificate from the
// configured files, minted from the configured CA, or self-signed.
func serveFederation(p *setup.Process, mux *http.ServeMux, key signing.Key) error {
	cfg := p.Cfg
	federationapi.New(federationapi.Deps{ServerName: matrix.ServerName(cfg.ServerName), Key: key}).Routes(mux)
	if cfg.Federation.TLSAddr == "" {
		return nil
	}
	host, _, _ := matrix.ServerName(cfg.ServerName).HostPort()
	var cert tls.Certificate
	var err error
	switch {
	case cfg.Federation.TLSCert != "":
		cert, err = tls.LoadX509KeyPair(cfg.Federation.TLSCert, cfg.Federation.TLSKey)
	case cfg.Federation.CACert != "":
		cert, err = tlsutil.MintFromCAFiles(cfg.Federation.CACert, cfg.Federation.CAKey, []string{host})
	default:
		cert, err = tlsutil.SelfSigned([]string{host})
	}
	if err != nil {
		return fmt.Errorf("federation certificate: %w", err)
	}
	s, err := ops.ListenTLS(cfg.Federation.TLSAddr, p.Handler(mux, false), p.Log, "federation", func(srv *http.Server) {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	})
	if err != nil {
		return err
	}
	p.Stopper.Add("federation listener", s.Shutdown)
	return nil
}
