package api

import "context"

// TokensAPI is registration token use counting and login tokens
// (m.login.token). Its methods follow the Name(ctx, NameRequest)
// (NameResponse, error) shape.
type TokensAPI interface {
	// QueryRegistrationToken returns how many registrations have used a
	// token. Which tokens exist, how often and until when they may be used
	// is configuration the caller holds.
	QueryRegistrationToken(ctx context.Context, req QueryRegistrationTokenRequest) (QueryRegistrationTokenResponse, error)
	// UseRegistrationToken counts one use of a token if it has been used
	// fewer than UsesAllowed times (0: unlimited), atomically; OK is false
	// when it is used up. Release gives one use back instead (the
	// registration the use was taken for failed).
	UseRegistrationToken(ctx context.Context, req UseRegistrationTokenRequest) (UseRegistrationTokenResponse, error)
	// CreateLoginToken issues a single-use m.login.token for a user, valid
	// for Lifetime (default 2 minutes).
	CreateLoginToken(ctx context.Context, req CreateLoginTokenRequest) (CreateLoginTokenResponse, error)
	// ConsumeLoginToken uses a login token up and returns its user;
	// M_FORBIDDEN when it is unknown, used or expired, or its account is
	// deactivated.
	ConsumeLoginToken(ctx context.Context, req ConsumeLoginTokenRequest) (ConsumeLoginTokenResponse, error)
}

type QueryRegistrationTokenRequest struct {
	Token string `json:"token"`
}
type QueryRegistrationTokenResponse struct {
	Completed int64 `json:"completed"`
}

type UseRegistrationTokenRequest struct {
	Token       string `json:"token"`
	UsesAllowed int64  `json:"uses_allowed,omitempty"`
	Release     bool   `json:"release,omitempty"`
}
type UseRegistrationTokenResponse struct {
	OK bool `json:"ok"`
}

type CreateLoginTokenRequest struct {
	UserID     string `json:"user_id"`
	LifetimeMS int64  `json:"lifetime_ms,omitempty"`
}
type CreateLoginTokenResponse struct {
	Token       string `json:"token"`
	ExpiresInMS int64  `json:"expires_in_ms"`
}

type ConsumeLoginTokenRequest struct {
	Token string `json:"token"`
}
type ConsumeLoginTokenResponse struct {
	UserID string `json:"user_id"`
}
