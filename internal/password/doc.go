// Package password owns everything Gatehouse does with passwords: hashing
// them with argon2id and a pepper, verifying hashes imported from other
// systems, and the NIST SP 800-63B password policy.
//
// # Hashing
//
// A Hasher NFKC-normalizes the password, computes HMAC-SHA256 over it keyed
// with the current pepper, and runs argon2id over that MAC. The result is
// stored as a PHC string whose extra parameter pv names the pepper version:
//
//	$argon2id$v=19$m=19456,t=2,p=1,pv=1$<salt>$<hash>
//
// The pepper is a server-side secret kept out of the database, so a database
// dump alone is not enough to mount an offline guessing attack. Pre-hashing
// with HMAC also makes the argon2id input a fixed 32 bytes whatever the
// password length. Older pepper versions stay configured so that their hashes
// keep verifying; Verify reports NeedsRehash for them, and the caller then
// stores a fresh Hash while it still has the plaintext.
//
// Argon2id memory is the denial-of-service surface of a login endpoint, so a
// Hasher bounds the number of simultaneous computations and refuses with
// ErrOverloaded when no slot frees up in time.
//
// # Imported hashes
//
// Verify also accepts bcrypt ($2a$, $2b$, $2y$), unpeppered argon2id and
// argon2i, scrypt and PBKDF2 hashes in the PHC-like forms that
// github.com/go-crypt/crypt decodes. They always report NeedsRehash when the
// password matches, so they disappear as users log in. Their cost parameters
// are bounded (see ValidateImported) so an imported hash cannot make a single
// verification take unbounded memory or time.
//
// # Policy
//
// Policy implements the length-based rules of NIST SP 800-63B rev. 4: a
// minimum and maximum length counted in code points, a blocklist of common
// and breached passwords, and a ban on context words such as the user's e-mail
// address. It has no composition rules.
package password
