//! The KMS client against a real moto server (`pip install 'moto[server]'`).
//!
//! Each test starts `python3 -m moto.server` on a free loopback port (killed
//! on drop), or uses `NARAKIM_MOTO_URL` when CI runs one shared server. The
//! signature test always starts its own server, because it turns on moto's
//! request authentication, which would break other clients of a shared one.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use narakim::vault::kms::{AwsCredentials, KmsClient, KmsConfig, KmsError};
use zeroize::Zeroizing;

struct Moto {
    child: Option<Child>,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// Starts a private moto server with `env` and `args` and waits until it
/// accepts connections.
fn start_moto(env: &[(&str, &str)], args: &[&str]) -> Moto {
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run python3 -m moto.server (install it with: pip install 'moto[server]')");
    let mut moto = Moto {
        child: Some(child),
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = moto
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!("moto.server exited with {status}; is moto[server] installed?");
        }
        assert!(
            Instant::now() < deadline,
            "moto.server did not listen on port {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

/// Whether `python3 -m moto.server` can run here.
fn has_moto() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import moto.server"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        common::services::missing("moto[server] (python3 -m moto.server)");
    }
    found
}

/// The shared server from NARAKIM_MOTO_URL, or a private one.
fn moto() -> Moto {
    match std::env::var("NARAKIM_MOTO_URL") {
        Ok(url) if !url.is_empty() => Moto { child: None, url },
        _ => start_moto(&[], &[]),
    }
}

fn client_with(url: &str, key_id: &str, credentials: AwsCredentials) -> KmsClient {
    let config = KmsConfig::new(
        "us-east-1".into(),
        key_id.into(),
        Some(url.into()),
        credentials,
    )
    .expect("loopback config");
    KmsClient::new(config).expect("client")
}

fn client(url: &str, key_id: &str) -> KmsClient {
    let credentials = AwsCredentials::new(
        "testing".into(),
        Zeroizing::new("testing".into()),
        Some(Zeroizing::new("testing".into())),
    );
    client_with(url, key_id, credentials)
}

fn refused_code(result: Result<Zeroizing<[u8; 32]>, KmsError>) -> (String, String) {
    match result {
        Err(e @ KmsError::Refused { .. }) => {
            let text = e.to_string();
            let KmsError::Refused { code, .. } = e else {
                unreachable!()
            };
            (code, text)
        }
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("expected a refusal, got a key"),
    }
}

#[test]
fn data_key_round_trip_and_refusals() {
    if !has_moto() {
        return;
    }
    let moto = moto();
    let key_a = client(&moto.url, "")
        .create_key("narakim test key A")
        .expect("create key A");
    let a = client(&moto.url, &key_a);
    assert_eq!(a.key_id(), key_a);
    let vault = [("narakim-vault", "0123456789abcdef0123456789abcdef")];

    let data_key = a.generate_data_key(&vault).expect("generate");
    assert!(!data_key.ciphertext.is_empty());
    assert_eq!(
        *a.decrypt(&data_key.ciphertext, &vault).expect("decrypt"),
        *data_key.plaintext
    );
    // Two data keys are different keys.
    assert_ne!(
        *a.generate_data_key(&vault).expect("second").plaintext,
        *data_key.plaintext
    );

    // Another vault's id in the context: the blob does not open.
    let other = [("narakim-vault", "ffffffffffffffffffffffffffffffff")];
    let (code, text) = refused_code(a.decrypt(&data_key.ciphertext, &other));
    assert_eq!(code, "InvalidCiphertextException", "{text}");
    assert!(text.contains("belongs to another vault"), "{text}");
    // No context at all: neither.
    assert_eq!(
        refused_code(a.decrypt(&data_key.ciphertext, &[])).0,
        "InvalidCiphertextException"
    );

    // The right blob and context, but the client is configured for key B.
    let key_b = a.create_key("narakim test key B").expect("create key B");
    assert_ne!(key_a, key_b);
    let b = client(&moto.url, &key_b);
    let (code, text) = refused_code(b.decrypt(&data_key.ciphertext, &vault));
    eprintln!("under key B: {text}");
    // Real KMS says IncorrectKeyException; moto says AccessDeniedException.
    assert!(
        ["IncorrectKeyException", "AccessDeniedException"].contains(&code.as_str()),
        "{text}"
    );

    // Every byte matters.
    for at in [
        0,
        data_key.ciphertext.len() / 2,
        data_key.ciphertext.len() - 1,
    ] {
        let mut tampered = data_key.ciphertext.clone();
        tampered[at] ^= 0x01;
        let (code, text) = refused_code(a.decrypt(&tampered, &vault));
        eprintln!("tampered byte {at}: {text}");
        assert!(
            ["InvalidCiphertextException", "AccessDeniedException"].contains(&code.as_str()),
            "byte {at}: {text}"
        );
    }

    // A key that does not exist.
    let (code, text) = match client(&moto.url, "no-such-key").generate_data_key(&vault) {
        Err(e @ KmsError::Refused { .. }) => (format!("{e:?}"), e.to_string()),
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(code.contains("NotFoundException"), "{text}");
}

#[test]
fn works_from_inside_a_runtime() {
    if !has_moto() {
        return;
    }
    let moto = moto();
    let key = client(&moto.url, "")
        .create_key("runtime test")
        .expect("create key");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let c = client(&moto.url, &key);
        // Directly on a worker thread (blocking it, which the vault may do)...
        let data_key = c
            .generate_data_key(&[("narakim-vault", "v")])
            .expect("inside the runtime");
        // ...and from spawn_blocking.
        let blob = data_key.ciphertext.clone();
        let plain =
            tokio::task::spawn_blocking(move || c.decrypt(&blob, &[("narakim-vault", "v")]))
                .await
                .expect("join")
                .expect("decrypt in spawn_blocking");
        assert_eq!(*plain, *data_key.plaintext);
    });
}

#[test]
fn closed_port_fails_fast() {
    let port = free_port();
    let c = client(&format!("http://127.0.0.1:{port}"), "k");
    let started = Instant::now();
    let e = c.generate_data_key(&[]).expect_err("nothing listens");
    let took = started.elapsed();
    assert!(matches!(e, KmsError::Unreachable { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("cannot reach KMS at http://127.0.0.1:{port}: ")),
        "{text}"
    );
    // Three attempts, 100 ms + 400 ms of backoff, no hanging.
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
}

/// HTTPS is really TLS, checked against the webpki roots: a plain-HTTP
/// server and a self-signed certificate both fail at once, as TLS errors.
#[test]
fn https_needs_tls_and_a_trusted_certificate() {
    if !has_moto() {
        return;
    }
    let plain = moto();
    let url = plain.url.replace("http://", "https://");
    let started = Instant::now();
    let e = client(&url, "k")
        .generate_data_key(&[])
        .expect_err("not TLS");
    assert!(matches!(e, KmsError::Tls { .. }), "{e}");
    eprintln!("plain HTTP: {e}");

    let tls = start_moto(&[], &["-s"]);
    let url = tls.url.replace("http://", "https://");
    let e = client(&url, "k")
        .generate_data_key(&[])
        .expect_err("self-signed");
    assert!(matches!(e, KmsError::Tls { .. }), "{e}");
    assert!(e.to_string().contains("certificate"), "{e}");
    eprintln!("self-signed: {e}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "TLS failures are not retried"
    );
}

/// Sets up IAM in a moto server whose first `free` actions are not
/// authenticated: a user with an inline allow-all policy and an access key,
/// plus a role it may assume. Prints `key_id secret [session_token]`.
const IAM_SETUP: &str = r#"
import json, sys, boto3
url = sys.argv[1]
iam = boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                   aws_access_key_id="setup", aws_secret_access_key="setup")
allow = json.dumps({"Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::123456789012:user/narakim"}, "Action": "sts:AssumeRole"}]})
iam.create_user(UserName="narakim")
iam.put_user_policy(UserName="narakim", PolicyName="all", PolicyDocument=allow)
key = iam.create_access_key(UserName="narakim")["AccessKey"]
iam.create_role(RoleName="narakim-role", AssumeRolePolicyDocument=trust)
iam.put_role_policy(RoleName="narakim-role", PolicyName="all", PolicyDocument=allow)
sts = boto3.client("sts", endpoint_url=url, region_name="us-east-1",
                   aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
role = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/narakim-role",
                       RoleSessionName="narakim")["Credentials"]
print(key["AccessKeyId"], key["SecretAccessKey"])
print(role["AccessKeyId"], role["SecretAccessKey"], role["SessionToken"])
"#;

/// moto only checks signatures when told to (INITIAL_NO_AUTH_ACTION_COUNT);
/// then it recomputes them with botocore, an independent SigV4.
#[test]
fn moto_accepts_our_signatures_and_rejects_bad_ones() {
    if !has_moto() {
        return;
    }
    let moto = start_moto(&[("INITIAL_NO_AUTH_ACTION_COUNT", "5")], &[]);
    let out = Command::new("python3")
        .args(["-c", IAM_SETUP, &moto.url])
        .output()
        .expect("run python3 (boto3 comes with moto)");
    assert!(
        out.status.success(),
        "IAM setup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8(out.stdout).expect("utf-8");
    let mut lines = out.lines().map(|l| l.split(' ').collect::<Vec<_>>());
    let user = lines.next().expect("user key");
    let role = lines.next().expect("role key");
    let creds = |id: &str, secret: &str, token: Option<&str>| {
        AwsCredentials::new(
            id.into(),
            Zeroizing::new(secret.into()),
            token.map(|t| Zeroizing::new(t.into())),
        )
    };

    // A long-term key: no session token.
    let key = client_with(&moto.url, "", creds(user[0], user[1], None))
        .create_key("signed")
        .expect("create key");
    let signed = client_with(&moto.url, &key, creds(user[0], user[1], None));
    let data_key = signed
        .generate_data_key(&[("narakim-vault", "v")])
        .expect("signed generate");
    assert_eq!(
        *signed
            .decrypt(&data_key.ciphertext, &[("narakim-vault", "v")])
            .expect("signed decrypt"),
        *data_key.plaintext
    );

    // Temporary credentials: x-amz-security-token is sent and signed.
    let temporary = client_with(&moto.url, &key, creds(role[0], role[1], Some(role[2])));
    let plain = temporary
        .decrypt(&data_key.ciphertext, &[("narakim-vault", "v")])
        .expect("decrypt with session token");
    assert_eq!(*plain, *data_key.plaintext);

    // A wrong secret, a wrong session token, an unknown key id.
    for (what, c) in [
        ("wrong secret", creds(user[0], "not-the-secret", None)),
        (
            "wrong token",
            creds(role[0], role[1], Some("not-the-token")),
        ),
        (
            "unknown key id",
            creds("AKIAUNKNOWN000000000", user[1], None),
        ),
    ] {
        let e = client_with(&moto.url, &key, c)
            .generate_data_key(&[])
            .expect_err(what);
        let text = e.to_string();
        assert!(
            matches!(
                e,
                KmsError::Refused {
                    status: 400..=403,
                    ..
                }
            ),
            "{what}: {text}"
        );
        assert!(text.contains("check the AWS credentials"), "{what}: {text}");
        assert!(
            !text.contains(user[1]) && !text.contains(role[1]) && !text.contains(role[2]),
            "{what}: {text}"
        );
        eprintln!("{what}: {text}");
    }
}
