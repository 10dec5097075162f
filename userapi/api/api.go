// Package api is the contract of the userapi component: accounts, devices,
// access tokens, profiles and the registration helpers that must be shared
// by every clientapi process (user-interactive auth sessions, shared-secret
// registration nonces).
//
// Every method has the shape Name(ctx, NameRequest) (NameResponse, error).
// Failures a caller acts on are *apierr.Error with a Matrix errcode.
package api

import "context"

// API is the userapi internal API.
type API interface {
	// CreateAccount creates an account with a password (hashed with bcrypt by
	// the implementation; the empty password means login by password is not
	// possible). Localpart must already be validated by the caller against
	// the grammar for new users. M_USER_IN_USE if taken.
	CreateAccount(ctx context.Context, req CreateAccountRequest) (CreateAccountResponse, error)
	// AccountAvailable reports whether a localpart is free.
	AccountAvailable(ctx context.Context, req AccountAvailableRequest) (AccountAvailableResponse, error)
	// CheckPassword verifies a user's password in constant time with respect
	// to the stored hash; M_FORBIDDEN when the account does not exist, is
	// deactivated or the password is wrong (the same error for all three).
	CheckPassword(ctx context.Context, req CheckPasswordRequest) (CheckPasswordResponse, error)
	// CreateDevice creates (or, for an existing DeviceID of the user,
	// replaces the token of) a device and returns a fresh access token. The
	// token is random; only its hash is stored.
	CreateDevice(ctx context.Context, req CreateDeviceRequest) (CreateDeviceResponse, error)
	// QueryAccessToken resolves an access token to its device;
	// M_UNKNOWN_TOKEN when it is not (or no longer) valid.
	QueryAccessToken(ctx context.Context, req QueryAccessTokenRequest) (QueryAccessTokenResponse, error)
	// DeleteDevices removes devices and their tokens (logout). Deleting a
	// device that does not exist is not an error. An empty DeviceIDs list
	// with All=true removes every device of the user.
	DeleteDevices(ctx context.Context, req DeleteDevicesRequest) (DeleteDevicesResponse, error)
	// QueryProfile returns a user's profile; M_NOT_FOUND if no such user.
	QueryProfile(ctx context.Context, req QueryProfileRequest) (QueryProfileResponse, error)
	// StartUIA opens a user-interactive auth session and returns its id.
	StartUIA(ctx context.Context, req StartUIARequest) (StartUIAResponse, error)
	// CompleteUIAStage records a completed stage of a session and returns
	// the stages completed so far; M_UNKNOWN (400) if the session is unknown.
	CompleteUIAStage(ctx context.Context, req CompleteUIAStageRequest) (CompleteUIAStageResponse, error)
	// NewRegistrationNonce issues a single-use nonce for shared-secret registration.
	NewRegistrationNonce(ctx context.Context, req NewRegistrationNonceRequest) (NewRegistrationNonceResponse, error)
	// ConsumeRegistrationNonce uses a nonce up; Valid is false if it was
	// never issued, already used or expired.
	ConsumeRegistrationNonce(ctx context.Context, req ConsumeRegistrationNonceRequest) (ConsumeRegistrationNonceResponse, error)

	// PushAPI is push rules, pushers and notifications (push.go).
	PushAPI
	// AccountAPI is passwords, deactivation, devices, profiles, refresh (account.go).
	AccountAPI
	// AccountDataAPI is account data, room tags and filters (accountdata.go).
	AccountDataAPI
	// TokensAPI is registration token uses and login tokens (tokens.go).
	TokensAPI
}

// Account types.
const (
	AccountUser  = "user"
	AccountGuest = "guest"
)

// Device is an authenticated device: what a valid access token stands for.
type Device struct {
	UserID      string `json:"user_id"`
	DeviceID    string `json:"device_id"`
	DisplayName string `json:"display_name,omitempty"`
	AccountType string `json:"account_type"`
	Admin       bool   `json:"admin,omitempty"`
}

type CreateAccountRequest struct {
	Localpart   string `json:"localpart"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name,omitempty"` // defaults to the localpart
	AccountType string `json:"account_type"`           // AccountUser when empty
	Admin       bool   `json:"admin,omitempty"`
}
type CreateAccountResponse struct {
	UserID string `json:"user_id"`
}

type AccountAvailableRequest struct {
	Localpart string `json:"localpart"`
}
type AccountAvailableResponse struct {
	Available bool `json:"available"`
}

type CheckPasswordRequest struct {
	Localpart string `json:"localpart"`
	Password  string `json:"password"`
}
type CheckPasswordResponse struct {
	UserID string `json:"user_id"`
}

type CreateDeviceRequest struct {
	UserID      string `json:"user_id"`
	DeviceID    string `json:"device_id,omitempty"` // generated when empty
	DisplayName string `json:"display_name,omitempty"`
	IP          string `json:"ip,omitempty"`
	// RefreshToken asks for a refresh token and an access token that
	// expires (the spec's refresh_token: true).
	RefreshToken bool `json:"refresh_token,omitempty"`
}
type CreateDeviceResponse struct {
	DeviceID    string `json:"device_id"`
	AccessToken string `json:"access_token"`
	// RefreshToken and ExpiresInMS are set only when asked for.
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresInMS  int64  `json:"expires_in_ms,omitempty"`
}

type QueryAccessTokenRequest struct {
	AccessToken string `json:"access_token"`
}
type QueryAccessTokenResponse struct {
	Device Device `json:"device"`
}

type DeleteDevicesRequest struct {
	UserID    string   `json:"user_id"`
	DeviceIDs []string `json:"device_ids,omitempty"`
	All       bool     `json:"all,omitempty"`
}
type DeleteDevicesResponse struct{}

type QueryProfileRequest struct {
	UserID string `json:"user_id"`
}
type QueryProfileResponse struct {
	DisplayName string `json:"displayname,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

type StartUIARequest struct {
	// Purpose binds the session to one request kind (e.g. "register").
	Purpose string `json:"purpose"`
}
type StartUIAResponse struct {
	Session string `json:"session"`
}

type CompleteUIAStageRequest struct {
	Session string `json:"session"`
	Purpose string `json:"purpose"`
	Stage   string `json:"stage"`
}
type CompleteUIAStageResponse struct {
	Completed []string `json:"completed"`
}

type NewRegistrationNonceRequest struct{}
type NewRegistrationNonceResponse struct {
	Nonce string `json:"nonce"`
}

type ConsumeRegistrationNonceRequest struct {
	Nonce string `json:"nonce"`
}
type ConsumeRegistrationNonceResponse struct {
	Valid bool `json:"valid"`
}
