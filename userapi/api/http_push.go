package api

import "github.com/axon-hs/axon/internal/rpc"

// servePush serves the PushAPI methods (one line per method).
func servePush(s *rpc.Server, impl PushAPI) {}
