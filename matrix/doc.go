// Package matrix is Axon's protocol library: pure functions about the Matrix
// protocol itself, importing nothing from the server.
//
// This package holds the identifier types (server names, user IDs, room IDs,
// event IDs and room aliases) defined in the spec's appendix "Identifier
// Grammar". Its subpackages hold the rest of the protocol core:
//
//   - canonicaljson: the canonical JSON encoding ("Signing JSON").
//   - signing: ed25519 server keys and JSON signatures.
//   - event: PDUs, room versions, hashes, redaction and event building.
//   - authrules: the authorization rules of every room version.
//   - stateres: state resolution v1, v2 and v2.1.
//   - xmatrix: the X-Matrix Authorization header of federation requests.
//   - resolve: server name resolution (well-known, SRV, port 8448).
//
// Every parser here returns an error for malformed input and never panics:
// identifiers arrive from the network.
package matrix
