package internal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/userapi/api"
	"github.com/axon-hs/axon/userapi/storage"
)

// CreateAccount implements api.API.
func (u *UserAPI) CreateAccount(ctx context.Context, req api.CreateAccountRequest) (api.CreateAccountResponse, error) {
	if req.Localpart == "" {
		return api.CreateAccountResponse{}, apierr.New(apierr.CodeInvalidUsername, "empty localpart")
	}
	accountType := req.AccountType
	switch accountType {
	case "":
		accountType = api.AccountUser
	case api.AccountUser, api.AccountGuest:
	default:
		return api.CreateAccountResponse{}, apierr.InvalidParam("unknown account type %q", req.AccountType)
	}
	var hash string
	if req.Password != "" {
		// Hash before the transaction: bcrypt takes tens of milliseconds and
		// must not hold SQLite's single writer meanwhile.
		h, err := u.hashPassword(req.Password, req.Localpart)
		if err != nil {
			return api.CreateAccountResponse{}, err
		}
		hash = h
	}
	displayName := req.DisplayName
	if displayName == "" {
		displayName = req.Localpart
	}
	err := u.st.DB.InTx(ctx, func(tx *sql.Tx) error {
		ok, err := u.st.Accounts.Insert(ctx, tx, storage.Account{
			Localpart: req.Localpart, PasswordHash: hash, AccountType: accountType,
			Admin: req.Admin, CreatedMS: u.nowMS(),
		})
		if err != nil {
			return err
		}
		if !ok {
			return apierr.New(apierr.CodeUserInUse, "user ID already taken")
		}
		return u.st.Profiles.Insert(ctx, tx, storage.Profile{Localpart: req.Localpart, DisplayName: displayName})
	})
	if err != nil {
		if _, ok := apierr.As(err); ok {
			return api.CreateAccountResponse{}, err
		}
		return api.CreateAccountResponse{}, fmt.Errorf("create account %s: %w", req.Localpart, err)
	}
	u.m.accountsCreated.Inc()
	return api.CreateAccountResponse{UserID: u.userID(req.Localpart)}, nil
}

// AccountAvailable implements api.API. Deactivated accounts keep their
// localpart: user ids are never reused.
func (u *UserAPI) AccountAvailable(ctx context.Context, req api.AccountAvailableRequest) (api.AccountAvailableResponse, error) {
	taken, err := u.st.Accounts.Exists(ctx, u.st.DB.Reader(), req.Localpart)
	if err != nil {
		return api.AccountAvailableResponse{}, err
	}
	return api.AccountAvailableResponse{Available: !taken}, nil
}

// CheckPassword implements api.API. Every path runs exactly one bcrypt
// comparison, against the stored hash or a dummy one of the same
// cost, so the answer time does not tell whether the account exists.
func (u *UserAPI) CheckPassword(ctx context.Context, req api.CheckPasswordRequest) (api.CheckPasswordResponse, error) {
	acc, err := u.st.Accounts.Select(ctx, u.st.DB.Reader(), req.Localpart)
	if err != nil && !isNotFound(err) {
		return api.CheckPasswordResponse{}, err
	}
	// A missing account reads as the zero Account, with no hash either.
	usable := acc.PasswordHash != "" && !acc.Deactivated
	hash := u.dummyHash
	if acc.PasswordHash != "" {
		hash = []byte(acc.PasswordHash)
	}
	match := bcrypt.CompareHashAndPassword(hash, []byte(req.Password)) == nil
	if !usable || !match {
		u.m.passwordChecks.WithLabelValues("forbidden").Inc()
		return api.CheckPasswordResponse{}, apierr.Forbidden("invalid username or password")
	}
	u.m.passwordChecks.WithLabelValues("ok").Inc()
	return api.CheckPasswordResponse{UserID: u.userID(req.Localpart)}, nil
}

// QueryProfile implements api.API.
func (u *UserAPI) QueryProfile(ctx context.Context, req api.QueryProfileRequest) (api.QueryProfileResponse, error) {
	local, ok := u.localpart(req.UserID)
	if !ok {
		return api.QueryProfileResponse{}, apierr.NotFound("no such user")
	}
	p, err := u.st.Profiles.Select(ctx, u.st.DB.Reader(), local)
	if isNotFound(err) {
		return api.QueryProfileResponse{}, apierr.NotFound("no such user")
	}
	if err != nil {
		return api.QueryProfileResponse{}, err
	}
	return api.QueryProfileResponse{DisplayName: p.DisplayName, AvatarURL: p.AvatarURL}, nil
}

// hashPassword hashes a password with bcrypt (M_INVALID_PARAM past bcrypt's
// 72 bytes); who names the account in the error.
func (u *UserAPI) hashPassword(password, who string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), u.cost)
	if errors.Is(err, bcrypt.ErrPasswordTooLong) {
		return "", apierr.InvalidParam("password longer than 72 bytes")
	}
	if err != nil {
		return "", fmt.Errorf("hash password of %s: %w", who, err)
	}
	return string(h), nil
}
