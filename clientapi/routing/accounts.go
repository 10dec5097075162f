package routing

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/internal/config"
	"github.com/axon-hs/axon/internal/httputil"
	"github.com/axon-hs/axon/matrix"
	userapi "github.com/axon-hs/axon/userapi/api"
)

func (rt *Routes) registerAccounts(mux *http.ServeMux) {
	mux.HandleFunc("POST "+v3+"/register", rt.a.H(rt.register))
	mux.HandleFunc("GET "+v3+"/register/available", rt.a.H(rt.registerAvailable))
	mux.HandleFunc("GET /_matrix/client/v1/register/m.login.registration_token/validity", rt.a.H(rt.registrationTokenValidity))
	mux.HandleFunc("GET /_synapse/admin/v1/register", rt.a.H(rt.adminNonce))
	mux.HandleFunc("POST /_synapse/admin/v1/register", rt.a.H(rt.adminRegister))
	mux.HandleFunc("GET "+v3+"/login", rt.a.H(rt.loginFlows))
	mux.HandleFunc("POST "+v3+"/login", rt.a.H(rt.login))
	mux.HandleFunc("GET "+v3+"/account/whoami", rt.authed(rt.whoami))
	mux.HandleFunc("POST "+v3+"/logout", rt.authed(rt.logout))
	mux.HandleFunc("POST "+v3+"/logout/all", rt.authed(rt.logoutAll))
	mux.HandleFunc("POST /_matrix/client/v1/login/get_token", rt.authed(rt.getLoginToken))
}

// uiaPurposeRegister binds user-interactive auth sessions to registration.
const uiaPurposeRegister = "register"

// Registration UIA stages.
const (
	stageDummy             = "m.login.dummy"
	stageRegistrationToken = "m.login.registration_token"
)

// registrationStage is the one stage of /register's one flow: a
// registration token when tokens are required, m.login.dummy otherwise.
func (rt *Routes) registrationStage() string {
	if rt.cfg.RequireRegistrationToken {
		return stageRegistrationToken
	}
	return stageDummy
}

type authDict struct {
	Type    string `json:"type"`
	Session string `json:"session"`
	// Token is m.login.registration_token's.
	Token string `json:"token"`
}

type registerRequest struct {
	Auth                     *authDict `json:"auth"`
	Username                 string    `json:"username"`
	Password                 string    `json:"password"`
	DeviceID                 string    `json:"device_id"`
	InitialDeviceDisplayName string    `json:"initial_device_display_name"`
	InhibitLogin             bool      `json:"inhibit_login"`
	RefreshToken             bool      `json:"refresh_token"`
	// GuestAccessToken upgrades the guest it belongs to (guests.go).
	GuestAccessToken string `json:"guest_access_token"`
}

// register is POST /register: user-interactive auth with m.login.dummy, or
// m.login.registration_token when tokens are required.
func (rt *Routes) register(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	switch kind := r.URL.Query().Get("kind"); kind {
	case "", "user":
	case "guest":
		return rt.registerGuest(w, r)
	default:
		return apierr.InvalidParam("unknown kind %q", kind)
	}
	var req registerRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	if !rt.cfg.OpenRegistration && !rt.cfg.RequireRegistrationToken {
		return apierr.Forbidden("registration is disabled on this server")
	}
	localpart := strings.TrimPrefix(req.Username, "@")
	if i := strings.IndexByte(localpart, ':'); i >= 0 && req.Username[0] == '@' {
		if matrix.ServerName(localpart[i+1:]) != rt.cfg.ServerName {
			return apierr.New(apierr.CodeInvalidUsername, "user id is not on this server")
		}
		localpart = localpart[:i]
	}
	var guestID string
	switch {
	case req.GuestAccessToken != "":
		// The localpart is the guest's own, taken by the guest itself.
		var err error
		if guestID, err = rt.upgradableGuest(ctx, req.GuestAccessToken, req.Username, localpart); err != nil {
			return err
		}
	case req.Username == "":
		localpart = randomLocalpart()
		fallthrough
	default:
		if err := rt.checkUsername(r, localpart); err != nil {
			return err
		}
	}

	// User-interactive auth: without a completed stage, answer 401 with the flows.
	stage := rt.registrationStage()
	if req.Auth == nil || req.Auth.Type == "" {
		s, err := rt.users.StartUIA(ctx, userapi.StartUIARequest{Purpose: uiaPurposeRegister})
		if err != nil {
			return err
		}
		return rt.uiaChallenge(w, s.Session, nil, nil)
	}
	if req.Auth.Type != stage {
		return rt.uiaChallenge(w, req.Auth.Session, nil, apierr.Forbidden("unsupported auth type %q", req.Auth.Type))
	}
	if req.Auth.Session == "" {
		s, err := rt.users.StartUIA(ctx, userapi.StartUIARequest{Purpose: uiaPurposeRegister})
		if err != nil {
			return err
		}
		req.Auth.Session = s.Session
	}
	var usedToken string
	if stage == stageRegistrationToken {
		// The stage and the registration complete in one request (the flow
		// has no other stage), so the use is counted here and given back if
		// the account cannot be created: only completed registrations count.
		tok, ok := rt.registrationToken(req.Auth.Token)
		if !ok {
			return rt.uiaChallenge(w, req.Auth.Session, nil, apierr.Forbidden("invalid registration token"))
		}
		use, err := rt.users.UseRegistrationToken(ctx, userapi.UseRegistrationTokenRequest{Token: tok.Token, UsesAllowed: tok.UsesAllowed})
		if err != nil {
			return err
		}
		if !use.OK {
			return rt.uiaChallenge(w, req.Auth.Session, nil, apierr.Forbidden("invalid registration token"))
		}
		usedToken = tok.Token
	}
	acc, err := rt.completeRegistration(ctx, req.Auth.Session, stage, localpart, req.Password, guestID)
	if err != nil {
		if usedToken != "" {
			if _, rerr := rt.users.UseRegistrationToken(context.WithoutCancel(ctx), userapi.UseRegistrationTokenRequest{Token: usedToken, Release: true}); rerr != nil {
				rt.log.WarnContext(ctx, "registration token use not given back", "err", rerr)
			}
		}
		return err
	}
	return rt.registered(w, r, acc.UserID, req)
}

// completeRegistration records the stage and creates the account, or
// upgrades the guest guestID when set.
func (rt *Routes) completeRegistration(ctx context.Context, session, stage, localpart, password, guestID string) (userapi.CreateAccountResponse, error) {
	if _, err := rt.users.CompleteUIAStage(ctx, userapi.CompleteUIAStageRequest{
		Session: session, Purpose: uiaPurposeRegister, Stage: stage}); err != nil {
		return userapi.CreateAccountResponse{}, err
	}
	if guestID != "" {
		if _, err := rt.users.UpgradeGuest(ctx, userapi.UpgradeGuestRequest{UserID: guestID, Password: password}); err != nil {
			return userapi.CreateAccountResponse{}, err
		}
		return userapi.CreateAccountResponse{UserID: guestID}, nil
	}
	return rt.users.CreateAccount(ctx, userapi.CreateAccountRequest{Localpart: localpart, Password: password})
}

// registered answers a successful registration, logging the new account in
// unless inhibit_login.
func (rt *Routes) registered(w http.ResponseWriter, r *http.Request, userID string, req registerRequest) error {
	resp := map[string]any{"user_id": userID, "home_server": string(rt.cfg.ServerName)}
	if !req.InhibitLogin {
		dev, err := rt.users.CreateDevice(r.Context(), userapi.CreateDeviceRequest{
			UserID: userID, DeviceID: req.DeviceID, DisplayName: req.InitialDeviceDisplayName, IP: clientIP(r),
			RefreshToken: req.RefreshToken})
		if err != nil {
			return err
		}
		resp["access_token"], resp["device_id"] = dev.AccessToken, dev.DeviceID
		if dev.RefreshToken != "" {
			resp["refresh_token"], resp["expires_in_ms"] = dev.RefreshToken, dev.ExpiresInMS
		}
	}
	return httputil.JSON(w, resp)
}

// registrationToken is the configured token s if it exists and has not
// expired (its uses are counted by the userapi).
func (rt *Routes) registrationToken(s string) (config.RegistrationToken, bool) {
	for _, tok := range rt.cfg.RegistrationTokens {
		if subtle.ConstantTimeCompare([]byte(tok.Token), []byte(s)) == 1 {
			if !tok.ExpiresAt.IsZero() && !rt.now().Before(tok.ExpiresAt) {
				return tok, false
			}
			return tok, true
		}
	}
	return config.RegistrationToken{}, false
}

// registrationTokenValidity is GET /_matrix/client/v1/register/
// m.login.registration_token/validity. 403 when tokens are not in use: the
// spec's "does not permit registration and thus all tokens are invalid".
// A token outside the spec's grammar is 400 M_INVALID_PARAM.
func (rt *Routes) registrationTokenValidity(w http.ResponseWriter, r *http.Request) error {
	if !rt.cfg.RequireRegistrationToken {
		return apierr.Forbidden("registration tokens are not in use on this server")
	}
	q := r.URL.Query()
	if !q.Has("token") {
		return apierr.New(apierr.CodeMissingParam, "missing token")
	}
	s := q.Get("token")
	if !config.ValidRegistrationToken(s) {
		return apierr.InvalidParam("a registration token is 1-64 characters of A-Z a-z 0-9 . _ ~ -")
	}
	tok, ok := rt.registrationToken(s)
	if ok && tok.UsesAllowed > 0 {
		res, err := rt.users.QueryRegistrationToken(r.Context(), userapi.QueryRegistrationTokenRequest{Token: tok.Token})
		if err != nil {
			return err
		}
		ok = res.Completed < tok.UsesAllowed
	}
	return httputil.JSON(w, map[string]bool{"valid": ok})
}

// uiaChallenge answers 401 with the flows, as the spec's user-interactive
// authentication API describes; err, if set, adds errcode and error.
func (rt *Routes) uiaChallenge(w http.ResponseWriter, session string, completed []string, err *apierr.Error) error {
	flows := []map[string][]string{{"stages": {rt.registrationStage()}}}
	body := map[string]any{"flows": flows, "params": map[string]any{}, "session": session}
	if len(completed) > 0 {
		body["completed"] = completed
	}
	if err != nil {
		body["errcode"], body["error"] = err.Code, err.Msg
	}
	httputil.WriteJSON(w, http.StatusUnauthorized, body)
	return nil
}

// checkUsername validates a localpart for a new account and that it is free.
func (rt *Routes) checkUsername(r *http.Request, localpart string) error {
	if err := matrix.ValidateLocalpart(localpart); err != nil {
		return apierr.New(apierr.CodeInvalidUsername, "invalid username: %v", err)
	}
	if len(matrix.NewUserID(localpart, rt.cfg.ServerName)) > 255 {
		return apierr.New(apierr.CodeInvalidUsername, "username is too long")
	}
	res, err := rt.users.AccountAvailable(r.Context(), userapi.AccountAvailableRequest{Localpart: localpart})
	if err != nil {
		return err
	}
	if !res.Available {
		return apierr.New(apierr.CodeUserInUse, "the username is taken")
	}
	return nil
}

// registerAvailable is GET /register/available.
func (rt *Routes) registerAvailable(w http.ResponseWriter, r *http.Request) error {
	username := r.URL.Query().Get("username")
	if username == "" {
		return apierr.New(apierr.CodeMissingParam, "missing username")
	}
	if err := rt.checkUsername(r, username); err != nil {
		return err
	}
	return httputil.JSON(w, map[string]bool{"available": true})
}

// adminNonce is GET /_synapse/admin/v1/register: a nonce for shared-secret
// registration (Synapse's admin API, which tools and Complement use).
func (rt *Routes) adminNonce(w http.ResponseWriter, r *http.Request) error {
	if rt.cfg.SharedSecret == "" {
		return apierr.WithStatus(http.StatusBadRequest, apierr.CodeUnknown, "shared secret registration is not enabled")
	}
	res, err := rt.users.NewRegistrationNonce(r.Context(), userapi.NewRegistrationNonceRequest{})
	if err != nil {
		return err
	}
	return httputil.JSON(w, map[string]string{"nonce": res.Nonce})
}

type adminRegisterRequest struct {
	Nonce       string `json:"nonce"`
	Username    string `json:"username"`
	DisplayName string `json:"displayname"`
	Password    string `json:"password"`
	Admin       bool   `json:"admin"`
	UserType    string `json:"user_type"`
	MAC         string `json:"mac"`
}

// adminRegister is POST /_synapse/admin/v1/register: the mac is the hex
// HMAC-SHA1, keyed with the shared secret, of nonce, username, password,
// "admin" or "notadmin" and, if given, user_type, separated by NUL bytes.
func (rt *Routes) adminRegister(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if rt.cfg.SharedSecret == "" {
		return apierr.WithStatus(http.StatusBadRequest, apierr.CodeUnknown, "shared secret registration is not enabled")
	}
	var req adminRegisterRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Nonce == "" || req.Username == "" || req.MAC == "" {
		return apierr.New(apierr.CodeMissingParam, "nonce, username and mac are required")
	}
	got, err := hex.DecodeString(req.MAC)
	if err != nil {
		return apierr.Forbidden("HMAC incorrect")
	}
	mac := hmac.New(sha1.New, []byte(rt.cfg.SharedSecret))
	mac.Write([]byte(req.Nonce + "\x00" + req.Username + "\x00" + req.Password + "\x00"))
	if req.Admin {
		mac.Write([]byte("admin"))
	} else {
		mac.Write([]byte("notadmin"))
	}
	if req.UserType != "" {
		mac.Write([]byte("\x00" + req.UserType))
	}
	if !hmac.Equal(got, mac.Sum(nil)) {
		return apierr.Forbidden("HMAC incorrect")
	}
	n, err := rt.users.ConsumeRegistrationNonce(ctx, userapi.ConsumeRegistrationNonceRequest{Nonce: req.Nonce})
	if err != nil {
		return err
	}
	if !n.Valid {
		return apierr.WithStatus(http.StatusBadRequest, apierr.CodeUnknown, "unrecognised nonce")
	}
	localpart := strings.ToLower(strings.TrimSpace(req.Username))
	if err := rt.checkUsername(r, localpart); err != nil {
		return err
	}
	acc, err := rt.users.CreateAccount(ctx, userapi.CreateAccountRequest{
		Localpart: localpart, Password: req.Password, DisplayName: req.DisplayName, Admin: req.Admin})
	if err != nil {
		return err
	}
	dev, err := rt.users.CreateDevice(ctx, userapi.CreateDeviceRequest{UserID: acc.UserID, IP: clientIP(r)})
	if err != nil {
		return err
	}
	return httputil.JSON(w, map[string]string{
		"user_id": acc.UserID, "access_token": dev.AccessToken, "device_id": dev.DeviceID, "home_server": string(rt.cfg.ServerName)})
}

// loginFlows is GET /login: m.login.password, and m.login.token (with
// get_login_token: signed-in clients can issue them) when enabled.
func (rt *Routes) loginFlows(w http.ResponseWriter, r *http.Request) error {
	flows := []map[string]any{{"type": "m.login.password"}}
	if rt.cfg.LoginTokens {
		flows = append(flows, map[string]any{"type": "m.login.token", "get_login_token": true})
	}
	return httputil.JSON(w, map[string]any{"flows": flows})
}

type loginRequest struct {
	Type       string `json:"type"`
	Identifier *struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
	User                     string `json:"user"` // deprecated form
	Password                 string `json:"password"`
	Token                    string `json:"token"` // m.login.token
	DeviceID                 string `json:"device_id"`
	InitialDeviceDisplayName string `json:"initial_device_display_name"`
	RefreshToken             bool   `json:"refresh_token"`
}

// login is POST /login with m.login.password or, when enabled, m.login.token.
func (rt *Routes) login(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req loginRequest
	if err := httputil.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Type == "m.login.token" && rt.cfg.LoginTokens {
		if req.Token == "" {
			return apierr.New(apierr.CodeMissingParam, "missing token")
		}
		res, err := rt.users.ConsumeLoginToken(ctx, userapi.ConsumeLoginTokenRequest{Token: req.Token})
		if err != nil {
			return err
		}
		return rt.loggedIn(w, r, res.UserID, req)
	}
	if req.Type != "m.login.password" {
		return apierr.New(apierr.CodeUnknown, "login type %q is not supported", req.Type)
	}
	user := req.User
	if req.Identifier != nil {
		if req.Identifier.Type != "m.id.user" {
			return apierr.New(apierr.CodeUnknown, "identifier type %q is not supported", req.Identifier.Type)
		}
		user = req.Identifier.User
	}
	if user == "" {
		return apierr.BadJSON("missing user identifier")
	}
	localpart := user
	if strings.HasPrefix(user, "@") {
		uid, err := matrix.ParseUserID(user)
		if err != nil {
			return apierr.InvalidParam("invalid user id: %v", err)
		}
		if uid.Server() != rt.cfg.ServerName {
			return apierr.Forbidden("invalid username or password")
		}
		localpart = uid.Localpart()
	}
	localpart = strings.ToLower(localpart)
	res, err := rt.users.CheckPassword(ctx, userapi.CheckPasswordRequest{Localpart: localpart, Password: req.Password})
	if err != nil {
		return err
	}
	return rt.loggedIn(w, r, res.UserID, req)
}

// loggedIn creates the device of a successful login and answers with it.
func (rt *Routes) loggedIn(w http.ResponseWriter, r *http.Request, userID string, req loginRequest) error {
	dev, err := rt.users.CreateDevice(r.Context(), userapi.CreateDeviceRequest{
		UserID: userID, DeviceID: req.DeviceID, DisplayName: req.InitialDeviceDisplayName, IP: clientIP(r),
		RefreshToken: req.RefreshToken})
	if err != nil {
		return err
	}
	resp := map[string]any{
		"user_id": userID, "access_token": dev.AccessToken, "device_id": dev.DeviceID, "home_server": string(rt.cfg.ServerName)}
	if dev.RefreshToken != "" {
		resp["refresh_token"], resp["expires_in_ms"] = dev.RefreshToken, dev.ExpiresInMS
	}
	return httputil.JSON(w, resp)
}

func (rt *Routes) whoami(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	return httputil.JSON(w, map[string]any{"user_id": dev.UserID, "device_id": dev.DeviceID, "is_guest": dev.AccountType == userapi.AccountGuest})
}

func (rt *Routes) logout(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	if _, err := rt.users.DeleteDevices(r.Context(), userapi.DeleteDevicesRequest{UserID: dev.UserID, DeviceIDs: []string{dev.DeviceID}}); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

func (rt *Routes) logoutAll(w http.ResponseWriter, r *http.Request, dev userapi.Device) error {
	if _, err := rt.users.DeleteDevices(r.Context(), userapi.DeleteDevicesRequest{UserID: dev.UserID, All: true}); err != nil {
		return err
	}
	return httputil.JSON(w, struct{}{})
}

func randomLocalpart() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func clientIP(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}
