package routing

import (
	"net/http"

	"github.com/axon-hs/axon/internal/httputil"
)

// specVersions are the Client-Server API versions whose endpoints that this
// server offers behave as that version says.
var specVersions = []string{"v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12"}

func (rt *Routes) registerVersions(mux *http.ServeMux) {
	mux.HandleFunc("GET /_matrix/client/versions", func(w http.ResponseWriter, r *http.Request) {
		_ = httputil.JSON(w, map[string]any{"versions": specVersions, "unstable_features": map[string]bool{}})
	})
}
