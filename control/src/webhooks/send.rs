//! The self-contained pieces of sending a webhook: the Standard Webhooks 1.0 signature (and
//! the receiver's check of it), the check of a target URL an admin gives, the addresses a
//! webhook must never reach, the retry schedule, one HTTP delivery, and the Microsoft Teams
//! card body.
//!
//! It owns no state: it must not store endpoints or deliveries, read the clock (callers pass
//! `now` and timestamps), or decide what to send and when. A delivery never follows a
//! redirect, never connects to an address it did not check, and never reports what the target
//! answered beyond its status code (OWASP API7, server-side request forgery).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use url::{Host, Url};

use crate::ControlError;

/// The prefix of a Standard Webhooks secret; the rest is the base64 of the key.
const SECRET_PREFIX: &str = "whsec_";

/// How far a signed timestamp may be from the receiver's clock (Standard Webhooks' default):
/// wider lets a captured request be replayed longer, narrower rejects senders with a skewed clock.
const TOLERANCE_SECONDS: u64 = 300;

/// The waits between attempts: quick retries for a blip, then hours for an outage, about 9 h
/// in all before giving up, so a target that is down overnight loses the night's events only.
const RETRY_DELAYS: [Duration; 7] = [
    Duration::from_secs(2),
    Duration::from_secs(10),
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 60 * 60),
    Duration::from_secs(6 * 60 * 60),
];

/// A new Standard Webhooks secret: `whsec_` and the base64 of 24 random bytes (192 bits, the
/// size the reference implementations generate).
pub fn new_secret() -> String {
    let mut key = [0u8; 24];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", BASE64.encode(key))
}

/// The `webhook-signature` header value for one message: `v1,` and the base64 of
/// HMAC-SHA256 over `{msg_id}.{timestamp}.{body}`, keyed with the base64-decoded part of the
/// secret after `whsec_` (Standard Webhooks 1.0). [`ControlError::Corrupt`] when the secret is
/// not `whsec_` followed by base64: secrets come from [`new_secret`] and are stored, so a bad
/// one is a damaged row, not user input.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, ControlError> {
    let key = secret_key(secret)?;
    Ok(format!("v1,{}", BASE64.encode(mac(&key, msg_id, timestamp, body))))
}

/// What a receiver does with a delivery: true when one of the space-separated signatures in
/// `header` (each `v1,<base64>`) is the one [`sign`] computes, compared in constant time, and
/// `timestamp` is at most 5 minutes from `now` (both Unix seconds). Several signatures appear
/// while a secret is being rotated; signatures of other versions are skipped.
pub fn verify(secret: &str, msg_id: &str, timestamp: i64, body: &[u8], header: &str, now: i64) -> bool {
    if now.abs_diff(timestamp) > TOLERANCE_SECONDS {
        return false;
    }
    let Ok(expected) = sign(secret, msg_id, timestamp, body) else {
        return false;
    };
    // No early exit: the time taken says nothing about which signature matched.
    header.split_whitespace().fold(false, |found, candidate| {
        found | bool::from(candidate.as_bytes().ct_eq(expected.as_bytes()))
    })
}

/// The key inside a secret. The error never quotes the secret: it would end up in logs.
fn secret_key(secret: &str) -> Result<Vec<u8>, ControlError> {
    let malformed = || ControlError::Corrupt("a webhook secret is not \"whsec_\" followed by base64".into());
    let encoded = secret.strip_prefix(SECRET_PREFIX).ok_or_else(malformed)?;
    let key = BASE64.decode(encoded).map_err(|_| malformed())?;
    if key.is_empty() {
        return Err(malformed());
    }
    Ok(key)
}

fn mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// A target URL as listings and the audit log show it: without its query, which may hold a
/// credential (a Teams Workflows URL's `sig`), so only whoever added it knows it.
pub fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.query().is_some() {
        shown.set_query(Some("…"));
    }
    shown.to_string()
}

/// Checks a target URL an admin gives (OWASP API7, server-side request forgery): `https`, or
/// `http` only when `allow_http_loopback` is true and the host is a loopback IP literal or
/// `localhost` (a receiver on the same machine, and the tests); no user or password (they
/// would be sent to the target and shown in listings); a host; no fragment. An IP-literal
/// host must not be one [`is_forbidden_ip`] refuses, loopback aside when `allow_http_loopback`
/// is true. A host name is checked again when [`deliver`] resolves it, since DNS can change.
///
/// Errors are [`ControlError::Invalid`] saying what is wrong with the URL.
pub fn check_url(text: &str, allow_http_loopback: bool) -> Result<Url, ControlError> {
    // The URL itself is not quoted: its query may hold a credential (a Teams Workflows URL's
    // `sig`), and this message reaches logs through `deliver`.
    let invalid = |why: &str| ControlError::Invalid(format!("the webhook URL is not allowed: {why}"));
    let url = Url::parse(text.trim()).map_err(|e| invalid(&format!("not a URL ({e})")))?;
    let host = url.host().ok_or_else(|| invalid("it has no host"))?;
    let loopback = match &host {
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
        Host::Domain(name) => is_localhost(name),
    };
    match url.scheme() {
        "https" => {}
        "http" if allow_http_loopback && loopback => {}
        "http" if allow_http_loopback => {
            return Err(invalid(
                "http is only allowed to a loopback address or localhost; use https",
            ));
        }
        "http" => return Err(invalid("it must use https")),
        other => return Err(invalid(&format!("the scheme {other:?} is not allowed; use https"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("it must not contain a user name or password"));
    }
    if url.fragment().is_some() {
        return Err(invalid("it must not have a #fragment"));
    }
    match host {
        Host::Ipv4(ip) if is_forbidden_ip(IpAddr::V4(ip), allow_http_loopback) => {
            return Err(invalid(&format!("{ip} is a private, local or reserved address")));
        }
        Host::Ipv6(ip) if is_forbidden_ip(IpAddr::V6(ip), allow_http_loopback) => {
            return Err(invalid(&format!("{ip} is a private, local or reserved address")));
        }
        // Refused here rather than only at delivery, so the admin hears it when saving.
        Host::Domain(name) if is_localhost(name) && !allow_http_loopback => {
            return Err(invalid("localhost is not allowed"));
        }
        _ => {}
    }
    Ok(url)
}

/// `localhost` and its subdomains always resolve to loopback (RFC 6761).
fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost")
}

/// Addresses a webhook must never reach, so that a webhook cannot be aimed at the network
/// behind the server: loopback (unless `allow_loopback`), private (10/8, 172.16/12,
/// 192.168/16), link-local (169.254/16 with the cloud metadata service 169.254.169.254,
/// fe80::/10), unspecified, broadcast, multicast, shared CGNAT 100.64/10, the documentation
/// ranges, 0.0.0.0/8, the IETF, benchmarking and reserved IPv4 ranges, IPv6 unique-local
/// fc00::/7 and site-local fec0::/10. IPv6 addresses that carry an IPv4 one (mapped,
/// compatible, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by that IPv4 address, because
/// that is where the packets end up.
pub fn is_forbidden_ip(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4, allow_loopback),
        IpAddr::V6(v6) => is_forbidden_v6(v6, allow_loopback),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return !allow_loopback;
    }
    let [a, b, c, _] = ip.octets();
    a == 0 // "this network", with the unspecified 0.0.0.0
        || ip.is_private()
        || ip.is_link_local()
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT), RFC 6598
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, RFC 6890
        || ip.is_documentation()
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
        || ip.is_multicast()
        || a >= 240 // reserved, with the broadcast 255.255.255.255
}

fn is_forbidden_v6(ip: Ipv6Addr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return !allow_loopback;
    }
    if ip.is_unspecified() {
        return true;
    }
    if let Some(v4) = embedded_v4(ip) {
        return is_forbidden_v4(v4, allow_loopback);
    }
    let first = ip.segments()[0];
    ip.is_multicast()
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local fec0::/10, deprecated but still routed locally
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation 2001:db8::/32
        || (first & 0xfff0) == 0x3ff0 // documentation 3fff::/20, RFC 9637
        || (first == 0x0064 && ip.segments()[1] == 0xff9b) // NAT64 local use 64:ff9b:1::/48 and the rest
}

/// The IPv4 address inside an IPv6 one that stands for it: IPv4-mapped ::ffff:a.b.c.d,
/// IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::a.b.c.d and 6to4 2002:aabb:ccdd::.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    let low = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match ip.segments() {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] | [0x0064, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

/// The wait before retry number `attempt` (1 is the first retry, after the first attempt
/// failed): 2 s, 10 s, 1 min, 5 min, 30 min, 2 h, 6 h, then `None`: give up, after 8 attempts
/// in all. `attempt` 0 is not a retry and is `None` too.
pub fn retry_delay(attempt: u32) -> Option<Duration> {
    let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
    RETRY_DELAYS.get(index).copied()
}

/// Why a delivery failed. The message never includes what the target answered beyond its
/// status: echoing a response body would let a webhook read an internal service (OWASP API7).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The URL, or an address its host resolves to, is not allowed.
    #[error("refused to deliver: {0}")]
    Refused(String),
    /// The host did not resolve, or the connection failed.
    #[error("the target could not be reached: {0}")]
    Unreachable(String),
    /// The target answered with a status other than 2xx; redirects (3xx) are not followed.
    #[error("the target answered HTTP {0}")]
    Status(u16),
    /// The target did not answer in time.
    #[error("the target did not answer in time")]
    Timeout,
}

/// POSTs `body` (JSON) to `url` with `headers` and `Content-Type: application/json`; returns
/// the 2xx status it got.
///
/// The URL is checked again with [`check_url`] and its host resolved here; when any address it
/// resolves to is one [`is_forbidden_ip`] refuses (loopback allowed with
/// `allow_http_loopback`), nothing is sent. The connection is then pinned to the addresses
/// that were checked, so a DNS answer that changes between the check and the connection (DNS
/// rebinding) cannot point it elsewhere, and goes direct: through a proxy the pinning would
/// not hold. Redirects are not followed (a 3xx is [`DeliveryError::Status`]): following one
/// would reach a URL nobody checked. `timeout` bounds the lookup and the request each.
pub async fn deliver(
    url: &Url,
    allow_http_loopback: bool,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<u16, DeliveryError> {
    let url = check_url(url.as_str(), allow_http_loopback).map_err(|e| DeliveryError::Refused(e.to_string()))?;
    // A client per call: deliveries are rare, and each one pins its own addresses.
    let mut client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .no_proxy();
    if let Some(Host::Domain(name)) = url.host() {
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs = tokio::time::timeout(timeout, checked_addrs(name, port, allow_http_loopback))
            .await
            .map_err(|_| DeliveryError::Timeout)??;
        client = client.resolve_to_addrs(name, &addrs);
    }
    let client = client
        .build()
        .map_err(|e| DeliveryError::Unreachable(error_chain(&e.without_url())))?;
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            DeliveryError::Timeout
        } else {
            // Without the URL: its query may hold a credential, and this message is logged.
            DeliveryError::Unreachable(error_chain(&e.without_url()))
        }
    })?;
    // The body is dropped unread: nothing of the answer but its status leaves this function.
    let status = response.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err(DeliveryError::Status(status.as_u16()))
    }
}

/// Resolves a host name and checks every address it resolves to: one forbidden address
/// refuses them all, since the connection could go to any of them.
async fn checked_addrs(name: &str, port: u16, allow_loopback: bool) -> Result<Vec<SocketAddr>, DeliveryError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
        .await
        .map_err(|e| DeliveryError::Unreachable(format!("{name} does not resolve: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(DeliveryError::Unreachable(format!("{name} resolves to no address")));
    }
    if let Some(bad) = addrs.iter().find(|a| is_forbidden_ip(a.ip(), allow_loopback)) {
        return Err(DeliveryError::Refused(format!(
            "{name} resolves to {}, a private, local or reserved address",
            bad.ip()
        )));
    }
    Ok(addrs)
}

/// An error with its causes: reqwest's own message ("error sending request") says nothing of
/// the connection refused or the certificate rejected beneath it.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A Microsoft Teams message for a Workflows webhook ("When a Teams webhook request is
/// received" accepts Adaptive Cards only): the title in bold, the facts as a fact set, and an
/// "Open in elevation" button when there is a `link`.
pub fn teams_card(title: &str, facts: &[(String, String)], link: Option<&str>) -> Value {
    let facts: Vec<Value> = facts
        .iter()
        .map(|(name, value)| json!({"title": name, "value": value}))
        .collect();
    let actions: Vec<Value> = link
        .map(|url| json!({"type": "Action.OpenUrl", "title": "Open in elevation", "url": url}))
        .into_iter()
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": title, "weight": "bolder", "size": "medium", "wrap": true},
                    {"type": "FactSet", "facts": facts},
                ],
                "actions": actions,
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::post;

    use super::*;

    // The test vector of the Standard Webhooks reference libraries (svix's `sign` tests); the
    // signature was also recomputed independently with python3's hmac module.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_published_test_vector_reproduces() {
        assert_eq!(
            sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY).unwrap(),
            VECTOR_SIGNATURE
        );
        assert!(verify(
            VECTOR_SECRET,
            VECTOR_ID,
            VECTOR_TIMESTAMP,
            VECTOR_BODY,
            VECTOR_SIGNATURE,
            VECTOR_TIMESTAMP
        ));
    }

    #[test]
    fn a_new_secret_signs_and_verifies() {
        let secret = new_secret();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(BASE64.decode(&secret[6..]).unwrap().len(), 24);
        assert_ne!(secret, new_secret());
        let now = 1_800_000_000;
        let signature = sign(&secret, "msg_1", now, b"{}").unwrap();
        assert!(verify(&secret, "msg_1", now, b"{}", &signature, now + 10));
        assert!(!verify(&new_secret(), "msg_1", now, b"{}", &signature, now));
    }

    #[test]
    fn anything_tampered_fails() {
        let (s, id, t, body) = (VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY);
        assert!(!verify(s, id, t, br#"{"test": 2432232315}"#, VECTOR_SIGNATURE, t));
        assert!(!verify(s, "msg_p5jXN8AQM9LWM0D4loKWxJel", t, body, VECTOR_SIGNATURE, t));
        assert!(!verify(s, id, t + 1, body, VECTOR_SIGNATURE, t + 1));
        assert!(!verify(
            s,
            id,
            t,
            body,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
            t
        ));
        assert!(!verify(
            s,
            id,
            t,
            body,
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            t
        ));
        assert!(!verify(s, id, t, body, "", t));
    }

    #[test]
    fn a_timestamp_more_than_five_minutes_away_fails() {
        let (s, id, t, body, sig) = (
            VECTOR_SECRET,
            VECTOR_ID,
            VECTOR_TIMESTAMP,
            VECTOR_BODY,
            VECTOR_SIGNATURE,
        );
        assert!(verify(s, id, t, body, sig, t + 300));
        assert!(verify(s, id, t, body, sig, t - 300));
        assert!(!verify(s, id, t, body, sig, t + 301));
        assert!(!verify(s, id, t, body, sig, t - 301));
        assert!(!verify(s, id, t, body, sig, i64::MAX));
        assert!(!verify(s, id, t, body, sig, i64::MIN));
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let (s, id, t, body) = (VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY);
        let other = sign(&new_secret(), id, t, body).unwrap();
        assert!(verify(s, id, t, body, &format!("{other} {VECTOR_SIGNATURE}"), t));
        assert!(verify(
            s,
            id,
            t,
            body,
            &format!("v1a,abc {VECTOR_SIGNATURE} {other}"),
            t
        ));
        assert!(!verify(s, id, t, body, &format!("{other} v1,bm9wZQ=="), t));
    }

    #[test]
    fn a_malformed_secret_is_corrupt_and_not_quoted() {
        for secret in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
            "whsec_",
            "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            match sign(secret, "msg", 1, b"{}") {
                // A fixed text: nothing of the secret reaches a log.
                Err(ControlError::Corrupt(message)) => {
                    assert_eq!(message, "a webhook secret is not \"whsec_\" followed by base64")
                }
                other => panic!("{secret:?}: {other:?}"),
            }
            assert!(!verify(secret, "msg", 1, b"{}", VECTOR_SIGNATURE, 1));
        }
    }

    fn refused(text: &str, allow_http_loopback: bool) -> String {
        match check_url(text, allow_http_loopback) {
            Err(ControlError::Invalid(message)) => message,
            other => panic!("{text} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn check_url_accepts_https_and_loopback_http_only_with_the_flag() {
        for flag in [false, true] {
            assert_eq!(
                check_url("https://hooks.example.com/x", flag).unwrap().as_str(),
                "https://hooks.example.com/x"
            );
        }
        assert_eq!(check_url("http://127.0.0.1:9/x", true).unwrap().port(), Some(9));
        assert!(check_url("http://[::1]:9/x", true).is_ok());
        assert!(check_url("http://localhost:9/x", true).is_ok());
        assert!(check_url("https://[::1]/", true).is_ok());
        assert!(refused("http://127.0.0.1:9/x", false).contains("https"));
        assert!(refused("http://localhost:9/x", false).contains("https"));
        assert!(refused("https://localhost/x", false).contains("localhost"));
    }

    #[test]
    fn check_url_says_what_is_wrong() {
        assert!(refused("http://example.com/x", false).contains("must use https"));
        assert!(refused("http://example.com/x", true).contains("only allowed to a loopback"));
        assert!(refused("ftp://example.com/x", true).contains("\"ftp\""));
        assert!(refused("https://user:pw@example.com/x", false).contains("user name or password"));
        assert!(refused("https://user@example.com/x", false).contains("user name or password"));
        assert!(refused("https://example.com/x#top", false).contains("fragment"));
        assert!(refused("not a url", false).contains("not a URL"));
        assert!(!refused("http://example.com/x?sig=s3cr3t", false).contains("s3cr3t"));
        assert!(refused("https://10.0.0.1/", true).contains("10.0.0.1"));
        assert!(refused("https://169.254.169.254/latest/meta-data/", true).contains("169.254.169.254"));
        assert!(refused("https://[::1]/", false).contains("::1"));
        assert!(refused("https://[fe80::1]/", true).contains("fe80::1"));
        assert!(refused("https://[::ffff:10.0.0.1]/", true).contains("reserved"));
        // Other spellings of an IPv4 address are normalised by the URL parser before the check.
        assert!(refused("https://0x7f.1/", false).contains("127.0.0.1"));
        assert!(refused("https://2852039166/", true).contains("169.254.169.254"));
    }

    #[test]
    fn forbidden_addresses() {
        let table: &[(&str, bool, bool)] = &[
            // (address, forbidden without loopback allowed, forbidden with it)
            ("127.0.0.1", true, false),
            ("127.255.0.9", true, false),
            ("::1", true, false),
            ("::ffff:127.0.0.1", true, false),
            ("10.1.2.3", true, true),
            ("172.16.0.1", true, true),
            ("172.31.255.255", true, true),
            ("192.168.1.1", true, true),
            ("169.254.169.254", true, true),
            ("fe80::1", true, true),
            ("0.0.0.0", true, true),
            ("0.1.2.3", true, true),
            ("::", true, true),
            ("255.255.255.255", true, true),
            ("240.0.0.1", true, true),
            ("224.0.0.1", true, true),
            ("ff02::1", true, true),
            ("100.64.0.1", true, true),
            ("100.127.255.255", true, true),
            ("192.0.0.8", true, true),
            ("192.0.2.1", true, true),
            ("198.51.100.1", true, true),
            ("203.0.113.1", true, true),
            ("198.18.0.1", true, true),
            ("2001:db8::1", true, true),
            ("3fff::1", true, true),
            ("fc00::1", true, true),
            ("fd12:3456::1", true, true),
            ("fec0::1", true, true),
            ("::ffff:10.0.0.1", true, true),
            ("::ffff:169.254.169.254", true, true),
            ("::10.0.0.1", true, true),
            ("64:ff9b::a9fe:a9fe", true, true),
            ("64:ff9b:1::1", true, true),
            ("2002:0a00:0001::1", true, true),
            // public addresses, including their IPv6 forms
            ("1.1.1.1", false, false),
            ("8.8.8.8", false, false),
            ("100.128.0.1", false, false),
            ("172.32.0.1", false, false),
            ("2606:4700:4700::1111", false, false),
            ("::ffff:8.8.8.8", false, false),
            ("64:ff9b::808:808", false, false),
            ("2002:0808:0808::1", false, false),
        ];
        for &(text, without, with) in table {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(is_forbidden_ip(ip, false), without, "{text} without loopback allowed");
            assert_eq!(is_forbidden_ip(ip, true), with, "{text} with loopback allowed");
        }
    }

    #[test]
    fn retry_schedule() {
        let minutes = |m: u64| Some(Duration::from_secs(m * 60));
        assert_eq!(retry_delay(0), None);
        assert_eq!(retry_delay(1), Some(Duration::from_secs(2)));
        assert_eq!(retry_delay(2), Some(Duration::from_secs(10)));
        assert_eq!(retry_delay(3), minutes(1));
        assert_eq!(retry_delay(4), minutes(5));
        assert_eq!(retry_delay(5), minutes(30));
        assert_eq!(retry_delay(6), minutes(120));
        assert_eq!(retry_delay(7), minutes(360));
        assert_eq!(retry_delay(8), None);
        assert_eq!(retry_delay(u32::MAX), None);
    }

    #[test]
    fn the_teams_card_is_an_adaptive_card() {
        let facts = [
            ("Tenant".to_string(), "contoso".to_string()),
            ("Count".to_string(), "3".to_string()),
        ];
        let card = teams_card(
            "Elevations denied",
            &facts,
            Some("https://elevation.example.com/denied"),
        );
        assert_eq!(card["type"], "message");
        let attachment = &card["attachments"][0];
        assert_eq!(attachment["contentType"], "application/vnd.microsoft.card.adaptive");
        assert!(attachment["contentUrl"].is_null());
        let content = &attachment["content"];
        assert_eq!(content["type"], "AdaptiveCard");
        assert_eq!(content["version"], "1.4");
        assert_eq!(content["$schema"], "http://adaptivecards.io/schemas/adaptive-card.json");
        assert_eq!(
            content["body"][0],
            json!({"type": "TextBlock", "text": "Elevations denied", "weight": "bolder", "size": "medium", "wrap": true})
        );
        assert_eq!(
            content["body"][1],
            json!({"type": "FactSet", "facts": [{"title": "Tenant", "value": "contoso"}, {"title": "Count", "value": "3"}]})
        );
        assert_eq!(
            content["actions"],
            json!([{"type": "Action.OpenUrl", "title": "Open in elevation", "url": "https://elevation.example.com/denied"}])
        );
        let card = teams_card("t", &[], None);
        assert_eq!(card["attachments"][0]["content"]["actions"], json!([]));
    }

    /// What the test server saw.
    #[derive(Default)]
    struct Seen {
        request: Mutex<Option<(HeaderMap, Vec<u8>)>>,
        redirect_followed: AtomicBool,
    }

    /// A receiver on a free loopback port: `/ok` records the request and answers 200,
    /// `/moved` answers 302 to `/target` (which records that it was reached), `/fail` 500.
    async fn server() -> (String, Arc<Seen>) {
        let seen = Arc::new(Seen::default());
        let (ok, target) = (seen.clone(), seen.clone());
        let app = Router::new()
            .route(
                "/ok",
                post(move |headers: HeaderMap, body: axum::body::Bytes| async move {
                    *ok.request.lock().unwrap() = Some((headers, body.to_vec()));
                    "a body that must not be echoed"
                }),
            )
            .route(
                "/moved",
                post(|| async { (StatusCode::FOUND, [(header::LOCATION, "/target")]).into_response() }),
            )
            .route(
                "/target",
                post(move || async move {
                    target.redirect_followed.store(true, Ordering::SeqCst);
                    "followed"
                }),
            )
            .route(
                "/fail",
                post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "secret internals") }),
            );
        // Bound before the task starts: connections queue in the listener, no wait is needed.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, seen)
    }

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn deliver_posts_json_with_the_headers() {
        let (base, seen) = server().await;
        let url = Url::parse(&format!("{base}/ok")).unwrap();
        let headers = [
            ("webhook-id", "msg_1".to_string()),
            ("webhook-signature", VECTOR_SIGNATURE.to_string()),
        ];
        let status = deliver(&url, true, &headers, b"{\"a\":1}".to_vec(), TIMEOUT)
            .await
            .unwrap();
        assert_eq!(status, 200);
        let (received, body) = seen
            .request
            .lock()
            .unwrap()
            .take()
            .expect("the request reached the server");
        assert_eq!(body, b"{\"a\":1}");
        assert_eq!(received["content-type"], "application/json");
        assert_eq!(received["webhook-id"], "msg_1");
        assert_eq!(received["webhook-signature"], VECTOR_SIGNATURE);
    }

    #[tokio::test]
    async fn deliver_does_not_follow_a_redirect() {
        let (base, seen) = server().await;
        let url = Url::parse(&format!("{base}/moved")).unwrap();
        let error = deliver(&url, true, &[], b"{}".to_vec(), TIMEOUT).await.unwrap_err();
        assert!(matches!(error, DeliveryError::Status(302)), "{error:?}");
        assert!(!seen.redirect_followed.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn deliver_reports_a_failing_status_without_the_body() {
        let (base, _) = server().await;
        let url = Url::parse(&format!("{base}/fail")).unwrap();
        let error = deliver(&url, true, &[], b"{}".to_vec(), TIMEOUT).await.unwrap_err();
        assert!(matches!(error, DeliveryError::Status(500)), "{error:?}");
        assert!(!error.to_string().contains("internals"));
    }

    #[tokio::test]
    async fn deliver_refuses_loopback_without_the_flag() {
        let (base, seen) = server().await;
        let url = Url::parse(&format!("{base}/ok")).unwrap();
        let error = deliver(&url, false, &[], b"{}".to_vec(), TIMEOUT).await.unwrap_err();
        assert!(matches!(error, DeliveryError::Refused(_)), "{error:?}");
        assert!(seen.request.lock().unwrap().is_none());
    }

    #[tokio::test]
    async fn deliver_to_a_host_name_connects_to_the_checked_addresses() {
        // The path with a DNS lookup and pinned addresses; localhost is the one name that
        // resolves without a network.
        let (base, seen) = server().await;
        let url = Url::parse(&base.replace("127.0.0.1", "localhost"))
            .unwrap()
            .join("/ok")
            .unwrap();
        assert_eq!(deliver(&url, true, &[], b"{}".to_vec(), TIMEOUT).await.unwrap(), 200);
        assert!(seen.request.lock().unwrap().is_some());
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_forbidden_address_is_refused() {
        // localhost is the one name that resolves without a network; check_url refuses it
        // earlier, so this calls the resolver's check directly.
        let error = checked_addrs("localhost", 443, false).await.unwrap_err();
        assert!(
            matches!(&error, DeliveryError::Refused(message) if message.contains("localhost resolves to")),
            "{error:?}"
        );
        let addrs = checked_addrs("localhost", 443, true).await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 443));
    }
}
