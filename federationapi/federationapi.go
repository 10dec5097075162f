// Package federationapi is the component serving the Server-Server API. So
// far it publishes the server's signing keys; see README.md.
package federationapi

import (
	"net/http"

	"github.com/axon-hs/axon/federationapi/routing"
	"github.com/axon-hs/axon/matrix"
	"github.com/axon-hs/axon/matrix/signing"
)

// Deps are what the federationapi needs.
type Deps struct {
	ServerName matrix.ServerName
	Key        signing.Key
}

// Component is a federationapi.
type Component struct{ keys *routing.Keys }

// New returns the component.
func New(d Deps) *Component {
	return &Component{keys: &routing.Keys{ServerName: d.ServerName, Key: d.Key}}
}

// Routes registers the federation endpoints on mux.
func (c *Component) Routes(mux *http.ServeMux) { c.keys.Register(mux) }
