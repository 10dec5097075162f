package internal

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/axon-hs/axon/internal/apierr"
	"github.com/axon-hs/axon/userapi/api"
	"github.com/axon-hs/axon/userapi/storage"
)

// StartUIA implements api.API. Expired sessions are deleted here, so the
// table stays bounded without a background sweeper.
func (u *UserAPI) StartUIA(ctx context.Context, req api.StartUIARequest) (api.StartUIAResponse, error) {
	now := u.now()
	id := rand.Text() // 26 base32 characters, 130 bits
	err := u.st.DB.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := u.st.UIASessions.DeleteCreatedBefore(ctx, tx, liveSince(now, UIASessionLifetime)); err != nil {
			return err
		}
		return u.st.UIASessions.Insert(ctx, tx, storage.UIASession{ID: id, Purpose: req.Purpose, CreatedMS: now.UnixMilli()})
	})
	if err != nil {
		return api.StartUIAResponse{}, fmt.Errorf("start uia session for %q: %w", req.Purpose, err)
	}
	return api.StartUIAResponse{Session: id}, nil
}

// CompleteUIAStage implements api.API. Recording a stage twice is a no-op.
// A session opened for another purpose is treated as unknown: a session
// must not carry completed stages from one request kind to another.
func (u *UserAPI) CompleteUIAStage(ctx context.Context, req api.CompleteUIAStageRequest) (api.CompleteUIAStageResponse, error) {
	if req.Stage == "" {
		return api.CompleteUIAStageResponse{}, apierr.New(apierr.CodeMissingParam, "missing stage")
	}
	for range casRetries {
		s, err := u.st.UIASessions.Select(ctx, u.st.DB, req.Session)
		if isNotFound(err) {
			return api.CompleteUIAStageResponse{}, unknownSession()
		}
		if err != nil {
			return api.CompleteUIAStageResponse{}, err
		}
		if s.Purpose != req.Purpose || s.CreatedMS < liveSince(u.now(), UIASessionLifetime) {
			return api.CompleteUIAStageResponse{}, unknownSession()
		}
		if slices.Contains(s.Completed, req.Stage) {
			return api.CompleteUIAStageResponse{Completed: s.Completed}, nil
		}
		next := append(slices.Clip(s.Completed), req.Stage)
		ok, err := u.st.UIASessions.UpdateCompleted(ctx, u.st.DB, req.Session, s.Completed, next)
		if err != nil {
			return api.CompleteUIAStageResponse{}, err
		}
		if ok {
			return api.CompleteUIAStageResponse{Completed: next}, nil
		}
		// Another stage was recorded (or the session deleted) in between: reread.
	}
	return api.CompleteUIAStageResponse{}, fmt.Errorf("complete uia stage %s of session %s: too much contention", req.Stage, req.Session)
}

// NewRegistrationNonce implements api.API. Expired nonces are deleted here,
// so the table stays bounded without a background sweeper.
func (u *UserAPI) NewRegistrationNonce(ctx context.Context, _ api.NewRegistrationNonceRequest) (api.NewRegistrationNonceResponse, error) {
	now := u.now()
	nonce := rand.Text()
	err := u.st.DB.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := u.st.Nonces.DeleteCreatedBefore(ctx, tx, liveSince(now, NonceLifetime)); err != nil {
			return err
		}
		return u.st.Nonces.Insert(ctx, tx, nonce, now.UnixMilli())
	})
	if err != nil {
		return api.NewRegistrationNonceResponse{}, fmt.Errorf("issue registration nonce: %w", err)
	}
	return api.NewRegistrationNonceResponse{Nonce: nonce}, nil
}

// ConsumeRegistrationNonce implements api.API. The nonce is deleted by the
// same statement that reads it, so among concurrent callers with one nonce
// exactly one sees Valid.
func (u *UserAPI) ConsumeRegistrationNonce(ctx context.Context, req api.ConsumeRegistrationNonceRequest) (api.ConsumeRegistrationNonceResponse, error) {
	created, err := u.st.Nonces.Consume(ctx, u.st.DB, req.Nonce)
	if isNotFound(err) {
		return api.ConsumeRegistrationNonceResponse{Valid: false}, nil
	}
	if err != nil {
		return api.ConsumeRegistrationNonceResponse{}, err
	}
	return api.ConsumeRegistrationNonceResponse{Valid: created >= liveSince(u.now(), NonceLifetime)}, nil
}

// liveSince is the earliest creation time (ms) of something with the given
// lifetime that is still live at now: it expires the millisecond its age
// reaches the lifetime. Checks and sweeps both use it, so they agree.
func liveSince(now time.Time, lifetime time.Duration) int64 {
	return now.Add(-lifetime).UnixMilli() + 1
}
