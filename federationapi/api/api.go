// Package api is the contract of the federationapi. So far the component
// only publishes this server's signing keys; its internal API (outbound
// queues, joins over federation) arrives with the federation issue.
package api

// API is the federationapi internal API (empty so far).
type API interface{}
