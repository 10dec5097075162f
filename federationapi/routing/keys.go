// Package routing serves the federationapi's external endpoints.
package routing

import (
	"net/http"
	"sync"
	"time"

	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/signing"
)

// keyValidity is how long other servers may cache our key response; the spec
// suggests keeping it short so key rotation propagates.
const keyValidity = 7 * 24 * time.Hour

// Keys serves GET /_matrix/key/v2/server: this server's verify keys,
// self-signed (server-server API, "Publishing Keys").
type Keys struct {
	ServerName matrix.ServerName
	Key        signing.Key

	mu      sync.Mutex
	cached  []byte
	expires time.Time
}

// Register adds the key and version endpoints to mux.
func (k *Keys) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /_matrix/key/v2/server", k.serve)
	mux.HandleFunc("GET /_matrix/federation/v1/version", func(w http.ResponseWriter, r *http.Request) {
		httputil.WriteJSON(w, http.StatusOK, map[string]any{"server": map[string]string{"name": "Axon", "version": "0.1.0"}})
	})
}

func (k *Keys) serve(w http.ResponseWriter, r *http.Request) {
	body, err := k.response(time.Now())
	if err != nil {
		httputil.Adapter{}.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// response signs the key document, re-signing when half its validity has passed.
func (k *Keys) response(now time.Time) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cached != nil && now.Before(k.expires) {
		return k.cached, nil
	}
	body, err := signing.SignServerKeys(k.ServerName, k.Key, now.Add(keyValidity).UnixMilli(), nil)
	if err != nil {
		return nil, err
	}
	k.cached, k.expires = body, now.Add(keyValidity/2)
	return body, nil
}
