//! HTTPS (issue #21): `elevation serve --tls-cert --tls-key` as a separate process on loopback,
//! with certificates the test makes with OpenSSL's command line. Uploads and the dashboards'
//! cookies over https; a certificate renewed on disk is served from the next connection on,
//! without a restart.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{create_agent_key, one_event_batch, start_server, temp_dir};

/// A self-signed certificate for `localhost` and 127.0.0.1 named `name`: (cert PEM, key PEM).
fn certificate(dir: &Path, name: &str) -> (Vec<u8>, Vec<u8>) {
    let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .args([
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        // A server certificate, not a CA (the default of `req -x509`), or webpki refuses it.
        .args([
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap())
}

/// Puts a certificate and key in place the way a renewal tool does: each written aside, then
/// renamed over the served file.
fn install(files: &(PathBuf, PathBuf), pair: &(Vec<u8>, Vec<u8>)) {
    for (path, pem) in [(&files.1, &pair.1), (&files.0, &pair.0)] {
        let aside = path.with_extension("new");
        std::fs::write(&aside, pem).unwrap();
        std::fs::rename(&aside, path).unwrap();
    }
}

/// A client that trusts `cert` only (no system roots), on a fresh connection pool.
fn trusting(cert: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert).unwrap())
        .tls_built_in_root_certs(false)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_uploads_and_secure_cookies_and_a_renewed_certificate_without_a_restart() {
    let dir = temp_dir();
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    let (agent_key, _) = create_agent_key(&data, "contoso").await;
    let first = certificate(dir.path(), "first");
    let second = certificate(dir.path(), "second");
    let files = (dir.path().join("live.crt"), dir.path().join("live.key"));
    install(&files, &first);
    let server = start_server(
        &data,
        &[
            "--tls-cert",
            files.0.to_str().unwrap(),
            "--tls-key",
            files.1.to_str().unwrap(),
        ],
    );
    assert!(server.base.starts_with("https://127.0.0.1:"), "{}", server.base);

    let client = trusting(&first.0);
    let health = client.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let upload = client
        .post(format!("{}/v1/agent/batches", server.base))
        .bearer_auth(&agent_key)
        .json(&one_event_batch("b-tls", "e-tls", "unmanagedElevation"))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 200, "{}", upload.text().await.unwrap());
    // The sign-in form's cookie is `Secure` under TLS (and only there: the web tests sign in
    // over plain http).
    let form = client.get(format!("{}/sign-in", server.base)).send().await.unwrap();
    let cookie = form.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
    // Plain HTTP on the HTTPS port gets no answer.
    let plain = reqwest::get(server.base.replace("https://", "http://") + "/healthz").await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);

    // Renewed on disk: the next connection gets the new certificate, the old one is gone.
    install(&files, &second);
    let renewed = trusting(&second.0).get(format!("{}/healthz", server.base)).send().await;
    assert_eq!(renewed.expect("the renewed certificate is served").status(), 200);
    let stale = trusting(&first.0).get(format!("{}/healthz", server.base)).send().await;
    assert!(stale.is_err(), "the old certificate is still served: {stale:?}");

    assert!(server.terminate().success());
}
