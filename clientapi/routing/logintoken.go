package routing

import (
	"net/http"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// getLoginTokenRequest is the body of POST /login/get_token.
type getLoginTokenRequest struct {
	Auth *uiaAuth `json:"auth"`
}

// getLoginToken is POST /_matrix/client/v1/login/get_token: after the user
// proves their password again (every time: the spec forbids skipping the
// prompt for a recent session), a single-use m.login.token valid for 2
// minutes. Off by configuration it is the spec's 400 for a user without
// the ability, which m.get_login_token tells clients beforehand.
func (rt *Routes) getLoginToken(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	if !rt.cfg.LoginTokens {
		return apierr.WithStatus(http.StatusBadRequest, apierr.CodeForbidden, "login tokens are not enabled on this server")
	}
	var req getLoginTokenRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	user, err := rt.requirePassword(w, r, dev.UserID, req.Auth, "get_token:"+dev.UserID)
	if user == "" || err != nil {
		return err
	}
	res, err := rt.users.CreateLoginToken(r.Context(), userapi.CreateLoginTokenRequest{UserID: dev.UserID})
	if err != nil {
		return err
	}
	return httputil.JSON(w, map[string]any{"login_token": res.Token, "expires_in_ms": res.ExpiresInMS})
}
