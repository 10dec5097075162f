// Package image tests the Axon container image the way the Complement
// harness uses it: built by scripts/build-image, created with SERVER_NAME,
// given a CA with `docker cp`, started, probed on the client port (8008) and
// the federation port (8448, TLS signed by that CA), stopped with a 10 s
// grace period and started again with its state intact.
//
// The tests drive the docker CLI and skip only when no Docker engine
// answers `docker version`. TestImage builds the real server; TestImageStandIn
// builds a stand-in (testdata/fakeaxon) that meets the same contract, so a
// broken image shows up even while the server is unfinished.
package image
