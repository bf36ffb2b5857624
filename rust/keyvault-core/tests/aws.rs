//! The AWS provider against a real moto server (Secrets Manager + STS), started by each test on
//! a free loopback port over plain HTTP (TLS to AWS endpoints is the same reqwest/rustls client
//! as Key Vault's, covered by the emulator tests and the hg bed's HTTPS moto). moto_server comes
//! from `HG_KEYVAULT_MOTO`, else `.venv/bin/moto_server` (tests/requirements.txt); without it the
//! tests print why and pass vacuously (`make test` installs it).
//!
//! The store reads the process environment (as the SDK does), so the tests run one at a time.

use hg_keyvault_core::aws::{AwsConfig, AwsSession};
use hg_keyvault_core::{ErrorKind, SecretRef, SecretStore, SecretValue, SetOptions};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn moto_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HG_KEYVAULT_MOTO") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    venv.is_file().then_some(venv)
}

/// A moto server; killed by pid when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start(extra_env: &[(&str, &str)]) -> Option<Moto> {
        let Some(bin) = moto_binary() else {
            eprintln!("skipped: no moto_server (set HG_KEYVAULT_MOTO or run `make deps`)");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start moto_server");
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http(port, "GET", "/moto-api/data.json", &[], b"").is_none() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`: `(status, body)`, or None if nothing answers.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

const AWS_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_STS",
    "AWS_CA_BUNDLE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
];

/// A clean AWS environment pointing at `endpoint`: no profile files, no IMDS, region eu-west-1,
/// plus `vars`.
fn aws_env(endpoint: &str, vars: &[(&str, &str)]) {
    for k in AWS_VARS {
        std::env::remove_var(k);
    }
    std::env::set_var("AWS_ENDPOINT_URL", endpoint);
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/aws-config");
    std::env::set_var(
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/aws-credentials",
    );
    std::env::set_var("AWS_REGION", "eu-west-1");
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
}

const KEYS: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
    (
        "AWS_SECRET_ACCESS_KEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
];

fn config(prefix: &str) -> AwsConfig {
    AwsConfig {
        timeout: Duration::from_secs(10),
        name_prefix: prefix.to_owned(),
        // Each test's own prefix keeps tests apart in the kernel keyring too.
        ..AwsConfig::default()
    }
}

fn r(text: &str) -> SecretRef {
    SecretRef::parse(text).unwrap()
}

fn v(text: &str) -> SecretValue {
    SecretValue::new(text.as_bytes().to_vec())
}

#[test]
fn set_get_versions_stages_properties_list_and_delete() {
    let _serial = serial();
    let Some(moto) = Moto::start(&[]) else { return };
    aws_env(&moto.url(), &KEYS);
    let store = AwsSession::new(&config("hg-")).unwrap();
    let pw = r("secret://hg/ci-bot/password");

    // Missing: ResourceNotFoundException (404 from moto, 400 from AWS) by its code.
    let e = store.get(&pw, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    let mut tags = BTreeMap::new();
    tags.insert("team".to_owned(), "ci".to_owned());
    let first = store
        .set(
            &pw,
            &v("one"),
            SetOptions {
                tags,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        first.name, "hg-hg/ci-bot/password",
        "readable prefixed name"
    );
    let second = store.set(&pw, &v("two"), SetOptions::default()).unwrap();
    assert_ne!(first.version, second.version);

    let current = store.get(&pw, None).unwrap();
    assert_eq!(current.value.expose(), b"two");
    assert_eq!(current.properties.version, second.version);
    let previous = store.get(&pw, Some("AWSPREVIOUS")).unwrap();
    assert_eq!(
        previous.value.expose(),
        b"one",
        "AWSCURRENT moved, the old one is AWSPREVIOUS"
    );
    let by_id = store.get(&pw, first.version.as_deref()).unwrap();
    assert_eq!(by_id.value.expose(), b"one");

    let versions = store.versions(&pw).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        versions.last().unwrap().version,
        second.version,
        "current version last"
    );

    let props = store.properties(&pw).unwrap();
    assert_eq!(
        props.secret_ref.as_deref(),
        Some(pw.as_str()),
        "the ref tag"
    );
    assert_eq!(props.tags.get("team").map(String::as_str), Some("ci"));
    assert_eq!(props.version, second.version);

    // Paging: more secrets than one page (100).
    for i in 0..105 {
        let ri = r(&format!("secret://hg/many/s{i}"));
        store.set(&ri, &v("x"), SetOptions::default()).unwrap();
    }
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 106, "every page");
    assert!(listed
        .iter()
        .any(|p| p.secret_ref.as_deref() == Some(pw.as_str())));

    // Binary values come back as bytes.
    let bin = r("secret://hg/deploy/key");
    let raw = SecretValue::new(vec![0, 159, 146, 150, 255]);
    store.set(&bin, &raw, SetOptions::default()).unwrap();
    assert_eq!(store.get(&bin, None).unwrap().value.expose(), raw.expose());

    // Delete with a recovery window; a read then says it is scheduled for deletion.
    let deleted = store.delete(&pw).unwrap();
    assert!(deleted.recoverable);
    let purge = deleted.scheduled_purge.expect("DeletionDate");
    let days = (purge - time::OffsetDateTime::now_utc()).whole_days();
    assert!((6..=7).contains(&days), "{days} days");
    let e = store.get(&pw, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.message().contains("scheduled for deletion"),
        "{}",
        e.message()
    );
}

#[test]
fn arn_refs_read_from_their_own_region() {
    let _serial = serial();
    let Some(moto) = Moto::start(&[]) else { return };
    aws_env(&moto.url(), &KEYS);
    // The secret lives in us-west-2; the default region is eu-west-1.
    std::env::set_var("AWS_REGION", "us-west-2");
    let west = AwsSession::new(&config("hg-")).unwrap();
    let props = west
        .set(&r("secret://hg/arn"), &v("by-arn"), SetOptions::default())
        .unwrap();
    let arn = props.id.expect("ARN");
    assert!(
        arn.starts_with("arn:aws:secretsmanager:us-west-2:"),
        "{arn}"
    );
    std::env::set_var("AWS_REGION", "eu-west-1");
    let eu = AwsSession::new(&config("hg-")).unwrap();
    assert_eq!(eu.get(&r(&arn), None).unwrap().value.expose(), b"by-arn");
    assert_eq!(
        eu.get(&r("secret://hg/arn"), None).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn values_over_65536_bytes_are_refused_before_sending() {
    let _serial = serial();
    // No server at all: the check happens before any request.
    aws_env("http://127.0.0.1:9", &KEYS);
    let store = AwsSession::new(&config("hg-")).unwrap();
    let big = SecretValue::new(vec![b'a'; 65_537]);
    let e = store
        .set(&r("secret://hg/big"), &big, SetOptions::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
}

#[test]
fn no_region_is_a_clear_configuration_error() {
    let _serial = serial();
    aws_env("http://127.0.0.1:9", &KEYS);
    std::env::remove_var("AWS_REGION");
    let store = AwsSession::new(&config("hg-")).unwrap();
    let e = store.get(&r("secret://hg/x"), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadConfig);
    assert!(
        e.message()
            .starts_with("keyvault: no AWS region for secret secret://hg/x"),
        "{}",
        e.message()
    );
}

#[test]
fn no_credentials_lists_each_source_and_why() {
    let _serial = serial();
    let Some(moto) = Moto::start(&[]) else { return };
    aws_env(&moto.url(), &[]);
    let store = AwsSession::new(&config("hg-")).unwrap();
    let e = store.get(&r("secret://hg/x"), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    for source in [
        "environment:",
        "profile:",
        "web-identity:",
        "container:",
        "instance-profile:",
    ] {
        assert!(e.message().contains(source), "{source} in {}", e.message());
    }
}

#[test]
fn a_black_holed_endpoint_times_out_within_the_timeout_naming_it() {
    let _serial = serial();
    // Accepts connections and never answers.
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hole.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in hole.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    aws_env(&format!("http://127.0.0.1:{port}"), &KEYS);
    let mut cfg = config("hg-");
    cfg.timeout = Duration::from_secs(2);
    let store = AwsSession::new(&cfg).unwrap();
    let started = Instant::now();
    let e = store.get(&r("secret://hg/x"), None).unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        e.message().contains(&format!("127.0.0.1:{port}")),
        "{}",
        e.message()
    );
    // Bounded: the deadline, not the SDK's retries (a generous margin for a loaded machine).
    assert!(took < Duration::from_secs(8), "{took:?}");
}

/// Counts the requests passing through to moto, with their X-Amz-Target or Action.
struct CountingProxy {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl CountingProxy {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || relay(client, upstream, &log));
            }
        });
        CountingProxy { port, seen }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// Relays HTTP/1.1 requests one by one (keep-alive aware via Content-Length), logging each.
fn relay(client: TcpStream, upstream: u16, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut client = client;
    loop {
        let Some((head, body)) = read_message(&mut reader) else {
            return;
        };
        let target = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("x-amz-target: ")
                    .or_else(|| l.strip_prefix("X-Amz-Target: "))
            })
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let b = String::from_utf8_lossy(&body);
                b.split('&')
                    .find_map(|kv| kv.strip_prefix("Action="))
                    .unwrap_or("?")
                    .to_owned()
            });
        log.lock().unwrap().push(target);
        let head = head.replace("Connection: keep-alive", "Connection: close");
        let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
            return;
        };
        let _ = up.write_all(head.as_bytes());
        let _ = up.write_all(&body);
        let mut up_reader = BufReader::new(up);
        let Some((rhead, rbody)) = read_message(&mut up_reader) else {
            return;
        };
        if client.write_all(rhead.as_bytes()).is_err() || client.write_all(&rbody).is_err() {
            return;
        }
    }
}

fn read_message(reader: &mut impl BufRead) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

#[test]
fn web_identity_credentials_are_cached_across_stores_so_a_warm_read_is_one_request() {
    let _serial = serial();
    let Some(moto) = Moto::start(&[]) else { return };
    let proxy = CountingProxy::start(moto.port);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln").unwrap();
    // Store the secret with static keys first (a separate identity, another cache key).
    aws_env(&format!("http://127.0.0.1:{}", proxy.port), &KEYS);
    let prefix = format!("hg-{}-", std::process::id());
    let pw = r("secret://hg/wi/password");
    AwsSession::new(&config(&prefix))
        .unwrap()
        .set(&pw, &v("wi"), SetOptions::default())
        .unwrap();
    proxy.take();

    aws_env(
        &format!("http://127.0.0.1:{}", proxy.port),
        &[
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/hg-ci"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap()),
            (
                "AWS_ROLE_SESSION_NAME",
                &format!("hg-test-{}", std::process::id()),
            ),
        ],
    );
    let cold = AwsSession::new(&config(&prefix)).unwrap();
    assert_eq!(cold.get(&pw, None).unwrap().value.expose(), b"wi");
    let cold_requests = proxy.take();
    assert_eq!(
        cold_requests,
        ["AssumeRoleWithWebIdentity", "secretsmanager.GetSecretValue"],
        "cold: the credential source plus one"
    );
    assert_eq!(cold.selected_link(), Some("web-identity"));
    let status = cold.cache_status().unwrap().unwrap();
    if status.token_store != Some(hg_keyvault_core::store::CacheStore::KernelKeyring) {
        eprintln!("skipped the cross-store half: no kernel keyring here");
        return;
    }
    // A new store (as a new process would be: nothing in memory) finds the sealed credentials.
    let warm = AwsSession::new(&config(&prefix)).unwrap();
    assert_eq!(warm.get(&pw, None).unwrap().value.expose(), b"wi");
    assert_eq!(
        proxy.take(),
        ["secretsmanager.GetSecretValue"],
        "warm: exactly one request"
    );
    assert_eq!(
        warm.selected_link(),
        Some("web-identity"),
        "the source that first got them"
    );

    // A rotated token file opens nothing: the next store asks STS again.
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.e30.b3RoZXI").unwrap();
    let rotated = AwsSession::new(&config(&prefix)).unwrap();
    rotated.get(&pw, None).unwrap();
    assert_eq!(
        proxy.take(),
        ["AssumeRoleWithWebIdentity", "secretsmanager.GetSecretValue"]
    );
}

fn iam(port: u16, query: &str) -> String {
    // moto routes by the service in the Authorization header's scope; the first
    // INITIAL_NO_AUTH_ACTION_COUNT actions are not checked.
    let auth = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20250101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00";
    let (status, body) = http(
        port,
        "POST",
        "/",
        &[
            ("Authorization", auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        format!("{query}&Version=2010-05-08").as_bytes(),
    )
    .expect("IAM answers");
    assert_eq!(status, 200, "{query}: {body}");
    body
}

fn xml_field(body: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = body.find(&open).expect(tag) + open.len();
    let end = body[start..].find(&format!("</{tag}>")).unwrap() + start;
    body[start..end].to_owned()
}

#[test]
fn signatures_are_checked_in_iam_mode_and_a_wrong_key_is_reported_well() {
    let _serial = serial();
    let Some(moto) = Moto::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]) else {
        return;
    };
    iam(moto.port, "Action=CreateUser&UserName=hg-ci");
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}]}"#;
    let encoded: String = policy
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    iam(
        moto.port,
        &format!("Action=PutUserPolicy&UserName=hg-ci&PolicyName=sm&PolicyDocument={encoded}"),
    );
    let key = iam(moto.port, "Action=CreateAccessKey&UserName=hg-ci");
    let (id, secret) = (
        xml_field(&key, "AccessKeyId"),
        xml_field(&key, "SecretAccessKey"),
    );

    // The right key: our SigV4 signing is accepted.
    aws_env(
        &moto.url(),
        &[
            ("AWS_ACCESS_KEY_ID", &id),
            ("AWS_SECRET_ACCESS_KEY", &secret),
        ],
    );
    let store = AwsSession::new(&config("hg-")).unwrap();
    store
        .set(&r("secret://hg/signed"), &v("ok"), SetOptions::default())
        .unwrap();
    assert_eq!(
        store
            .get(&r("secret://hg/signed"), None)
            .unwrap()
            .value
            .expose(),
        b"ok"
    );

    // A wrong secret key: refused, reported as bad credentials, without any key in the message.
    let wrong = format!("{}x", &secret[..secret.len() - 1]);
    aws_env(
        &moto.url(),
        &[
            ("AWS_ACCESS_KEY_ID", &id),
            ("AWS_SECRET_ACCESS_KEY", &wrong),
        ],
    );
    let store = AwsSession::new(&config("hg-")).unwrap();
    let e = store.get(&r("secret://hg/signed"), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    assert!(
        e.message().contains("does not accept the credentials"),
        "{}",
        e.message()
    );
    for s in [secret.as_str(), wrong.as_str()] {
        assert!(!e.message().contains(s) && !e.hint().unwrap_or_default().contains(s));
    }
    // An unknown key id: the same sentence.
    aws_env(&moto.url(), &KEYS);
    let e = AwsSession::new(&config("hg-"))
        .unwrap()
        .get(&r("secret://hg/signed"), None)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
}
