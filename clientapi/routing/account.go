package routing

import (
	"net/http"
	"strings"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	userapi "github.com/axon-hs/axon/userapi/api"
)

// registerAccount adds the routes that manage an existing account:
// password change, deactivation and token refresh.
func (rt *Routes) registerAccount(mux *http.ServeMux) {
	mux.HandleFunc("POST "+v3+"/account/password", rt.a.H(rt.changePassword))
	mux.HandleFunc("POST "+v3+"/account/deactivate", rt.a.H(rt.deactivate))
	mux.HandleFunc("POST "+v3+"/refresh", rt.a.H(rt.refresh))
}

// passwordFlows is the one user-interactive auth flow of the requests that
// need a user to prove who they are again: their password.
var passwordFlows = []map[string][]string{{"stages": {"m.login.password"}}}

// uiaAuth is the auth dict of a user-interactive auth request; the fields
// beyond type and session are m.login.password's.
type uiaAuth struct {
	Type       string `json:"type"`
	Session    string `json:"session"`
	Password   string `json:"password"`
	Identifier *struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
	User string `json:"user"` // deprecated form of the identifier
}

// passwordChallenge answers 401 with the password flow; err, if set, adds
// errcode and error (a failed attempt).
func passwordChallenge(w http.ResponseWriter, session string, err *apierr.Error) error {
	body := map[string]any{"flows": passwordFlows, "params": map[string]any{}, "session": session}
	if err != nil {
		body["errcode"], body["error"] = err.Code, err.Msg
	}
	httputil.WriteJSON(w, http.StatusUnauthorized, body)
	return nil
}

// authUser resolves the user an m.login.password auth dict names, as a user
// id of this server; "" if it names none.
func (rt *Routes) authUser(a *uiaAuth) string {
	user := a.User
	if a.Identifier != nil {
		if a.Identifier.Type != "m.id.user" {
			return ""
		}
		user = a.Identifier.User
	}
	if user == "" {
		return ""
	}
	if !strings.HasPrefix(user, "@") {
		return string(matrix.NewUserID(strings.ToLower(user), rt.cfg.ServerName))
	}
	uid, err := matrix.ParseUserID(user)
	if err != nil || uid.Server() != rt.cfg.ServerName {
		return ""
	}
	return string(uid)
}

// requirePassword runs user-interactive auth with m.login.password. userID
// is the user the request acts for ("" when the request has no access
// token: then the auth dict names the user). purpose binds the session to
// the request kind. It returns the authenticated user id, or "" after it
// has answered the 401 itself.
func (rt *Routes) requirePassword(w http.ResponseWriter, r *http.Request, userID string, auth *uiaAuth, purpose string) (string, error) {
	ctx := r.Context()
	if auth == nil || auth.Type == "" {
		s, err := rt.users.StartUIA(ctx, userapi.StartUIARequest{Purpose: purpose})
		if err != nil {
			return "", err
		}
		return "", passwordChallenge(w, s.Session, nil)
	}
	if auth.Session == "" {
		s, err := rt.users.StartUIA(ctx, userapi.StartUIARequest{Purpose: purpose})
		if err != nil {
			return "", err
		}
		auth.Session = s.Session
	}
	if auth.Type != "m.login.password" {
		return "", passwordChallenge(w, auth.Session, apierr.Forbidden("unsupported auth type %q", auth.Type))
	}
	who := rt.authUser(auth)
	if who == "" || (userID != "" && who != userID) {
		return "", passwordChallenge(w, auth.Session, apierr.Forbidden("invalid username or password"))
	}
	uid, _ := matrix.ParseUserID(who)
	if _, err := rt.users.CheckPassword(ctx, userapi.CheckPasswordRequest{Localpart: uid.Localpart(), Password: auth.Password}); err != nil {
		if e, ok := apierr.As(err); ok {
			return "", passwordChallenge(w, auth.Session, e)
		}
		return "", err
	}
	if _, err := rt.users.CompleteUIAStage(ctx, userapi.CompleteUIAStageRequest{
		Session: auth.Session, Purpose: purpose, Stage: "m.login.password"}); err != nil {
		return "", err
	}
	return who, nil
}

// optionalDevice is the request's device when it carries an access token;
// the zero Device when it carries none. An invalid token is an error.
func (rt *Routes) optionalDevice(r *http.Request) (userapi.Device, error) {
	if _, err := httputil.AccessToken(r); err != nil {
		if e, ok := apierr.As(err); ok && e.Code == apierr.CodeMissingToken {
			return userapi.Device{}, nil
		}
		return userapi.Device{}, err
	}
	return rt.device(r.Context(), r)
}

type changePasswordRequest struct {
	Auth          *uiaAuth `json:"auth"`
	NewPassword   *string  `json:"new_password"`
	LogoutDevices *bool    `json:"logout_devices"`
}

// changePassword is POST /account/password. The access token is optional
// in the spec; without one the password auth names the user.
func (rt *Routes) changePassword(w http.ResponseWriter, r *http.Request) error {
	dev, err := rt.optionalDevice(r)
	if err != nil {
		return err
	}
	var req changePasswordRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.NewPassword == nil || *req.NewPassword == "" {
		return apierr.New(apierr.CodeMissingParam, "new_password is required")
	}
	if dev.AccountType == userapi.AccountGuest {
		return apierr.New(apierr.CodeGuestAccessForbided, "guests cannot change a password")
	}
	user, err := rt.requirePassword(w, r, dev.UserID, req.Auth, "password:"+dev.UserID)
	if user == "" || err != nil {
		return err
	}
	logout := req.LogoutDevices == nil || *req.LogoutDevices
	if _, err := rt.users.ChangePassword(r.Context(), userapi.ChangePasswordRequest{
		UserID: user, NewPassword: *req.NewPassword, LogoutDevices: logout, KeepDeviceID: dev.DeviceID}); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

type deactivateRequest struct {
	Auth     *uiaAuth `json:"auth"`
	Erase    bool     `json:"erase"`
	IDServer string   `json:"id_server"`
}

// deactivate is POST /account/deactivate. No third-party identifiers are
// ever bound here, so there is nothing to unbind: "no-support".
func (rt *Routes) deactivate(w http.ResponseWriter, r *http.Request) error {
	dev, err := rt.optionalDevice(r)
	if err != nil {
		return err
	}
	var req deactivateRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	user, err := rt.requirePassword(w, r, dev.UserID, req.Auth, "deactivate:"+dev.UserID)
	if user == "" || err != nil {
		return err
	}
	if _, err := rt.users.DeactivateAccount(r.Context(), userapi.DeactivateAccountRequest{UserID: user}); err != nil {
		return err
	}
	return httputil.JSON(w, map[string]string{"id_server_unbind_result": "no-support"})
}

type refreshRequest struct {
	RefreshToken *string `json:"refresh_token"`
}

// refresh is POST /refresh: no access token, the refresh token is the credential.
func (rt *Routes) refresh(w http.ResponseWriter, r *http.Request) error {
	var req refreshRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.RefreshToken == nil {
		return apierr.New(apierr.CodeMissingParam, "refresh_token is required")
	}
	res, err := rt.users.RefreshAccessToken(r.Context(), userapi.RefreshAccessTokenRequest{RefreshToken: *req.RefreshToken})
	if err != nil {
		return err
	}
	return httputil.JSON(w, res)
}

// registerAccountArea adds the routes of accounts, devices, profiles,
// account data, filters, capabilities and third-party identifiers.
func (rt *Routes) registerAccountArea(mux *http.ServeMux) {
	rt.registerAccount(mux)
	rt.registerDevices(mux)
	rt.registerProfile(mux)
	rt.registerAccountData(mux)
	rt.registerFilters(mux)
	rt.registerCapabilities(mux)
	rt.registerThreepid(mux)
}
