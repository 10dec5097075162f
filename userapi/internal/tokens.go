package internal

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/userapi/api"
)

const (
	// loginTokenPrefix marks m.login.token tokens.
	loginTokenPrefix = "axl_"
	// DefaultLoginTokenLifetime is how long a login token stays usable
	// unless asked otherwise (Synapse's 2 minutes): long enough to carry it
	// to another device, short enough that a leaked one is soon worthless.
	DefaultLoginTokenLifetime = 2 * time.Minute
)

// QueryRegistrationToken implements api.API.
func (u *UserAPI) QueryRegistrationToken(ctx context.Context, req api.QueryRegistrationTokenRequest) (api.QueryRegistrationTokenResponse, error) {
	n, err := u.st.RegTokens.Completed(ctx, u.st.DB.Reader(), req.Token)
	if err != nil {
		return api.QueryRegistrationTokenResponse{}, err
	}
	return api.QueryRegistrationTokenResponse{Completed: n}, nil
}

// UseRegistrationToken implements api.API.
func (u *UserAPI) UseRegistrationToken(ctx context.Context, req api.UseRegistrationTokenRequest) (api.UseRegistrationTokenResponse, error) {
	if req.Token == "" {
		return api.UseRegistrationTokenResponse{}, apierr.New(apierr.CodeMissingParam, "missing token")
	}
	if req.Release {
		return api.UseRegistrationTokenResponse{OK: true}, u.st.RegTokens.Release(ctx, u.st.DB, req.Token)
	}
	ok, err := u.st.RegTokens.Use(ctx, u.st.DB, req.Token, req.UsesAllowed)
	if err != nil {
		return api.UseRegistrationTokenResponse{}, err
	}
	return api.UseRegistrationTokenResponse{OK: ok}, nil
}

// CreateLoginToken implements api.API. Expired tokens are deleted here, so
// the table stays bounded without a sweeper.
func (u *UserAPI) CreateLoginToken(ctx context.Context, req api.CreateLoginTokenRequest) (api.CreateLoginTokenResponse, error) {
	local, err := u.ownLocalpart(req.UserID)
	if err != nil {
		return api.CreateLoginTokenResponse{}, err
	}
	life := time.Duration(req.LifetimeMS) * time.Millisecond
	if life <= 0 {
		life = DefaultLoginTokenLifetime
	}
	token := loginTokenPrefix + strings.TrimPrefix(newAccessToken(), tokenPrefix)
	now := u.nowMS()
	err = u.st.DB.InTx(ctx, func(tx *sql.Tx) error {
		if err := u.st.LoginTokens.DeleteExpired(ctx, tx, now); err != nil {
			return err
		}
		return u.st.LoginTokens.Insert(ctx, tx, hashToken(token), local, now+life.Milliseconds())
	})
	if err != nil {
		return api.CreateLoginTokenResponse{}, fmt.Errorf("create login token for %s: %w", req.UserID, err)
	}
	return api.CreateLoginTokenResponse{Token: token, ExpiresInMS: life.Milliseconds()}, nil
}

// ConsumeLoginToken implements api.API. The token is deleted by the
// statement that reads it: single use even under concurrent logins.
func (u *UserAPI) ConsumeLoginToken(ctx context.Context, req api.ConsumeLoginTokenRequest) (api.ConsumeLoginTokenResponse, error) {
	invalid := apierr.Forbidden("invalid login token")
	if !strings.HasPrefix(req.Token, loginTokenPrefix) {
		return api.ConsumeLoginTokenResponse{}, invalid
	}
	local, expires, err := u.st.LoginTokens.Consume(ctx, u.st.DB, hashToken(req.Token))
	if isNotFound(err) {
		return api.ConsumeLoginTokenResponse{}, invalid
	}
	if err != nil {
		return api.ConsumeLoginTokenResponse{}, err
	}
	if expires <= u.nowMS() {
		return api.ConsumeLoginTokenResponse{}, invalid
	}
	acc, err := u.st.Accounts.Select(ctx, u.st.DB, local)
	if isNotFound(err) || (err == nil && acc.Deactivated) {
		return api.ConsumeLoginTokenResponse{}, invalid
	}
	if err != nil {
		return api.ConsumeLoginTokenResponse{}, err
	}
	return api.ConsumeLoginTokenResponse{UserID: u.userID(local)}, nil
}
