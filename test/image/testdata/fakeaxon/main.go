// Command fakeaxon stands in for cmd/axon in the image test: it meets the
// container contract that the real server has to meet (Dockerfile and
// scripts/build-image, SERVER_NAME, the CA in /complement/ca, plain HTTP on
// 8008, HTTPS federation on 8448, shared-secret registration, state under
// the working directory, a clean exit on SIGTERM, `healthcheck`) with as
// little Matrix as the test touches. Testing the image with it tells a
// broken image apart from a server that is not finished yet.
//
// It lives under testdata so that `go build ./...` and `go vet ./...` leave
// it alone; scripts/build-image builds it when AXON_BUILD_PKG names it.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/axon-hs/axon/internal/tlsutil"
)

const (
	caCert       = "/complement/ca/ca.crt"
	caKey        = "/complement/ca/ca.key"
	sharedSecret = "complement"
	usersFile    = "users.json" // relative: the image's WORKDIR
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck())
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("fakeaxon failed", "err", err)
		os.Exit(1)
	}
}

func healthcheck() int {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get("http://127.0.0.1:8008/_matrix/client/versions")
	if err != nil {
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}

func run(log *slog.Logger) error {
	if os.Getenv("AXON_COMPLEMENT") != "1" {
		return errors.New("AXON_COMPLEMENT is not 1")
	}
	name := os.Getenv("SERVER_NAME")
	if name == "" {
		return errors.New("SERVER_NAME is empty")
	}
	cert, err := tlsutil.MintFromCAFiles(caCert, caKey, []string{name})
	if err != nil {
		return err
	}
	// The image sets SSL_CERT_FILE to the CA so that outbound federation
	// trusts it; check that it took effect in a scratch image.
	pool, err := tlsutil.CertPool()
	if err != nil {
		return err
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
		return fmt.Errorf("system roots do not trust the Complement CA: %w", err)
	}

	s := &server{name: name}
	client := http.NewServeMux()
	client.HandleFunc("GET /_matrix/client/versions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"versions": []string{"v1.11"}})
	})
	client.HandleFunc("GET /_synapse/admin/v1/register", s.nonce)
	client.HandleFunc("POST /_synapse/admin/v1/register", s.register)
	client.HandleFunc("POST /_matrix/client/v3/login", s.login)
	fed := http.NewServeMux()
	fed.HandleFunc("GET /_matrix/key/v2/server", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{
			"server_name":    name,
			"valid_until_ts": time.Now().Add(time.Hour).UnixMilli(),
			"verify_keys":    map[string]any{"ed25519:fake": map[string]string{"key": "AAAA"}},
		})
	})
	servers := []*http.Server{
		{Addr: ":8008", Handler: client},
		{Addr: ":8448", Handler: fed, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}},
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errs := make(chan error, len(servers))
	go func() { errs <- servers[0].ListenAndServe() }()
	go func() { errs <- servers[1].ListenAndServeTLS("", "") }()
	log.Info("fakeaxon serving", "server_name", name)
	select {
	case err := <-errs:
		return err
	case <-ctx.Done():
	}
	log.Info("fakeaxon stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			return err
		}
	}
	return nil
}

type server struct {
	name   string
	mu     sync.Mutex
	nonces map[string]bool
}

func (s *server) nonce(w http.ResponseWriter, r *http.Request) {
	n := rand.Text()
	s.mu.Lock()
	if s.nonces == nil {
		s.nonces = map[string]bool{}
	}
	s.nonces[n] = true
	s.mu.Unlock()
	writeJSON(w, 200, map[string]string{"nonce": n})
}

func (s *server) register(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Nonce, Username, Password, MAC string
		Admin                          bool
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, 400, map[string]string{"errcode": "M_NOT_JSON"})
		return
	}
	role := "notadmin"
	if req.Admin {
		role = "admin"
	}
	m := hmac.New(sha1.New, []byte(sharedSecret))
	m.Write([]byte(req.Nonce + "\x00" + req.Username + "\x00" + req.Password + "\x00" + role))
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.nonces[req.Nonce] || !hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), []byte(req.MAC)) {
		writeJSON(w, 403, map[string]string{"errcode": "M_FORBIDDEN"})
		return
	}
	delete(s.nonces, req.Nonce)
	users := map[string]string{}
	if data, err := os.ReadFile(usersFile); err == nil {
		json.Unmarshal(data, &users)
	}
	users[req.Username] = req.Password
	data, _ := json.Marshal(users)
	if err := os.WriteFile(usersFile, data, 0o600); err != nil {
		writeJSON(w, 500, map[string]string{"errcode": "M_UNKNOWN", "error": err.Error()})
		return
	}
	writeJSON(w, 200, map[string]string{"user_id": "@" + req.Username + ":" + s.name, "access_token": rand.Text()})
}

func (s *server) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Type       string
		Identifier struct{ Type, User string }
		Password   string
	}
	json.NewDecoder(r.Body).Decode(&req)
	users := map[string]string{}
	if data, err := os.ReadFile(usersFile); err == nil {
		json.Unmarshal(data, &users)
	}
	pw, ok := users[req.Identifier.User]
	if req.Type != "m.login.password" || !ok || pw != req.Password {
		writeJSON(w, 403, map[string]string{"errcode": "M_FORBIDDEN"})
		return
	}
	writeJSON(w, 200, map[string]string{"user_id": "@" + req.Identifier.User + ":" + s.name, "access_token": rand.Text(), "device_id": "FAKE"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
