package internal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/userapi/api"
	"github.com/axon-hs/axon/userapi/storage"
)

// newAccessToken returns "axo_" and 32 random bytes in unpadded base64url:
// 256 bits, so guessing is hopeless and the token needs no expiry to be safe.
func newAccessToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// newRefreshToken is newAccessToken with its own prefix, so the two kinds
// can never be confused for each other.
func newRefreshToken() string {
	return refreshPrefix + strings.TrimPrefix(newAccessToken(), tokenPrefix)
}

// newDeviceID returns 10 random uppercase letters (about 47 bits), the shape
// Synapse uses, short enough for people to compare in a device list.
func newDeviceID() string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	out := make([]byte, 0, 10)
	var buf [16]byte
	for len(out) < cap(out) {
		_, _ = rand.Read(buf[:])
		for _, c := range buf {
			// Rejecting bytes at or above 234 = 9×26 keeps the letters uniform.
			if c < 234 && len(out) < cap(out) {
				out = append(out, letters[c%26])
			}
		}
	}
	return string(out)
}

// CreateDevice implements api.API. The user must have a live account of this
// server; M_NOT_FOUND otherwise.
func (u *UserAPI) CreateDevice(ctx context.Context, req api.CreateDeviceRequest) (api.CreateDeviceResponse, error) {
	defer u.tokens.invalidate(req.UserID)
	local, ok := u.localpart(req.UserID)
	if !ok {
		return api.CreateDeviceResponse{}, apierr.NotFound("no such user")
	}
	deviceID := req.DeviceID
	if deviceID == "" {
		deviceID = newDeviceID()
	}
	token := newAccessToken()
	var refresh string
	var refreshHash []byte
	var expiresMS int64
	if req.RefreshToken {
		refresh = newRefreshToken()
		refreshHash = hashToken(refresh)
		expiresMS = u.nowMS() + u.tokenLife.Milliseconds()
	}
	err := u.st.DB.InTx(ctx, func(tx *sql.Tx) error {
		// A device racing with deactivation is harmless: token lookups skip
		// deactivated accounts.
		acc, err := u.st.Accounts.Select(ctx, tx, local)
		if isNotFound(err) || (err == nil && acc.Deactivated) {
			return apierr.NotFound("no such user")
		}
		if err != nil {
			return err
		}
		return u.st.Devices.Upsert(ctx, tx, storage.Device{
			Localpart: local, DeviceID: deviceID, TokenHash: hashToken(token),
			DisplayName: req.DisplayName, IP: req.IP, CreatedMS: u.nowMS(),
			AccessExpiresMS: expiresMS, RefreshHash: refreshHash,
		})
	})
	if err != nil {
		if _, ok := apierr.As(err); ok {
			return api.CreateDeviceResponse{}, err
		}
		return api.CreateDeviceResponse{}, fmt.Errorf("create device %s for %s: %w", deviceID, req.UserID, err)
	}
	res := api.CreateDeviceResponse{DeviceID: deviceID, AccessToken: token}
	if req.RefreshToken {
		res.RefreshToken, res.ExpiresInMS = refresh, u.tokenLife.Milliseconds()
	}
	return res, nil
}

// QueryAccessToken implements api.API: one indexed query on the token's
// SHA-256 hash.
func (u *UserAPI) QueryAccessToken(ctx context.Context, req api.QueryAccessTokenRequest) (api.QueryAccessTokenResponse, error) {
	// Tokens we never issued need no database round trip.
	if !strings.HasPrefix(req.AccessToken, tokenPrefix) {
		return api.QueryAccessTokenResponse{}, apierr.New(apierr.CodeUnknownToken, "unknown access token")
	}
	hash := sha256.Sum256([]byte(req.AccessToken))
	now := u.now()
	e, ok := u.tokens.get(hash, now)
	if !ok {
		gen := u.tokens.generation()
		o, err := u.st.Devices.SelectByTokenHash(ctx, u.st.DB.Reader(), hash[:])
		if isNotFound(err) {
			return api.QueryAccessTokenResponse{}, apierr.New(apierr.CodeUnknownToken, "unknown access token")
		}
		if err != nil {
			return api.QueryAccessTokenResponse{}, err
		}
		e = tokenCacheEntry{device: api.Device{
			UserID: u.userID(o.Localpart), DeviceID: o.DeviceID, DisplayName: o.DisplayName,
			AccountType: o.AccountType, Admin: o.Admin,
		}, expiresMS: o.AccessExpiresMS, cachedAt: now}
		u.tokens.put(gen, hash, e)
	}
	if e.expiresMS != 0 && now.UnixMilli() >= e.expiresMS {
		// The device is still there: the client refreshes and carries on,
		// which is what soft_logout tells it.
		return api.QueryAccessTokenResponse{}, &apierr.Error{
			Code: apierr.CodeUnknownToken, Msg: "access token expired", SoftLogout: true}
	}
	return api.QueryAccessTokenResponse{Device: e.device}, nil
}

// DeleteDevices implements api.API. All=true removes every device of the
// user, whatever DeviceIDs holds. A user of another server has no devices
// here, so there is nothing to delete.
func (u *UserAPI) DeleteDevices(ctx context.Context, req api.DeleteDevicesRequest) (api.DeleteDevicesResponse, error) {
	defer u.tokens.invalidate(req.UserID)
	local, ok := u.localpart(req.UserID)
	if !ok {
		return api.DeleteDevicesResponse{}, nil
	}
	var err error
	if req.All {
		_, err = u.st.Devices.DeleteAll(ctx, u.st.DB, local)
	} else {
		_, err = u.st.Devices.Delete(ctx, u.st.DB, local, req.DeviceIDs)
	}
	if err != nil {
		return api.DeleteDevicesResponse{}, err
	}
	return api.DeleteDevicesResponse{}, nil
}
