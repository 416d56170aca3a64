//! Sign-in sessions for the browser dashboards: an admin signs in with their key once and the
//! browser holds an opaque random token instead. Only the token's SHA-256 is stored, with the
//! key it stands for, a CSRF secret and an expiry; a session of a revoked key is worthless
//! because every lookup checks the key too. Sessions live in the database, so any node
//! behind the load balancer accepts them.

use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::keys::Principal;
use crate::store::{Tx, parse_time, time_text};
use crate::{ControlError, KeyKind};

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Who signed in.
    pub principal: Principal,
    /// Sent with every form the session posts (double-submit), never in a cookie.
    pub csrf_secret: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A random secret for a cookie or a form: 32 bytes as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Stores a new session for an admin key; returns the token (for the cookie) and the session.
pub(crate) async fn create(
    tx: &mut Tx,
    principal: &Principal,
    now: DateTime<Utc>,
    ttl: chrono::Duration,
) -> Result<(String, Session), ControlError> {
    if principal.kind != KeyKind::Admin {
        return Err(ControlError::Invalid(
            "only admin keys sign in to the dashboards".into(),
        ));
    }
    let token = random_token();
    let session = Session {
        principal: principal.clone(),
        csrf_secret: random_token(),
        expires_at: now + ttl,
    };
    crate::on!(tx, conn => {
        sqlx::query(
            "INSERT INTO sign_in_sessions (token_sha256, key_id, csrf_secret, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash(&token))
        .bind(&principal.key_id)
        .bind(&session.csrf_secret)
        .bind(time_text(now))
        .bind(time_text(session.expires_at))
        .execute(&mut *conn)
        .await?;
    });
    Ok((token, session))
}

/// The session a token stands for, if it exists, has not expired and its key is not revoked.
pub(crate) async fn lookup(tx: &mut Tx, token: &str, now: DateTime<Utc>) -> Result<Option<Session>, ControlError> {
    type Row = (String, String, String, Option<String>, Option<String>, String, String);
    let row: Option<Row> = crate::on!(tx, conn => {
        sqlx::query_as(
            "SELECT k.id, k.tenant, k.kind, k.role, k.upn, s.csrf_secret, s.expires_at \
             FROM sign_in_sessions s JOIN api_keys k ON k.id = s.key_id \
             WHERE s.token_sha256 = $1 AND s.expires_at > $2 AND k.revoked_at IS NULL",
        )
        .bind(token_hash(token))
        .bind(time_text(now))
        .fetch_optional(&mut *conn)
        .await?
    });
    let Some((key_id, tenant, kind, role, upn, csrf_secret, expires_at)) = row else {
        return Ok(None);
    };
    Ok(Some(Session {
        principal: Principal {
            key_id,
            tenant,
            kind: KeyKind::parse(&kind)?,
            role: role.as_deref().map(crate::Role::parse).transpose()?,
            upn,
            // Sessions are admins'; only agent keys are bound to devices.
            device_id: None,
        },
        csrf_secret,
        expires_at: parse_time(&expires_at)?,
    }))
}

/// Ends a session (sign-out); expired sessions are deleted too.
pub(crate) async fn delete(tx: &mut Tx, token: &str, now: DateTime<Utc>) -> Result<(), ControlError> {
    crate::on!(tx, conn => {
        sqlx::query("DELETE FROM sign_in_sessions WHERE token_sha256 = $1 OR expires_at <= $2")
            .bind(token_hash(token))
            .bind(time_text(now))
            .execute(&mut *conn)
            .await?;
    });
    Ok(())
}
