// Package store owns the durable data model of Gatehouse: the records of each
// aggregate (users, sessions, audit events), the per-aggregate storage
// interfaces, and the error contract every backend honours. The SQLite and
// PostgreSQL implementations live in store/sqlstore and are held to the one
// conformance suite in store/storetest.
package store

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Sentinel errors returned by every backend. Callers branch on them with
// errors.Is; backends wrap them with context.
var (
	// ErrNotFound: no record matches the lookup.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a uniqueness constraint was violated (e.g. the e-mail is
	// already registered) or a compare-and-set precondition did not hold.
	ErrConflict = errors.New("store: conflict")
)

// User is an account. Email keeps the address as the user typed it (trimmed,
// domain in ASCII); EmailKey is its normalized form, unique across users.
type User struct {
	ID            string
	Email         string
	EmailKey      string
	Name          string
	PasswordHash  string // PHC/MCF string; never logged
	EmailVerified bool
	// Phone is the user's verified phone number in E.164 form ("" if none),
	// unique across users. An unverified number is never stored here: it
	// waits in its Verification's Target until the code comes back.
	Phone string
	// Admin marks an operator-designated administrator (set with
	// `gatehouse users admin`); policies may ask more of admins.
	Admin     bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Users stores accounts.
type Users interface {
	// CreateUser inserts u. It returns ErrConflict if u.EmailKey (or u.ID)
	// is already taken; two concurrent calls with one EmailKey create exactly
	// one user.
	CreateUser(ctx context.Context, u *User) error
	// UserByID returns ErrNotFound if there is no such user.
	UserByID(ctx context.Context, id string) (*User, error)
	// UserByEmailKey looks a user up by normalized e-mail; ErrNotFound if none.
	UserByEmailKey(ctx context.Context, emailKey string) (*User, error)
	// SetPasswordHash replaces the hash only if the stored one equals
	// oldHash (compare-and-set), so a transparent rehash can never undo a
	// concurrent password change. ErrNotFound if the user does not exist,
	// ErrConflict if the stored hash is no longer oldHash. With
	// newHash == oldHash it asserts, inside a transaction, that the password
	// has not changed, and locks the row against a concurrent change until
	// commit.
	SetPasswordHash(ctx context.Context, userID, oldHash, newHash string, at time.Time) error
	// MarkEmailVerified sets EmailVerified, but only while the user's
	// EmailKey is still emailKey (the address the proof was sent to):
	// ErrConflict if it changed, ErrNotFound if the user does not exist.
	// Already verified is not an error.
	MarkEmailVerified(ctx context.Context, userID, emailKey string, at time.Time) error
	// ChangeEmail replaces the address (compare-and-set on the current
	// EmailKey being oldEmailKey) and marks it verified: the change is
	// made only once the new address has proved itself. ErrConflict if the
	// current key is no longer oldEmailKey or newEmailKey belongs to another
	// user; ErrNotFound if the user does not exist.
	ChangeEmail(ctx context.Context, userID, oldEmailKey, newEmail, newEmailKey string, at time.Time) error
	// SetPhone sets (or, with "", clears) the user's verified phone number.
	// ErrConflict if another user has it, ErrNotFound if the user does not
	// exist.
	SetPhone(ctx context.Context, userID, phone string, at time.Time) error
	// UserByPhone looks a user up by verified E.164 number; ErrNotFound if
	// none.
	UserByPhone(ctx context.Context, phone string) (*User, error)
	// SetAdmin marks the user an administrator or not, setting UpdatedAt
	// when the mark changes; ErrNotFound if the user does not exist.
	// Setting the current value is not an error and changes nothing.
	SetAdmin(ctx context.Context, userID string, admin bool, at time.Time) error
}

// Session kinds: how the device holds its credential.
const (
	// SessionCookie: an opaque secret in the session cookie (TokenHash).
	SessionCookie = "cookie"
	// SessionToken: JWT access tokens plus a family of rotating refresh
	// tokens; TokenHash is the hash of a secret that was never handed out.
	SessionToken = "token"
)

// Session is one signed-in device. The bearer secret is never stored: only
// TokenHash, the SHA-256 of the cookie token.
type Session struct {
	ID         string
	UserID     string
	Kind       string // SessionCookie or SessionToken; empty is stored as SessionCookie
	TokenHash  []byte
	CreatedAt  time.Time
	LastSeenAt time.Time
	AuthTime   time.Time // last time the user proved a credential (step-up)
	ExpiresAt  time.Time // absolute lifetime; the idle limit is computed from LastSeenAt
	IP         string
	UserAgent  string
	Location   string // approximate, empty when unknown
	AAL        int
	AMR        []string
	RevokedAt  *time.Time
	// RevokeReason is a stable machine string ("logout", "revoked_by_user",
	// "password_changed", ...); empty while active.
	RevokeReason string
}

// Sessions stores sessions.
type Sessions interface {
	// CreateSession inserts s; ErrConflict on a duplicate ID or TokenHash.
	CreateSession(ctx context.Context, s *Session) error
	// SessionByTokenHash returns the session (revoked or not) whose token
	// hash matches; ErrNotFound if none.
	SessionByTokenHash(ctx context.Context, hash []byte) (*Session, error)
	// SessionByID returns the session (revoked or not); ErrNotFound if none.
	SessionByID(ctx context.Context, id string) (*Session, error)
	// ListActiveSessions returns the user's sessions that are not revoked and
	// whose ExpiresAt is after now, newest LastSeenAt first. Idle expiry is
	// the caller's policy and is not applied here.
	ListActiveSessions(ctx context.Context, userID string, now time.Time) ([]*Session, error)
	// TouchSession records activity on an active session: LastSeenAt, IP
	// and UserAgent. It does nothing (and returns nil) if the session is
	// revoked; ErrNotFound if it does not exist.
	TouchSession(ctx context.Context, id string, at time.Time, ip, userAgent string) error
	// RotateSessionToken replaces the token hash of an active session and
	// sets AuthTime, AAL and AMR (step-up re-authentication: the proof
	// may raise the assurance): the old cookie stops working. ErrNotFound
	// if the session does not exist or is revoked.
	RotateSessionToken(ctx context.Context, id string, newHash []byte, authTime time.Time, aal int, amr []string) error
	// RevokeSession marks one active session revoked. It reports whether it
	// was active (false, nil if already revoked); ErrNotFound if missing.
	RevokeSession(ctx context.Context, id string, at time.Time, reason string) (bool, error)
	// RevokeUserSessions revokes every active session of the user except
	// exceptID (may be empty) and returns the ids it revoked.
	RevokeUserSessions(ctx context.Context, userID, exceptID string, at time.Time, reason string) ([]string, error)
	// RevokedSessionsSince returns the sessions revoked at or after since
	// (id and RevokedAt), oldest revocation first. Verifiers rebuild their
	// revocation sets from it after a restart or a lost pub/sub message.
	RevokedSessionsSince(ctx context.Context, since time.Time) ([]Revocation, error)
}

// Revocation is one revoked session, as verifiers need it.
type Revocation struct {
	SessionID string
	RevokedAt time.Time
}

// RefreshToken is one member of a session's refresh-token family. Only the
// SHA-256 of the secret is stored. A token is current until UsedAt is set;
// rotation sets UsedAt and inserts the successor in the same transaction.
type RefreshToken struct {
	ID        string
	SessionID string // the family
	Hash      []byte
	CreatedAt time.Time
	ExpiresAt time.Time // idle expiry, never after the session's ExpiresAt
	UsedAt    *time.Time
	// Client fingerprints who rotated it (a hash of channel and user
	// agent); a replay inside the grace window must come from the same one.
	// Empty until used.
	Client string
	// Successor is the successor's secret sealed under a key derived from
	// this token's own secret (set when used): only a holder of this token
	// can open it, for a replay inside the grace window.
	Successor []byte
}

// RefreshTokens stores refresh-token families.
type RefreshTokens interface {
	// CreateRefreshToken inserts t; ErrConflict on a duplicate ID or Hash.
	CreateRefreshToken(ctx context.Context, t *RefreshToken) error
	// RefreshTokenByHash returns the token (used or not); ErrNotFound if none.
	RefreshTokenByHash(ctx context.Context, hash []byte) (*RefreshToken, error)
	// MarkRefreshTokenUsed consumes an unused token (compare-and-set on
	// UsedAt IS NULL) and records the client fingerprint and the sealed
	// successor. ErrConflict if it was already used (a concurrent rotation
	// won), ErrNotFound if missing. Inside a transaction it locks the row
	// until commit.
	MarkRefreshTokenUsed(ctx context.Context, id string, at time.Time, client string, successor []byte) error
	// ForgetRefreshSuccessors erases the sealed successors of the
	// session's tokens used before usedBefore: past the grace window no
	// one may open them, and a copy of the store together with an old
	// token must not lead forward through the family to the live token.
	ForgetRefreshSuccessors(ctx context.Context, sessionID string, usedBefore time.Time) error
}

// Verification purposes: what a proof of control of an address is for.
const (
	PurposeVerifyEmail = "verify_email" // confirm the account's e-mail address
	PurposeRecovery    = "recovery"     // password reset
	PurposeMagicLink   = "magic_link"   // sign in by e-mailed link
	PurposeEmailOTP    = "email_otp"    // sign in by e-mailed code
	PurposeSMSOTP      = "sms_otp"      // sign in by texted code
	PurposeVerifyPhone = "verify_phone" // add a phone number
	PurposeChangeEmail = "change_email" // confirm a new e-mail address
	PurposeRevertEmail = "revert_email" // undo a change of address, from the old one
	// PurposeNotMe: "this wasn't me" from the notice of a sign-in by a new
	// device; SessionID is that sign-in's session. Each session's is its
	// own: a newer one retires only an older one of the same session.
	PurposeNotMe = "not_me"
)

// Verification is one outstanding proof of control of an e-mail address or
// phone number: a link secret, a short code, or both (e-mail verification
// sends a link and a code for mobile). Only hashes are stored. It is single
// use: UsedAt is set when it is consumed, when too many wrong codes kill it,
// and when a newer one of the same user and purpose replaces it.
type Verification struct {
	ID      string
	UserID  string
	Purpose string // one of the Purpose constants
	// LinkHash is the SHA-256 of the link secret; nil for a code only.
	LinkHash []byte
	// CodeHash is the keyed hash of the one-time code; nil for a link only.
	CodeHash []byte
	// Target is the address or number the proof was sent to: the new
	// address of a change of e-mail, the number being verified, otherwise
	// the user's address at the time.
	Target string
	// SessionID is the session that asked for it, when one did (the change
	// of e-mail keeps that session and revokes the others); "" otherwise.
	SessionID string
	// Binding is the hash of a nonce held by the browser that asked (a
	// magic link bound to that browser); nil when unbound.
	Binding   []byte
	Attempts  int // wrong codes so far
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// Verifications stores outstanding proofs of control.
type Verifications interface {
	// CreateVerification inserts v and retires (sets UsedAt on) every other
	// unused verification of the same user and purpose (for PurposeNotMe:
	// of the same user, purpose and SessionID): a newer link or code
	// replaces the older ones. ErrConflict on a duplicate ID or LinkHash.
	CreateVerification(ctx context.Context, v *Verification) error
	// VerificationByLinkHash returns the verification (used or not) whose
	// link hash matches; ErrNotFound if none.
	VerificationByLinkHash(ctx context.Context, hash []byte) (*Verification, error)
	// CurrentVerification returns the user's unused verification of the
	// purpose (expired or not: the caller judges expiry); ErrNotFound if
	// none.
	CurrentVerification(ctx context.Context, userID, purpose string) (*Verification, error)
	// ConsumeVerification marks a verification used, compare-and-set on
	// it being unused and unexpired at at: of concurrent consumers exactly
	// one succeeds. ErrConflict if it is used or expired, ErrNotFound if
	// missing. Inside a transaction it locks the row until commit.
	ConsumeVerification(ctx context.Context, id string, at time.Time) error
	// AttemptVerification counts one attempt at the code of an unused
	// verification and returns the count after it; the increment that
	// reaches max also marks it used (the code is dead). Callers count
	// before they compare, so concurrent guesses cannot exceed the limit.
	// ErrConflict if it is already used, ErrNotFound if missing.
	// Concurrent attempts are all counted.
	AttemptVerification(ctx context.Context, id string, max int, at time.Time) (int, error)
	// RetireVerifications marks used every unused verification of the user
	// with one of the purposes (a password change retires reset links) and
	// returns how many it retired.
	RetireVerifications(ctx context.Context, userID string, at time.Time, purposes ...string) (int, error)
	// DeleteVerificationsBefore deletes verifications that expired before
	// the given time (housekeeping) and returns how many.
	DeleteVerificationsBefore(ctx context.Context, before time.Time) (int, error)
}

// TOTPFactor is a user's authenticator-app (RFC 6238) factor. The shared
// secret is stored only sealed under the key-encryption key. A factor is
// pending from enrolment until the user proves a first code (ConfirmedAt);
// only a confirmed factor is asked for at sign-in.
type TOTPFactor struct {
	UserID       string
	SecretSealed []byte
	KEKVersion   int
	CreatedAt    time.Time
	ConfirmedAt  *time.Time
	// LastStep is the last RFC 6238 time step accepted: a code of that
	// step or an earlier one is a replay.
	LastStep int64
}

// RecoveryCode is one single-use MFA recovery code; only its hash is kept.
type RecoveryCode struct {
	ID        string
	UserID    string
	Hash      []byte
	CreatedAt time.Time
	UsedAt    *time.Time
}

// MFA stores second factors.
type MFA interface {
	// PutPendingTOTP stores f as the user's pending factor, replacing a
	// pending one. ErrConflict if the user has a confirmed factor.
	PutPendingTOTP(ctx context.Context, f *TOTPFactor) error
	// TOTPByUser returns the user's factor, pending or confirmed;
	// ErrNotFound if none.
	TOTPByUser(ctx context.Context, userID string) (*TOTPFactor, error)
	// ConfirmTOTP confirms the pending factor and records step as its
	// last accepted step. ErrConflict if it is not pending, ErrNotFound if
	// there is none.
	ConfirmTOTP(ctx context.Context, userID string, step int64, at time.Time) error
	// UseTOTPStep accepts step for the user's confirmed factor only if it
	// is later than LastStep (compare-and-set): of concurrent uses of one
	// code exactly one succeeds. ErrConflict on a replay (or a pending
	// factor), ErrNotFound if there is no factor.
	UseTOTPStep(ctx context.Context, userID string, step int64) error
	// DeleteTOTP removes the user's factor; ErrNotFound if none.
	DeleteTOTP(ctx context.Context, userID string) error
	// ReplaceRecoveryCodes deletes every recovery code of the user and
	// inserts codes (all of that user).
	ReplaceRecoveryCodes(ctx context.Context, userID string, codes []*RecoveryCode) error
	// UseRecoveryCode marks the user's unused code whose hash matches as
	// used (compare-and-set). ErrNotFound if no unused code matches.
	UseRecoveryCode(ctx context.Context, userID string, hash []byte, at time.Time) error
	// CountRecoveryCodes returns how many unused codes the user has.
	CountRecoveryCodes(ctx context.Context, userID string) (int, error)
}

// WebAuthnCredential is a registered WebAuthn public-key credential: a
// passkey (discoverable, usually synced) or a security key. Only public
// material is stored.
type WebAuthnCredential struct {
	ID     string // the API's id ("wac_…")
	UserID string
	// CredentialID is the authenticator's credential id, unique across
	// users (WebAuthn §6.1: at most 1023 bytes).
	CredentialID []byte
	PublicKey    []byte // COSE_Key
	// AttestationType is the registration's attestation statement format
	// ("none", "packed", "fido-u2f", …).
	AttestationType string
	AAGUID          []byte   // 16 bytes; all zeros when the authenticator does not say
	Transports      []string // "internal", "hybrid", "usb", "nfc", "ble"
	// Discoverable: registered as a client-side discoverable credential
	// (a passkey, usable without typing a username).
	Discoverable bool
	// BackupEligible and BackupState are the BE and BS flags: a synced
	// passkey may be backed up; a security key never is.
	BackupEligible bool
	BackupState    bool
	// SignCount is the authenticator's signature counter after its last
	// accepted use (0 for authenticators that do not count).
	SignCount  uint32
	Name       string
	CreatedAt  time.Time
	LastUsedAt *time.Time
}

// WebAuthn stores WebAuthn credentials.
type WebAuthn interface {
	// CreateWebAuthnCredential inserts c; ErrConflict on a duplicate ID or
	// CredentialID (whoever owns it).
	CreateWebAuthnCredential(ctx context.Context, c *WebAuthnCredential) error
	// WebAuthnCredentialsByUser returns the user's credentials, oldest
	// CreatedAt first (ties by ID); none is not an error.
	WebAuthnCredentialsByUser(ctx context.Context, userID string) ([]*WebAuthnCredential, error)
	// WebAuthnCredentialByCredentialID returns the credential with that
	// authenticator credential id; ErrNotFound if none.
	WebAuthnCredentialByCredentialID(ctx context.Context, credentialID []byte) (*WebAuthnCredential, error)
	// UseWebAuthnCredential records an accepted assertion: SignCount
	// becomes newCount, BackupState backupState and LastUsedAt at, but
	// only while the stored SignCount is still oldCount (compare-and-set):
	// of two assertions racing from one counter value to a higher one,
	// one wins. An authenticator that does not count (always 0) leaves
	// the guard unchanged, so its uses never conflict: replays are
	// stopped by the single-use ceremony, and whether a count went
	// backwards is the caller's check. ErrConflict if the count changed
	// meanwhile, ErrNotFound if missing.
	UseWebAuthnCredential(ctx context.Context, id string, oldCount, newCount uint32, backupState bool, at time.Time) error
	// RenameWebAuthnCredential sets the name of the user's credential id;
	// ErrNotFound if the user has no such credential.
	RenameWebAuthnCredential(ctx context.Context, userID, id, name string) error
	// DeleteWebAuthnCredential deletes the user's credential id;
	// ErrNotFound if the user has no such credential.
	DeleteWebAuthnCredential(ctx context.Context, userID, id string) error
	// DeleteUserWebAuthnCredentials deletes every credential of the user
	// and returns how many.
	DeleteUserWebAuthnCredentials(ctx context.Context, userID string) (int, error)
}

// SigningKey is an access-token signing key. The private half is sealed
// with the key-encryption key (KEKVersion names which) and never stored in
// clear. Its state follows from the times: published from CreatedAt,
// signing from ActivatesAt until a newer key activates, published after
// that until every token it signed has expired.
type SigningKey struct {
	ID            string // the JWS kid
	Algorithm     string // "EdDSA" or "ES256"
	PublicJWK     []byte // JSON Web Key of the public half
	PrivateSealed []byte
	KEKVersion    int
	CreatedAt     time.Time
	ActivatesAt   time.Time
}

// SigningKeys stores signing keys.
type SigningKeys interface {
	// CreateSigningKey inserts k; ErrConflict on a duplicate ID.
	CreateSigningKey(ctx context.Context, k *SigningKey) error
	// ListSigningKeys returns every key, oldest ActivatesAt first (ties by
	// ID). Keys are never deleted: expired ones stay for the record.
	ListSigningKeys(ctx context.Context) ([]*SigningKey, error)
}

// Event is one security-relevant fact in the audit log. Details never hold
// secrets or tokens.
type Event struct {
	ID        int64 // assigned by the store, increasing
	Type      string
	UserID    string // empty when the actor is unknown (e.g. a failed sign-in for an unknown e-mail)
	SessionID string
	IP        string
	UserAgent string
	At        time.Time
	Details   map[string]string
	// Seq, PrevHash and Hash are the event's link in the tamper-evident
	// chain, set once by the sealer (audit.Sealer) shortly after the event
	// commits: Seq counts 1, 2, 3 … without gaps, PrevHash is the Hash of
	// the link Seq-1 (32 zero bytes for Seq 1), and Hash is audit.LinkHash
	// of the event. An unsealed event has Seq 0 and nil hashes.
	Seq      int64
	PrevHash []byte
	Hash     []byte
}

// EventFilter selects events for Audit.QueryEvents. Zero fields match
// every event.
type EventFilter struct {
	UserID string
	Type   string
	IP     string    // exact match of the stored address text
	Since  time.Time // At >= Since
	Until  time.Time // At < Until
	After  int64     // ID > After: the cursor of the previous page
	Limit  int       // page size; must be positive
}

// ChainLink is a position in the audit chain: a sealed event's Seq and
// Hash. The zero ChainLink is the empty chain.
type ChainLink struct {
	Seq  int64
	Hash []byte
}

// Audit is the append-only security event log and its tamper-evident
// chain.
//
// Appends run on the request path, inside the business transaction, and
// take no chain-wide lock: they leave the event unsealed. A sealer then
// extends the chain in one transaction per batch:
//
//	LockAuditChain → ChainHead → UnsealedEvents → SealEvent for each, in order
//
// The lock serialises sealers of every replica; the unique Seq is the
// real guarantee (a sealer that raced without the lock fails with
// ErrConflict and retries later). Streaming sinks follow the chain by Seq
// (ChainEvents) from a durable cursor guarded by a lease (ClaimAuditSink,
// AdvanceAuditSink, ReleaseAuditSink).
type Audit interface {
	// AppendEvent inserts e, unsealed, and sets e.ID.
	AppendEvent(ctx context.Context, e *Event) error
	// ListUserEvents returns up to limit events of the user with ID < before
	// (before <= 0 means from the newest), newest first.
	ListUserEvents(ctx context.Context, userID string, before int64, limit int) ([]*Event, error)
	// QueryEvents returns up to f.Limit events matching f with ID > f.After,
	// sealed or not, oldest (lowest ID) first.
	QueryEvents(ctx context.Context, f EventFilter) ([]*Event, error)

	// LockAuditChain takes the right to extend the chain until the end of
	// the current transaction, waiting for another holder. It must be
	// called inside InTx (outside, it fails): on PostgreSQL it is a
	// transaction-scoped advisory lock, on SQLite the transaction's write
	// lock already serialises sealers and it does nothing.
	LockAuditChain(ctx context.Context) error
	// ChainHead returns the sealed event with the highest Seq as a link,
	// or the zero ChainLink when nothing is sealed.
	ChainHead(ctx context.Context) (ChainLink, error)
	// UnsealedEvents returns up to limit unsealed events, lowest ID first,
	// as stored (the values a link's hash must be computed from).
	UnsealedEvents(ctx context.Context, limit int) ([]*Event, error)
	// UnsealedEventStats counts the unsealed events and returns the
	// earliest At among them (zero when there are none).
	UnsealedEventStats(ctx context.Context) (count int64, oldest time.Time, err error)
	// SealEvent sets the link (seq > 0, 32-byte hashes) of the unsealed
	// event id. ErrNotFound if there is no such event; ErrConflict if it
	// is already sealed or another event has seq. Links are never changed
	// once set.
	SealEvent(ctx context.Context, id, seq int64, prevHash, hash []byte) error
	// ChainEvents returns up to limit sealed events with Seq > afterSeq,
	// lowest Seq first.
	ChainEvents(ctx context.Context, afterSeq int64, limit int) ([]*Event, error)

	// ClaimAuditSink takes or renews, until until, the lease of the
	// delivery cursor of sink (created at 0 on first use) for holder, and
	// returns the cursor: the Seq of the last event delivered. The lease is
	// free when unheld, expired (its until <= now) or already holder's;
	// otherwise ErrConflict.
	ClaimAuditSink(ctx context.Context, sink, holder string, now, until time.Time) (cursor int64, err error)
	// AdvanceAuditSink moves the cursor of sink from from to to (to >
	// from) if holder holds its lease and the cursor is still from;
	// otherwise ErrConflict (ErrNotFound for an unknown sink).
	AdvanceAuditSink(ctx context.Context, sink, holder string, from, to int64) error
	// ReleaseAuditSink gives up holder's lease of sink, if it holds it, so
	// another replica may take over at once.
	ReleaseAuditSink(ctx context.Context, sink, holder string) error
}

// IPRule allows or denies a block of client addresses. Deny rules are
// written by operators (CLI, admin API) and by the credential-stuffing
// detector (temporary bans); allow rules exempt a block (an office NAT)
// from per-IP limits and automatic bans.
type IPRule struct {
	// Prefix is the block, masked (198.51.100.0/24, 2001:db8::/64; a
	// single address is a /32 or /128). It is the rule's identity.
	Prefix    netip.Prefix
	Action    string // IPAllow or IPDeny
	Reason    string // free text for operators; never shown to clients
	CreatedBy string // "cli", "admin:<user id>", "stuffing-detector"
	CreatedAt time.Time
	ExpiresAt time.Time // zero: until deleted
}

// IP rule actions.
const (
	IPAllow = "allow"
	IPDeny  = "deny"
)

// IPRules stores allow and deny rules for client address blocks.
type IPRules interface {
	// PutIPRule creates the rule for r.Prefix, or replaces the one there.
	PutIPRule(ctx context.Context, r *IPRule) error
	// DeleteIPRule removes the rule for prefix; ErrNotFound if there is none.
	DeleteIPRule(ctx context.Context, prefix netip.Prefix) error
	// ListIPRules returns the rules unexpired at now (ExpiresAt zero or
	// after now), by prefix.
	ListIPRules(ctx context.Context, now time.Time) ([]*IPRule, error)
	// PurgeIPRules deletes the rules that expired before cutoff.
	PurgeIPRules(ctx context.Context, cutoff time.Time) error
}

// Tx is the set of aggregates usable inside one transaction.
type Tx interface {
	Users() Users
	Sessions() Sessions
	RefreshTokens() RefreshTokens
	SigningKeys() SigningKeys
	Verifications() Verifications
	MFA() MFA
	WebAuthn() WebAuthn
	Audit() Audit
	IPRules() IPRules
}

// Store is a durable backend.
type Store interface {
	Tx
	// InTx runs fn in one transaction: every write fn makes through tx
	// commits together or not at all. fn must not use the outer Store.
	InTx(ctx context.Context, fn func(tx Tx) error) error
	// Ping checks the backend is reachable (readiness).
	Ping(ctx context.Context) error
	Close() error
}
